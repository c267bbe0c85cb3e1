"""Billing's side of the creators' features (issue 17).

- :func:`record_donation`: called by the payment follow-up (ymds.billing.payments) when a
  donation is first applied as paid; it writes one overlay outbox row keyed by the
  operation id.  The follow-up is re-derived until the payment is marked notified, so the
  row exists for every paid donation, even across a crash.
- :class:`OverlayPublisher`: turns outbox rows into overlay events in Redis: the donation
  (private donors without name and message, moderated) appended once per operation id, then
  the goal's new state.  It runs right after the follow-up without holding it up, and a
  timer drains rows a failed or crashed attempt left behind.  A Redis outage therefore
  delays alerts; it never fails or delays a payment.
- :class:`OverlayTasks`: the handlers of ymds.billing.overlay_jobs.
"""
from __future__ import annotations

import calendar
import time
from datetime import date, datetime, timezone
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger

from ymds.billing import overlay_jobs
from ymds.billing.ledger import GRANTING, Invoice, Payment
from ymds.billing.overlay_jobs import DonationBoard, MarkedPublic, MarkPublic, NoArgs, OverlayTokenView
from ymds.overlay.events import DonationEvent, GoalEvent
from ymds.jobwire import HandlerTable
from ymds.overlay.moderation import WordMask, load_blocked_words, moderate

log = Logger()


def iso_moment(ts: float) -> str:
    """Unix seconds as ISO 8601 UTC ("2026-11-29T21:00:00Z")."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def goal_start(config: Any) -> float:
    """The moment the goal counts from: ``donations.goal_since`` (UTC midnight) or 0."""
    since = config.donations.goal_since
    if not since:
        return 0.0
    return float(calendar.timegm(date.fromisoformat(since).timetuple()))


def month_start(now: float) -> float:
    """The first moment of ``now``'s month (UTC): "top supporters this month"."""
    t = time.gmtime(now)
    return float(calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0)))


async def goal_event(config: Any, ledger: Any) -> GoalEvent | None:
    """The goal's state now, or None when no goal is configured."""
    d = config.donations
    if d.goal is None:
        return None
    raised = await ledger.overlay.raised(goal_start(config))
    return GoalEvent(raised, d.goal, d.goal_title, d.goal_until or None)


async def record_donation(ledger: Any, payment: Payment, invoice: Invoice | None, now: float) -> bool:
    """Queue a paid donation for the overlay (once per operation id); False when the payment
    is not a paid donation."""
    if invoice is None or invoice.kind != "donation" or payment.status not in GRANTING:
        return False
    await ledger.overlay.outbox_add(payment.operation_id, now)
    return True


class OverlayPublisher(Service):
    """Publishes the overlay outbox to the Redis overlay stream (``writer``: an
    ymds.overlay.stream.OverlayStreamWriter).  :meth:`kick` publishes one row now; every
    ``interval`` seconds rows older than ``settle`` seconds still unsent are retried."""

    def __init__(self, config: Any, ledger: Any, writer: Any, clock: Any, interval: float = 5.0,
                 settle: float = 10.0):
        self.config = config
        self.ledger = ledger
        self.writer = writer
        self.clock = clock
        self.interval = interval
        self.settle = settle
        words = config.overlay.blocked_words_file
        self.mask = WordMask(load_blocked_words(words) if words else ())
        self._busy: set[str] = set()
        self._kicked: set[defer.Deferred] = set()
        self._loop: task.LoopingCall | None = None
        self.draining: defer.Deferred | None = None
        self.last_drained = 0  # rows the latest drain published
        self.published = 0  # donation events appended by this process (tests, benchmarks)

    def kick(self, operation_id: str) -> None:
        """Publish ``operation_id`` in the background; a failure is logged and left to the timer."""
        d = defer.Deferred.fromCoroutine(self.publish(operation_id))
        d.addErrback(lambda f: log.warn("overlay: event for a donation not sent yet ({error}); will retry",
                                        error=f.getErrorMessage()))
        self._kicked.add(d)
        d.addBoth(lambda _: self._kicked.discard(d))

    def idle(self) -> defer.Deferred:
        """Fires once the publishes :meth:`kick` started have finished (tests, shutdown)."""
        return defer.DeferredList(list(self._kicked))

    async def publish(self, operation_id: str) -> str | None:
        """Append the donation's event (once) and the goal; mark the row sent.  Fires with
        the stream entry id (None when moderated away or already being published)."""
        if operation_id in self._busy:
            return None
        self._busy.add(operation_id)
        try:
            return await self._publish(operation_id)
        finally:
            self._busy.discard(operation_id)

    async def _publish(self, operation_id: str) -> str | None:
        donation = await self.ledger.overlay.donation(operation_id)
        entry_id = None
        if donation is not None:
            event = DonationEvent.from_payment(donation.amount, donation.name, donation.message, donation.public,
                                               iso_moment(donation.paid_at))
            shown = moderate(event, self.config.overlay.min_alert_amount, self.mask)
            if shown is not None:
                entry_id = await self.writer.append_once(shown, key=operation_id)
                self.published += entry_id is not None
            goal = await goal_event(self.config, self.ledger)
            if goal is not None:
                await self.writer.append(goal)
        await self.ledger.overlay.outbox_sent(operation_id, entry_id, self.clock.seconds())
        log.info("overlay: donation {operation_id} shown as event {entry_id}", operation_id=operation_id,
                 entry_id=entry_id or "none (below min_alert_amount)")
        return entry_id

    async def drain(self) -> int:
        """Publish every row left unsent for ``settle`` seconds; fires with how many were."""
        pending = await self.ledger.overlay.outbox_pending(self.clock.seconds() - self.settle)
        for operation_id in pending:
            await self.publish(operation_id)
        self.last_drained = len(pending)
        return len(pending)

    def _drain_logged(self) -> defer.Deferred:
        d = defer.Deferred.fromCoroutine(self.drain())
        d.addErrback(lambda f: log.warn("overlay: outbox not drained ({error}); will retry",
                                        error=f.getErrorMessage()))
        self.draining = d  # the timer's latest drain (tests wait on it)
        return d

    def startService(self) -> None:
        super().startService()
        self._loop = task.LoopingCall(self._drain_logged)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=True)

    def stopService(self) -> defer.Deferred:
        """Stop the timer and wait for the publishes in flight (the ledger closes after us)."""
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return self.idle()


class _QueueRedis:
    """The job queue's Redis pool, looked up when used (the pool is made on first use)."""

    def __init__(self, queue: Any):
        self._queue = queue

    def execute(self, *args: Any, timeout: float | None = None) -> defer.Deferred:
        return self._queue.pool.execute(*args, timeout=timeout)


def make_publisher(reactor: Any, config: Any, ledger: Any, queue: Any, clock: Any) -> OverlayPublisher | None:
    """A publisher writing through the job queue's Redis, or None for a queue without one
    (tests): the outbox is then published by a billing node that has Redis."""
    from ymds.overlay.stream import OverlayStreamWriter
    if getattr(queue, "pool", None) is None:
        return None
    writer = OverlayStreamWriter(_QueueRedis(queue), config.redis.prefix, reactor=reactor)
    return OverlayPublisher(config, ledger, writer, clock)


class OverlayTasks:
    """``overlay_token``, ``donation_board``, ``donation_public``."""

    def __init__(self, config: Any, ledger: Any, clock: Any):
        self.config = config
        self.ledger = ledger
        self.clock = clock

    def handlers(self) -> HandlerTable:
        """Task name -> (from_wire, handler), joined into BillingTasks.handlers."""
        return {
            overlay_jobs.OVERLAY_TOKEN: (NoArgs.from_wire, self.overlay_token),
            overlay_jobs.DONATION_BOARD: (NoArgs.from_wire, self.donation_board),
            overlay_jobs.DONATION_PUBLIC: (MarkPublic.from_wire, self.donation_public),
        }

    async def overlay_token(self, job: NoArgs) -> OverlayTokenView:
        return OverlayTokenView(await self.ledger.overlay.overlay_token())

    async def donation_public(self, job: MarkPublic) -> MarkedPublic:
        return MarkedPublic(await self.ledger.overlay.mark_public(job.label, job.name, self.clock.seconds()))

    async def donation_board(self, job: NoArgs) -> DonationBoard:
        d = self.config.donations
        goal = await goal_event(self.config, self.ledger)
        latest: tuple[dict[str, Any], ...] = ()
        top: tuple[dict[str, Any], ...] = ()
        if d.show_supporters:
            latest = tuple({"name": r.name, "amount": str(r.amount), "message": r.message,
                            "paid_at": iso_moment(r.paid_at)} for r in await self.ledger.overlay.latest_public(10))
            top = tuple({"name": r.name, "total": str(r.total)}
                        for r in await self.ledger.overlay.top_supporters(month_start(self.clock.seconds()), 5))
        return DonationBoard(raised=str(goal.raised) if goal else "0.00", goal=str(goal.goal) if goal else None,
                             goal_title=d.goal_title, goal_until=d.goal_until or None, latest=latest, top=top)
