"""Periodic progress lines for long admin commands (export, reconcile, replay).

A line every ``every`` items and at most every ``interval`` seconds of the injected clock,
so a slow run still says something and a fast one does not flood the terminal::

    export: 20000 payments (4130/s)
"""

from __future__ import annotations

from typing import Callable


class Progress:
    def __init__(self, what: str, write: Callable[[str], None], clock, every: int = 10000,
                 interval: float = 5.0, unit: str = "items"):
        self.what = what
        self.unit = unit
        self.every = max(1, int(every))
        self.interval = interval
        self.count = 0
        self._write = write
        self._clock = clock
        self._started = clock.seconds()
        self._last_line = self._started
        self._next_count = self.every

    def add(self, n: int = 1) -> None:
        self.count += n
        now = self._clock.seconds()
        if self.count >= self._next_count or (self.interval and now - self._last_line >= self.interval):
            self._line(now)

    def _line(self, now: float, suffix: str = "") -> None:
        elapsed = now - self._started
        rate = f" ({self.count / elapsed:.0f}/s)" if elapsed > 0 else ""
        self._write(f"{self.what}: {self.count} {self.unit}{rate}{suffix}")
        self._last_line = now
        self._next_count = (self.count // self.every + 1) * self.every

    def done(self, suffix: str = "") -> None:
        self._line(self._clock.seconds(), suffix)


__all__ = ["Progress"]
