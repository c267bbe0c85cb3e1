"""The billing role's timers: invoice expiry, subscription reminders and expiry, pruning,
and reconciliation with the wallet API.

Several billing processes may run these at once.  Each sweep claims its work in the ledger
with a conditional UPDATE (only one process wins a given reminder or expiry) and every bot
job it enqueues carries a key derived from the subscription's end, so nothing is sent twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from twisted.application.service import Service
from twisted.internet import task
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from ymds.billing.access import AccessExpiry
from ymds.billing.tasks import iso
from ymds.bot.jobs import BotClient, Notify
from ymds.yoomoney.quickpay import credited_amount, sum_for_credited

log = Logger()

DAY = 86400
HISTORY_CURSOR = "operation-history"
IDEMPOTENCY_KEEP = 7 * DAY  # how long an Idempotency-Key of the REST API answers with the first invoice


class BillingTimers(Service):
    """``BillingTimers(config, ledger, queue, clock, tasks, wallet_api=None)``.

    ``tasks`` is the :class:`~ymds.billing.tasks.BillingTasks` whose follow-up jobs a
    reconciled payment gets; ``wallet_api`` (IWalletAPI) enables reconciliation; ``webhooks``
    (WebhookDeliverer) gets subscription.expired events, and each sweep wakes the endpoints
    with due webhook deliveries (nothing is lost when a process dies mid-retry).
    """

    name = "billing-timers"

    def __init__(self, config, ledger, queue, clock, tasks, wallet_api=None, webhooks=None, interval: float = 60.0,
                 reconcile_interval: float = 300.0, reminder_windows=(3 * DAY, DAY), prune_after: float = 30 * DAY,
                 prune_interval: float = 3600.0, batch: int = 1000, lookback: float = 3 * DAY,
                 overlap: float = 3600.0):
        self.config = config
        self.ledger = ledger
        self.queue = queue
        self.clock = clock
        self.tasks = tasks
        self.wallet_api = wallet_api
        # WebhookDeliverer: expiry events and the sweep of pending deliveries (default: the tasks')
        self.webhooks = webhooks if webhooks is not None else getattr(tasks, "webhooks", None)
        self.interval = interval
        self.reconcile_interval = reconcile_interval
        self.reminder_windows = tuple(sorted(int(w) for w in reminder_windows))  # smallest first
        self.prune_after = prune_after
        self.prune_interval = prune_interval
        self.batch = batch
        self.lookback = lookback
        self.overlap = overlap
        self._loop: task.LoopingCall | None = None
        self._running: Deferred | None = None
        self._next_prune = 0.0
        self._next_reconcile = 0.0
        self.access = AccessExpiry(lambda: self.config, ledger, queue, batch)  # removals from paid chats after grace

    # --- service ----------------------------------------------------------------------

    def startService(self):
        super().startService()
        self._loop = task.LoopingCall(self._tick_safely)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=True)

    def stopService(self):
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._running is not None:
            running, self._running = self._running, None
            return running  # let the sweep in progress finish
        return succeed(None)

    def _tick_safely(self):
        if self._running is not None:
            return None  # the previous sweep is still working
        d = Deferred.fromCoroutine(self.tick())
        d.addErrback(lambda f: log.failure("billing timers: sweep failed; trying again next tick", f))

        def done(_):
            self._running = None
        d.addBoth(done)
        self._running = d if not d.called else None
        return None

    # --- one sweep --------------------------------------------------------------------

    async def tick(self) -> dict:
        now = self.clock.seconds()
        report = {"expired_invoices": len(await self.ledger.invoices.expire_invoices(now))}
        # issue 19: expired unpaid invoices give back their promo use and paid trial (a sweep)
        report["promo_released"] = await self.ledger.promo.release_expired(now)
        report["trials_released"] = await self.ledger.trials.release_expired(now)
        report["reminders"] = await self.send_reminders(now)
        report["expired_subscriptions"] = await self.expire_subscriptions(now)
        report["access_removals"] = await self.access.sweep(now)
        if now >= self._next_prune:
            report["pruned"] = await self.ledger.invoices.prune_unpaid(now - self.prune_after)
            if self.webhooks is not None:
                report["idempotency_pruned"] = await self.ledger.api_keys.prune_idempotency(now - IDEMPOTENCY_KEEP)
            self._next_prune = now + self.prune_interval
        if self.wallet_api is not None and now >= self._next_reconcile:
            report["reconciled"] = await self.reconcile(now)
            self._next_reconcile = now + self.reconcile_interval
        if self.webhooks is not None:
            report["webhooks_woken"] = await self.webhooks.sweep(now)
        if any(report.values()):
            log.info("billing sweep {report}", report=report)
        return report

    async def send_reminders(self, now: float) -> int:
        sent = 0
        for window in self.reminder_windows:
            while True:
                due = await self.ledger.subscriptions.due_reminders(now, window, limit=self.batch)
                if not due:
                    break
                claimed = set(await self.ledger.subscriptions.mark_reminded([(s.chat_id, s.ends_at) for s in due], window, now))
                for sub in due:
                    if sub.chat_id not in claimed:
                        continue
                    key = f"reminder:{sub.chat_id}:{int(sub.ends_at)}:{window}"
                    job = Notify(sub.chat_id, "reminder", {"plan": sub.plan, "ends_at": iso(sub.ends_at),
                                                           "days_left": max(1, round((sub.ends_at - now) / DAY))}, key)
                    try:
                        await BotClient(self.queue).notify(job)
                    except Exception:
                        await self.ledger.subscriptions.unmark_reminded(sub.chat_id, sub.ends_at, window)
                        raise
                    sent += 1
                if len(due) < self.batch or not claimed:
                    break
        return sent

    async def expire_subscriptions(self, now: float) -> int:
        done = 0
        while True:
            ended = await self.ledger.subscriptions.expired_subscriptions(now, limit=self.batch)
            if not ended:
                break
            claimed = set(await self.ledger.subscriptions.mark_expired([(s.chat_id, s.ends_at) for s in ended], now))
            for sub in ended:
                if sub.chat_id not in claimed:
                    continue
                end = int(sub.ends_at)
                try:
                    if self.webhooks is not None:
                        from ymds.webhooks.events import expiry_event
                        await self.webhooks.emit([expiry_event(sub)])
                    if not await self.ledger.subscriptions.is_blocked(sub.chat_id):
                        key = f"expired:{sub.chat_id}:{end}"
                        await BotClient(self.queue).notify(Notify(
                            sub.chat_id, "expired", {"plan": sub.plan, "ends_at": iso(sub.ends_at)}, key))
                    # removed from every chat of the plan when the grace ends (AccessExpiry.sweep)
                    await self.access.schedule(sub.chat_id, sub.plan, sub.ends_at)
                except Exception:
                    await self.ledger.subscriptions.unmark_expired(sub.chat_id, sub.ends_at)
                    raise
                done += 1
            if len(ended) < self.batch or not claimed:
                break
        return done

    # --- reconciliation ---------------------------------------------------------------

    async def reconcile(self, now: float) -> dict:
        """Apply incoming operations the ledger lacks (their notifications never came) and
        release held payments the API now shows accepted."""
        counts = {"seen": 0, "applied": 0, "released": 0}
        cursor = await self.ledger.cursors.get_cursor(HISTORY_CURSOR)
        since = datetime.fromtimestamp(now - self.lookback, timezone.utc)
        if cursor:
            try:
                since = datetime.fromisoformat(cursor) - timedelta(seconds=self.overlap)
            except ValueError:
                log.warn("billing: bad reconciliation cursor in the ledger; starting from the lookback")
        newest = None
        async for op in self.wallet_api.iter_history(type="deposition", from_=since, records=100, details=True):
            counts["seen"] += 1
            if op.datetime is not None and (newest is None or op.datetime > newest):
                newest = op.datetime
            kind, result = await self.reconcile_operation(op, now)
            if kind in ("applied", "released"):
                counts[kind] += 1
                log.info("reconciled payment {operation_id} {outcome}", operation_id=op.operation_id,
                         outcome=result.outcome)
        counts["released"] += await self._release_confirmed_held(now)
        if newest is not None:
            await self.ledger.cursors.set_cursor(HISTORY_CURSOR, newest.astimezone(timezone.utc).isoformat())
        return counts

    async def reconcile_operation(self, op, now: float) -> tuple[str, object]:
        """One operation of the history, by the billing rules (also used by ``ymds reconcile``).

        Returns ("skipped" | "known", None) for refused/outgoing or already recorded ones,
        else ("applied" | "released" | "duplicate", ApplyResult) after the follow-up jobs.
        """
        if op.direction != "in" or op.status not in ("success", "in_progress"):
            return "skipped", None
        known = await self.ledger.payments.get_payment(op.operation_id)
        if known is not None and not (known.held and op.status == "success"):
            return "known", None
        fields = await self.fields_from_operation(op)
        result = await self.ledger.payments.apply_payment(fields, "reconcile", now, held=op.status != "success")
        await self.tasks.follow_up(result)
        if result.outcome == "duplicate":
            return "duplicate", result
        return ("released" if result.released else "applied"), result

    async def _release_confirmed_held(self, now: float) -> int:
        """Held payments older than the history window: ask operation-details one by one."""
        from ymds.yoomoney.wallet_api import WalletAPIError
        released = 0
        page = await self.ledger.payments.list_payments(status="held", limit=100)
        for payment in page.payments:
            try:
                op = await self.wallet_api.operation_details(payment.operation_id)
            except WalletAPIError as e:
                log.warn("operation-details for held {operation_id} failed: {code}",
                         operation_id=payment.operation_id, code=e.code)
                continue
            if op.status == "success" and op.amount == payment.amount:
                result = await self.ledger.payments.release_payment(payment.operation_id, now, source="reconcile")
                if result is not None and result.released:
                    released += 1
                    await self.tasks.follow_up(result)
        return released

    async def fields_from_operation(self, op) -> dict:
        """Notification-like fields for an operation from the history.  The API reports what
        reached the wallet; what the payer paid is amount + fee when the API gives the fee,
        else the invoice price if the credited amount matches it, else an estimate."""
        withdraw = None
        if op.fee is not None:
            withdraw = op.amount + op.fee
        payment_type = "AC" if op.type == "deposition" else "PC"
        if withdraw is None and op.label:
            invoice = await self.ledger.invoices.get_invoice(op.label)
            if invoice is not None and op.amount in (invoice.amount, *(credited_amount(invoice.amount, t, self.config.yoomoney) for t in ("AC", "PC"))):
                withdraw = invoice.amount
        if withdraw is None:
            withdraw = sum_for_credited(op.amount, payment_type, self.config.yoomoney)
        q = Decimal("0.01")
        return {
            "notification_type": "card-incoming" if payment_type == "AC" else "p2p-incoming",
            "operation_id": op.operation_id,
            "amount": f"{op.amount.quantize(q):f}",
            "withdraw_amount": f"{withdraw.quantize(q):f}",
            "currency": "643",
            "datetime": op.datetime_raw,
            "sender": op.sender or "",
            "codepro": "true" if op.codepro else "false",
            "label": op.label or "",
            "unaccepted": "false",
        }
