"""A small in-process metrics registry rendered as Prometheus text, synchronously.

prometheus_client's Twisted resource renders in the global thread pool; ours renders on
the reactor thread in microseconds, so /metrics never competes with adbapi for threads.
"""

from __future__ import annotations

import bisect
import math
from typing import Callable, Iterable

DEFAULT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labels_text(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def number_text(value: float) -> str:
    if isinstance(value, float):
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        if value.is_integer():
            return repr(float(value))
    return str(value)


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help: str, labelnames: Iterable[str] = ()):
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)
        self._values: dict[tuple[str, ...], object] = {}

    def _key(self, labels: dict[str, str]) -> tuple[str, ...]:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {tuple(labels)}")
        return tuple(str(labels[n]) for n in self.labelnames)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    kind = "counter"

    def inc(self, amount: float = 1, **labels: str) -> None:
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(self._key(labels), 0)

    def render(self) -> list[str]:
        lines = self.header()
        name = self.name if self.name.endswith("_total") else self.name + "_total"
        for key, v in sorted(self._values.items()):
            lines.append(f"{name}{labels_text(self.labelnames, key)} {number_text(float(v))}")
        return lines


class Gauge(_Metric):
    """A gauge set directly or computed at render time by ``set_function``."""

    kind = "gauge"

    def __init__(self, name, help, labelnames=()):
        super().__init__(name, help, labelnames)
        self._function: Callable[[], dict[tuple[str, ...], float] | float] | None = None

    def set(self, value: float, **labels: str) -> None:
        self._values[self._key(labels)] = value

    def inc(self, amount: float = 1, **labels: str) -> None:
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0) + amount

    def dec(self, amount: float = 1, **labels: str) -> None:
        self.inc(-amount, **labels)

    def value(self, **labels: str) -> float:
        return self._values.get(self._key(labels), 0)

    def set_function(self, function: Callable[[], dict[tuple[str, ...], float] | float]) -> None:
        self._function = function

    def render(self) -> list[str]:
        values = dict(self._values)
        if self._function is not None:
            produced = self._function()
            if isinstance(produced, dict):
                values.update(produced)
            else:
                values[()] = produced
        lines = self.header()
        for key, v in sorted(values.items()):
            lines.append(f"{self.name}{labels_text(self.labelnames, key)} {number_text(float(v))}")
        return lines


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name, help, labelnames=(), buckets=DEFAULT_BUCKETS):
        super().__init__(name, help, labelnames)
        self.buckets = tuple(sorted(buckets))

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        state = self._values.get(key)
        if state is None:
            state = self._values[key] = [[0] * (len(self.buckets) + 1), 0.0, 0]
        counts, _, _ = state
        counts[bisect.bisect_left(self.buckets, value)] += 1
        state[1] += value
        state[2] += 1

    def count(self, **labels: str) -> int:
        state = self._values.get(self._key(labels))
        return state[2] if state else 0

    def render(self) -> list[str]:
        lines = self.header()
        for key, (counts, total, n) in sorted(self._values.items()):
            cumulative = 0
            for bound, c in zip(self.buckets + (math.inf,), counts):
                cumulative += c
                le = f'le="{number_text(float(bound))}"'
                lines.append(f"{self.name}_bucket{labels_text(self.labelnames, key, le)} {cumulative}")
            lines.append(f"{self.name}_sum{labels_text(self.labelnames, key)} {number_text(float(total))}")
            lines.append(f"{self.name}_count{labels_text(self.labelnames, key)} {n}")
        return lines


class Registry:
    """Owns metrics by name; ``render()`` gives the Prometheus text exposition.

    A collector (``add_collector``) is a function returning whole exposition lines (HELP,
    TYPE and samples) for numbers that live elsewhere, e.g. the queue's own counters.
    """

    def __init__(self):
        self._metrics: dict[str, _Metric] = {}
        self._collectors: list[Callable[[], list[str]]] = []

    def add_collector(self, collector: Callable[[], list[str]]) -> None:
        self._collectors.append(collector)

    def _get(self, cls, name, help, labelnames, **kw):
        existing = self._metrics.get(name)
        if existing is not None:
            if not isinstance(existing, cls) or existing.labelnames != tuple(labelnames):
                raise ValueError(f"metric {name} registered twice with different shapes")
            return existing
        metric = self._metrics[name] = cls(name, help, labelnames, **kw)
        return metric

    def counter(self, name: str, help: str, labelnames: Iterable[str] = ()) -> Counter:
        return self._get(Counter, name, help, tuple(labelnames))

    def gauge(self, name: str, help: str, labelnames: Iterable[str] = ()) -> Gauge:
        return self._get(Gauge, name, help, tuple(labelnames))

    def histogram(self, name: str, help: str, labelnames: Iterable[str] = (), buckets=DEFAULT_BUCKETS) -> Histogram:
        return self._get(Histogram, name, help, tuple(labelnames), buckets=buckets)

    def render(self) -> str:
        lines: list[str] = []
        for name in sorted(self._metrics):
            lines.extend(self._metrics[name].render())
        for collector in self._collectors:
            lines.extend(collector())
        return "\n".join(lines) + "\n"
