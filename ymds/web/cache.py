"""Small bounded caches with a time to live, on an injected clock.

The pay page asks billing for the invoice status through a queue call; under load one call
per invoice per second is plenty, and concurrent requests for the same key share one call.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Awaitable, Callable, Generic, Hashable, TypeVar

from twisted.internet.defer import Deferred

V = TypeVar("V")

_MISSING = object()


class TTLCache(Generic[V]):
    """LRU bounded to ``max_entries``; entries older than ``ttl`` seconds are misses."""

    def __init__(self, clock, ttl: float, max_entries: int = 4096):
        self._clock = clock
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key, default=None):
        entry = self._entries.get(key)
        if entry is None:
            return default
        at, value = entry
        if self._clock.seconds() - at >= self.ttl:
            del self._entries[key]
            return default
        self._entries.move_to_end(key)
        return value

    def put(self, key, value: V) -> None:
        self._entries[key] = (self._clock.seconds(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def discard(self, key) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()


class SharedLookup(Generic[V]):
    """``await get(key)``: cached for ``ttl``; concurrent misses share one ``fetch(key)``."""

    def __init__(self, clock, fetch: Callable[[Hashable], Awaitable[V]], ttl: float = 1.0, max_entries: int = 4096):
        self._fetch = fetch
        self.cache: TTLCache[V] = TTLCache(clock, ttl, max_entries) if ttl > 0 else None
        self._pending: dict[Hashable, list[Deferred]] = {}

    async def get(self, key):
        if self.cache is not None:
            value = self.cache.get(key, _MISSING)
            if value is not _MISSING:
                return value
        waiters = self._pending.get(key)
        if waiters is not None:
            d: Deferred = Deferred()
            waiters.append(d)
            return await d
        self._pending[key] = []
        try:
            value = await self._fetch(key)
        except BaseException as e:
            for d in self._pending.pop(key, []):
                d.errback(e)
            raise
        if self.cache is not None:
            self.cache.put(key, value)
        for d in self._pending.pop(key, []):
            d.callback(value)
        return value
