"""Delivering the outbox: one deliverer per endpoint at a time, oldest event first.

The ledger holds the truth (what is pending, attempts, when the next one is due); queue
jobs ``billing.webhook_deliver {endpoint_id}`` only wake a deliverer.  A deliverer takes the
endpoint's lease in the ledger, sends the oldest pending event, and either moves on (2xx),
or schedules a retry with backoff (a delayed job) and stops, so later events wait behind
it: per-endpoint order.  After ``give_up_after`` seconds (24 h) of failures the event is
marked failed, the owner is alerted, and the next one proceeds.  The billing timers' sweep
re-wakes every endpoint with a due event, so a process killed mid-retry loses nothing.
"""

from __future__ import annotations

import secrets
from typing import Iterable
from urllib.parse import urlsplit

from twisted.internet.defer import CancelledError, Deferred, TimeoutError as DeferredTimeout
from twisted.logger import Logger
from zope.interface import Interface, implementer

from ymds import __version__
from ymds.billing.jobs import WEBHOOK_DELIVER, BillingClient, WebhookDeliver
from ymds.bot.jobs import BotClient, NotifyAdmins
from ymds.jobwire import typed_handler
from ymds.util.http import read_body
from ymds.webhooks.signing import HEADER, event_body, signature_header

log = Logger()

DAY = 86400.0
TASK = WEBHOOK_DELIVER  # the task name lives in ymds.billing.jobs


def default_backoff(failures: int) -> float:
    """Seconds before the retry after ``failures`` failed attempts: 10 s, 30 s, 90 s, ... 1 h."""
    return float(min(3600, 10 * 3 ** min(failures - 1, 10)))


class IWebhookSender(Interface):
    def post(url, body, headers):
        """POST ``body``; fires with (status code, first bytes of the answer) or fails on a
        transport error or timeout."""

    def close():
        """Close the connection pool (Deferred)."""


@implementer(IWebhookSender)
class TreqSender:
    """treq with its own connection pool, a timeout for the whole exchange, no redirects
    followed (a 3xx is a failure the owner should fix) and at most ``max_body`` bytes read."""

    def __init__(self, reactor, timeout: float = 10.0, max_body: int = 4096, per_host: int = 2):
        from treq.client import HTTPClient
        from twisted.web.client import Agent, HTTPConnectionPool
        self._reactor = reactor
        self.timeout = timeout
        self.max_body = max_body
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = per_host
        self._pool.retryAutomatically = False  # a POST is not retried behind our back
        self._client = HTTPClient(Agent(reactor, pool=self._pool, connectTimeout=timeout))

    async def post(self, url: str, body: bytes, headers: dict) -> tuple[int, bytes]:
        response = await self._client.request("POST", url, data=body, headers=headers, timeout=self.timeout,
                                              allow_redirects=False, unbuffered=True)
        reading = read_body(response, self.max_body, truncate=True).addTimeout(self.timeout, self._reactor)
        try:
            snippet = await reading
        except (DeferredTimeout, CancelledError):
            raise
        except Exception:  # the answer's code is what counts; a body cut short is only a log detail
            snippet = b""
        return response.code, snippet

    def close(self) -> Deferred:
        return self._pool.closeCachedConnections()


def _describe(error: BaseException) -> str:
    """One line for the delivery log: what went wrong, without a traceback."""
    reasons = getattr(error, "reasons", None)  # twisted.web's ResponseFailed / ResponseNeverReceived
    if reasons:
        inner = [getattr(r, "value", r) for r in reasons]
        if any(type(e).__name__ == "CancelledError" for e in inner):
            return "timeout: no answer in time"
        error = inner[0]
    name = type(error).__name__
    if name in ("CancelledError", "TimeoutError"):
        return "timeout: no answer in time"
    text = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
    return f"{name}: {text}" if text else name


def _printable(data: bytes, limit: int = 200) -> str:
    return "".join(c if c.isprintable() else "?" for c in data[:limit].decode("utf-8", "replace"))


class WebhookDeliverer:
    """``WebhookDeliverer(ledger, queue, clock, sender, reactor=None)``; ``register(registry)``
    adds the ``webhook_deliver`` task.  Without a sender it only writes the outbox (emit) and
    wakes deliverers elsewhere (the admin command's reverify and reconcile).  ``clock`` dates attempts and backoff; ``reactor``
    (default: clock) measures how long an attempt took."""

    def __init__(self, ledger, queue, clock, sender=None, reactor=None, *, lease: float = 30.0,
                 give_up_after: float = DAY, max_per_job: int = 50, max_job_seconds: float = 60.0,
                 backoff=default_backoff, endpoints_ttl: float = 2.0):
        self.ledger = ledger
        self.queue = queue
        self.clock = clock
        self.sender = sender
        self.reactor = reactor or clock
        self.lease = lease
        self.give_up_after = give_up_after
        self.max_per_job = max_per_job
        self.max_job_seconds = max_job_seconds  # well inside the worker's job timeout
        self.backoff = backoff
        # Whether any endpoint exists, re-read at most every endpoints_ttl seconds: without
        # endpoints a payment costs no outbox transaction (an endpoint added just now gets
        # the events from a couple of seconds after `ymds webhook add` on).
        self.endpoints_ttl = endpoints_ttl
        self._any_endpoints: tuple[float, bool] | None = None

    def register(self, registry) -> None:
        registry.register(TASK, typed_handler(WebhookDeliver.from_wire, self.deliver))

    # --- waking deliverers --------------------------------------------------------------

    async def emit(self, events: Iterable[tuple[str, str, dict]]) -> list[str]:
        """Write events to the outbox (once per cause) and wake the endpoints concerned."""
        events = list(events)
        if not events or not await self._have_endpoints():
            return []
        now = self.clock.seconds()
        endpoints = await self.ledger.webhooks.webhook_emit(events, now)
        causes = "+".join(cause for _, cause, _ in events)
        for endpoint_id in endpoints:
            await self.wake(endpoint_id, key=f"webhook:{endpoint_id}:{causes}"[:190])
        return endpoints

    async def _have_endpoints(self) -> bool:
        now = self.clock.seconds()
        if self._any_endpoints is None or now - self._any_endpoints[0] >= self.endpoints_ttl:
            self._any_endpoints = (now, bool(await self.ledger.webhooks.webhook_endpoints()))
        return self._any_endpoints[1]

    async def wake(self, endpoint_id: str, key: str | None = None, delay: float | None = None):
        enqueued = await BillingClient(self.queue).webhook_deliver(endpoint_id, key=key, delay=delay)
        return enqueued.job_id

    async def sweep(self, now: float | None = None) -> int:
        """Wake every endpoint whose oldest pending event is due and that nobody holds."""
        now = self.clock.seconds() if now is None else now
        due = await self.ledger.webhooks.webhook_due(now)
        for endpoint_id in due:
            await self.wake(endpoint_id, key=f"webhook:{endpoint_id}:sweep:{int(now)}")
        return len(due)

    # --- the task -----------------------------------------------------------------------

    async def deliver(self, job: WebhookDeliver) -> dict:
        endpoint_id = job.endpoint_id
        token = secrets.token_hex(8)
        if not await self.ledger.webhooks.webhook_claim(endpoint_id, token, self.clock.seconds(), self.lease):
            return {"outcome": "busy"}  # another deliverer has it (or the endpoint is gone)
        sent = 0
        started = self.reactor.seconds()
        try:
            endpoint = await self.ledger.webhooks.webhook_endpoint_get(endpoint_id)
            for _ in range(self.max_per_job):
                if sent and self.reactor.seconds() - started > self.max_job_seconds:
                    break
                delivery = await self.ledger.webhooks.webhook_next(endpoint_id)
                if delivery is None:
                    return {"outcome": "idle", "sent": sent}
                now = self.clock.seconds()
                if delivery.next_attempt_at > now:
                    await self._wake_at(endpoint_id, delivery, delivery.next_attempt_at, now)
                    return {"outcome": "waiting", "sent": sent}
                if not await self.ledger.webhooks.webhook_claim(endpoint_id, token, now, self.lease):
                    return {"outcome": "lost_lease", "sent": sent}
                outcome, next_at = await self._attempt(endpoint, delivery)
                if outcome == "retry":
                    assert next_at is not None  # _attempt gives the retry's time with "retry"
                    await self._wake_at(endpoint_id, delivery, next_at, self.clock.seconds())
                    return {"outcome": "retry", "sent": sent}
                sent += 1
            # a long backlog: carry on in a fresh job (bounded job time, fair to other work)
            await self.wake(endpoint_id, key=f"webhook:{endpoint_id}:more:{token}")
            return {"outcome": "more", "sent": sent}
        finally:
            await self.ledger.webhooks.webhook_release(endpoint_id, token)

    async def _wake_at(self, endpoint_id: str, delivery, at: float, now: float) -> None:
        await self.wake(endpoint_id, key=f"webhook:{endpoint_id}:{delivery.event_seq}:{int(at * 1000)}",
                        delay=max(0.0, at - now))

    async def _attempt(self, endpoint, delivery) -> tuple[str, float | None]:
        now = self.clock.seconds()
        body = event_body(delivery.event_id, delivery.type, delivery.created_at, delivery.data)
        headers = {"Content-Type": "application/json", "User-Agent": f"ymds-webhooks/{__version__}",
                   HEADER: signature_header(endpoint.secret, int(now), body),
                   "Ymds-Event-Id": delivery.event_id, "Ymds-Event-Type": delivery.type}
        started = self.reactor.seconds()
        code = None
        try:
            code, answer = await self.sender.post(endpoint.url, body, headers)
            error = None if 200 <= code < 300 else f"HTTP {code}: {_printable(answer)}".rstrip(": ")
        except Exception as e:
            error = _describe(e)
        duration = max(0.0, self.reactor.seconds() - started)
        now = self.clock.seconds()
        host = urlsplit(endpoint.url).hostname or "?"
        if error is None:
            await self.ledger.webhooks.webhook_record_attempt(endpoint.id, delivery.event_seq, now, code, None, duration,
                                                     "delivered")
            log.info("webhook delivered {event_id} {event_type} to {endpoint_id} ({host}) status={status}",
                     event_id=delivery.event_id, event_type=delivery.type, endpoint_id=endpoint.id, host=host,
                     status=code)
            return "delivered", None
        first = delivery.first_attempt_at if delivery.first_attempt_at is not None else now
        if now - first >= self.give_up_after:
            await self.ledger.webhooks.webhook_record_attempt(endpoint.id, delivery.event_seq, now, code, error, duration,
                                                     "failed")
            log.warn("webhook failed for good {event_id} {event_type} to {endpoint_id} ({host}) after "
                     "{attempts} attempts: {error}", event_id=delivery.event_id, event_type=delivery.type,
                     endpoint_id=endpoint.id, host=host, attempts=delivery.attempts + 1, error=error)
            key = f"admins:webhook:{endpoint.id}:{delivery.event_id}"
            await BotClient(self.queue).notify_admins(NotifyAdmins("webhook_failed", {
                "endpoint_id": endpoint.id, "host": host, "event_id": delivery.event_id,
                "event_type": delivery.type, "attempts": delivery.attempts + 1, "error": error[:200]}, key))
            return "failed", None
        next_at = min(now + self.backoff(delivery.attempts + 1), first + self.give_up_after)
        await self.ledger.webhooks.webhook_record_attempt(endpoint.id, delivery.event_seq, now, code, error, duration, "retry",
                                                 next_at)
        log.info("webhook attempt failed {event_id} to {endpoint_id} ({host}): {error}; retry in {delay}s",
                 event_id=delivery.event_id, endpoint_id=endpoint.id, host=host, error=error,
                 delay=round(next_at - now, 1))
        return "retry", next_at
