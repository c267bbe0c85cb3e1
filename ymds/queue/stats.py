"""In-process counters and handler-duration histograms for /metrics (plain numbers)."""
from __future__ import annotations

from zope.interface import implementer

from ymds.queue.interfaces import IQueueStats

# upper bounds in seconds, like a Prometheus histogram's ``le`` labels
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

COUNTERS = ("enqueued", "acked", "failed", "retried", "dead", "reclaimed", "expired",
            "calls", "call_timeouts", "replies")


class Duration:
    """Count, sum, max and cumulative bucket counts of one task's handler durations."""

    __slots__ = ("count", "sum", "max", "buckets")

    def __init__(self):
        self.count = 0
        self.sum = 0.0
        self.max = 0.0
        self.buckets = [0] * len(DURATION_BUCKETS)

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.sum += seconds
        if seconds > self.max:
            self.max = seconds
        for i, bound in enumerate(DURATION_BUCKETS):
            if seconds <= bound:
                self.buckets[i] += 1
                break

    def as_dict(self) -> dict:
        cumulative, running = {}, 0
        for bound, n in zip(DURATION_BUCKETS, self.buckets):
            running += n
            cumulative[bound] = running
        cumulative[float("inf")] = self.count
        return {"count": self.count, "sum": self.sum, "max": self.max, "buckets": cumulative}


@implementer(IQueueStats)
class QueueStats:
    """Counters by queue: ``counters[name]`` totals, ``by_queue[queue][name]`` per queue.

    One object may be shared by the client and every worker of a process.
    """

    def __init__(self):
        self.counters = {name: 0 for name in COUNTERS}
        self.by_queue: dict[str, dict[str, int]] = {}
        self.durations: dict[str, Duration] = {}
        self.in_flight: dict[str, int] = {}

    def incr(self, queue: str, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n
        per = self.by_queue.get(queue)
        if per is None:
            per = self.by_queue[queue] = {k: 0 for k in COUNTERS}
        per[name] = per.get(name, 0) + n

    def observe(self, task: str, seconds: float) -> None:
        d = self.durations.get(task)
        if d is None:
            d = self.durations[task] = Duration()
        d.observe(seconds)

    def snapshot(self) -> dict[str, float]:
        """Flat ``name -> number``: the counters plus ``in_flight`` and handler totals."""
        flat: dict[str, float] = dict(self.counters)
        flat["in_flight"] = sum(self.in_flight.values())
        flat["handler_seconds_total"] = sum(d.sum for d in self.durations.values())
        flat["handler_runs_total"] = sum(d.count for d in self.durations.values())
        return flat

    def detail(self) -> dict:
        """Everything, nested: counters, per queue, in flight per queue, durations per task."""
        return {
            "counters": dict(self.counters),
            "by_queue": {q: dict(c) for q, c in self.by_queue.items()},
            "in_flight": dict(self.in_flight),
            "durations": {t: d.as_dict() for t, d in self.durations.items()},
        }
