"""Moves a queue's delayed jobs (retries with backoff, jobs sent with a delay) into its stream
when they fall due.  One runs inside every Worker; several at once are safe (one script call
moves each job exactly once)."""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from twisted.python.failure import Failure

from ymds.queue import scripts
from ymds.queue.keys import QueueKeys
from ymds.queue.redis import RedisTime, is_transient
from ymds.util.clock import Clock

log = Logger()

#: Jobs moved by one script call; a full batch means more are due, so the next runs at once.
BATCH = 1000


class DelayedJobPromoter:
    """Runs the promotion every ``interval`` seconds of ``clock``, sooner when ``wake_at`` asks.

    ``redis`` is what the Lua scripts run on (a RedisPool); ``time`` is Redis's clock.
    """

    def __init__(self, clock: Clock, redis: Any, time: RedisTime, keys: QueueKeys, queue: str,
                 interval: float = 1.0):
        self.clock = clock
        self.redis = redis
        self.time = time
        self.keys = keys
        self.queue = queue
        self.interval = interval
        self.busy = False  # a promotion call is in flight
        self._running = False
        self._call: Any = None
        self._wake_at: float | None = None

    def start(self) -> None:
        """Promote once now, then every ``interval``."""
        self._running = True
        self._call = self.clock.callLater(0, self._promote)

    def stop(self) -> None:
        """No more promotion calls (one in flight finishes on its own)."""
        self._running = False
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def wake_at(self, when: float) -> None:
        """Make sure a promotion runs no later than ``when`` (Redis time, seconds)."""
        if self.busy:
            self._wake_at = when if self._wake_at is None else min(self._wake_at, when)
            return
        call = self._call
        if call is not None and call.active() and call.getTime() > when:
            call.reset(max(0.0, when - self.time.now()))

    def _promote(self) -> None:
        self._call = None
        self.busy = True
        now = self.time.now()
        d = scripts.PROMOTE.run(self.redis, [self.keys.delayed, self.keys.stream], [int(now * 1000), BATCH])
        d.addBoth(self._schedule)

    def _schedule(self, result: list[Any] | Failure) -> None:
        self.busy = False
        wait = self.interval
        if isinstance(result, list):
            moved, next_ms = int(result[0]), int(result[1])
            if moved >= BATCH:
                wait = 0
            elif next_ms >= 0:
                wait = min(wait, max(0.0, next_ms / 1000 - self.time.now()))
        elif self._running and not is_transient(result):
            log.error("worker {queue}: moving delayed jobs failed: {error}", queue=self.queue,
                      error=result.getErrorMessage())
        if self._wake_at is not None:
            wait = min(wait, max(0.0, self._wake_at - self.time.now()))
            self._wake_at = None
        if self._running:
            self._call = self.clock.callLater(wait, self._promote)
