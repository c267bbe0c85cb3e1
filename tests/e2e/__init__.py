"""End to end on real processes: layouts, faults, security (docs/RELIABILITY.md)."""
