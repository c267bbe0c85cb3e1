"""Delivers notifications like YooMoney does: at once, after 10 minutes, after 1 hour.

A delivery counts as done only on HTTP 200; anything else (another status, a refused
connection, a timeout) schedules the next attempt on the injected clock, measured from the
first attempt.  After the third attempt it gives up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import Interface, implementer

from ymds.yoomoney.http import read_body

log = Logger()

SCHEDULE = (0, 600, 3600)   # seconds after the first attempt


@dataclass
class Attempt:
    index: int
    at: float                       # clock seconds when it started
    statuses: list = field(default_factory=list)   # HTTP status per copy sent, or None for a failure
    simulated_failure: bool = False
    done: bool = False

    @property
    def ok(self) -> bool:
        return 200 in self.statuses


@dataclass
class Delivery:
    url: str
    body: bytes
    operation_id: str
    started: float
    fail_first: bool = False
    duplicate: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    delivered: bool = False
    gave_up: bool = False
    _waiters: dict = field(default_factory=dict, repr=False)

    def when_attempted(self, index: int) -> Deferred:
        """Fires with the Attempt once attempt ``index`` (0-based) has finished."""
        if index < len(self.attempts) and self.attempts[index].done:
            return defer.succeed(self.attempts[index])
        d: Deferred = Deferred()
        self._waiters.setdefault(index, []).append(d)
        return d

    def _fire(self, index: int) -> None:
        self.attempts[index].done = True
        for d in self._waiters.pop(index, []):
            d.callback(self.attempts[index])


class INotifier(Interface):
    def deliver(url, body, operation_id, fail_first=False, duplicate=False):
        """Start delivering; return Deferred[Delivery] firing after the first attempt."""

    def stop():
        """Cancel every scheduled retry."""


@implementer(INotifier)
class Notifier:
    def __init__(self, reactor, clock, http_client, timeout: float = 15.0, schedule=SCHEDULE, keep: int = 1000):
        self._reactor = reactor          # network timeouts
        self._clock = clock              # the retry schedule
        self._http = http_client
        self._timeout = timeout
        self._schedule = tuple(schedule)
        self._keep = keep
        self.deliveries: list[Delivery] = []   # the last ``keep``, for the index page and tests
        self._scheduled: set = set()             # DelayedCalls of pending retries
        self._stopped = False

    def deliver(self, url: str, body: bytes, operation_id: str, fail_first: bool = False,
                duplicate: bool = False) -> Deferred:
        delivery = Delivery(url, body, operation_id, self._clock.seconds(), fail_first, duplicate)
        self.deliveries.append(delivery)
        del self.deliveries[:-self._keep]
        d = Deferred.fromCoroutine(self._attempt(delivery, 0))
        d.addCallback(lambda _: delivery)
        return d

    def stop(self) -> None:
        self._stopped = True
        for call in self._scheduled:
            if call.active():
                call.cancel()
        self._scheduled.clear()

    async def _attempt(self, delivery: Delivery, index: int) -> None:
        attempt = Attempt(index, self._clock.seconds())
        delivery.attempts.append(attempt)
        if index == 0 and delivery.fail_first:
            attempt.simulated_failure = True
            attempt.statuses.append(None)
        else:
            copies = 2 if (index == 0 and delivery.duplicate) else 1
            results = await defer.DeferredList(
                [Deferred.fromCoroutine(self._post(delivery.url, delivery.body)) for _ in range(copies)],
                consumeErrors=True)
            attempt.statuses.extend(status if ok else None for ok, status in results)
        log.info("sandbox notification {operation_id} attempt {attempt} answered {statuses}",
                 operation_id=delivery.operation_id, attempt=index + 1, statuses=attempt.statuses)
        if attempt.ok:
            delivery.delivered = True
        elif self._stopped:
            delivery.gave_up = True
        elif index + 1 < len(self._schedule):
            delay = max(0.0, delivery.started + self._schedule[index + 1] - self._clock.seconds())
            call = self._clock.callLater(delay, self._retry, delivery, index + 1)
            self._scheduled.add(call)
        else:
            delivery.gave_up = True
            log.warn("sandbox notification {operation_id} given up after {n} attempts",
                     operation_id=delivery.operation_id, n=index + 1)
        delivery._fire(index)

    def _retry(self, delivery: Delivery, index: int) -> None:
        self._scheduled = {call for call in self._scheduled if call.active()}
        Deferred.fromCoroutine(self._attempt(delivery, index)).addErrback(
            lambda f: log.failure("sandbox retry failed", f))

    async def _post(self, url: str, body: bytes) -> int | None:
        d = self._http.post(url, data=body, allow_redirects=False, unbuffered=True,
                            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        d.addTimeout(self._timeout, self._reactor)
        try:
            response = await d
            reading = read_body(response, 65536)
            reading.addTimeout(self._timeout, self._reactor)
            await reading
        except Exception as e:
            log.info("sandbox notification to {url} failed: {error}", url=url, error=type(e).__name__)
            return None
        return response.code
