"""Billing's dashboard tasks (ymds.billing.admin_jobs): the figures, the lists and the
owner's actions, each action applied once per idempotency key and audited with the admin's id.

Registered by the billing role next to the other billing tasks
(``AdminTasks(...).register(registry)`` in ymds.billing.service).
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable, Mapping, Protocol
from urllib.parse import parse_qs

from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ymds.billing import admin_jobs as aj
from ymds.billing.admin_jobs import (
    ActionDone, AdminCommand, AdminOverview, AdminPaymentsQuery, MoneyIntervals, MoneyQuery, OverviewQuery, Rows,
    SinceQuery, SubscribersQuery,
)
from ymds.billing.admin_overlay import StreamAlerts, queue_stream_writer
from ymds.billing.admin_store import AdminStore
from ymds.billing.jobs import BillingClient, NoArgs
from ymds.bot.jobs import BotClient, GrantAccess
from ymds.jobwire import InvalidTaskArgs, typed_handler

log = Logger()

RECORD_EVERY = 600.0


class DeadLetters(Protocol):
    """The queue's dead letters (ymds.queue.admin over Redis in production)."""

    async def count(self, queue: str) -> int: ...

    async def list(self, queue: str, limit: int) -> list[dict[str, Any]]: ...

    async def replay(self, queue: str, entry_id: str) -> int: ...


class RedisDeadLetters:
    """DeadLetters over ymds.queue.admin.QueueAdmin, one short connection per list or replay;
    counts (every overview) go over ``queue``'s own pool when it has one (a RedisJobQueue)."""

    def __init__(self, reactor: Any, redis_config: Any, queue: Any = None):
        self.reactor = reactor
        self.redis_config = redis_config
        self.queue = queue

    async def _with(self, use: Callable[[Any], Awaitable[Any]]) -> Any:
        from ymds.queue.admin import QueueAdmin
        admin = QueueAdmin(self.reactor, self.redis_config)
        try:
            return await use(admin)
        finally:
            await admin.close()

    async def count(self, queue: str) -> int:
        pool = getattr(self.queue, "pool", None)
        if pool is not None:
            from ymds.queue.keys import QueueKeys, check_name
            return int(await pool.execute("XLEN", QueueKeys(self.redis_config.prefix, check_name("queue", queue)).dead) or 0)
        return int(await self._with(lambda a: a.pool.execute("XLEN", a._keys(queue).dead)) or 0)

    async def list(self, queue: str, limit: int) -> list[dict[str, Any]]:
        return list(await self._with(lambda a: a.list_dead(queue, limit)))

    async def replay(self, queue: str, entry_id: str) -> int:
        return int(await self._with(lambda a: a.replay(queue, entry_id)))


class ReportFolder(TimerService):
    """Every ``interval`` seconds, folds the dashboard's money rows of half hours older than
    ``age`` seconds into one row each (ReportStore.fold): payments spread over 16 rows per
    half hour to avoid lock waits, reads want one."""

    def __init__(self, ledger: Any, clock: Any, interval: float = 600.0, age: float = 3600.0):
        super().__init__(interval, self.fold)
        self.clock = clock  # TimerService runs its LoopingCall on self.clock
        self._now = clock
        self.age = age
        self.ledger = ledger

    def fold(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._fold())

    async def _fold(self) -> None:
        try:
            folded = await self.ledger.reports.fold(self._now.seconds() - self.age)
        except Exception as e:  # the next tick tries again; reads stay right, only slower
            log.warn("dashboard figures not folded: {error}", error=str(e) or type(e).__name__)
            return
        if folded:
            log.debug("dashboard figures folded: {rows} rows", rows=folded)


class _OneQuarantined:
    """The quarantine store showing only item ``only`` (reverify of one notification)."""

    def __init__(self, store: Any, only: int):
        self._store = store
        self._only = only

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def quarantine_list(self, unresolved_only: bool = True, limit: int = 100, after_id: int = 0) -> list[Any]:
        if after_id >= self._only:
            return []
        rows = await self._store.quarantine_list(unresolved_only=unresolved_only, limit=1, after_id=self._only - 1)
        return [q for q in rows if q.id == self._only]


class _LedgerWithOneQuarantined:
    def __init__(self, ledger: Any, only: int):
        self._ledger = ledger
        self.quarantine = _OneQuarantined(ledger.quarantine, only)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)


def ledger_reverify(config: Any, ledger: Any, clock: Any, tasks: Any,
                    wallet_api: Any = None) -> Callable[..., Awaitable[Mapping[str, int]]]:
    """``await run(only=None)``: ``ymds reverify`` over every quarantined notification, or
    over the one numbered ``only`` (the dashboard's button), with the payments' follow-ups."""
    from ymds.billing.reverify import reverify

    async def run(only: int | None = None) -> Mapping[str, int]:
        target = ledger if only is None else _LedgerWithOneQuarantined(ledger, only)
        return await reverify(target, config, wallet_api=wallet_api, clock=clock, tasks=tasks)
    return run


def _body_field(body: str, name: str) -> str:
    values = parse_qs(body or "").get(name) or [""]
    return values[0][:100]


class AdminTasks:
    """``AdminTasks(config, ledger, queue, clock, dead_letters)``: the dashboard's handlers.
    ``ledger`` is the SQL ledger (its ``db`` and ``reports``); ``queue`` carries the bot
    jobs an extension causes and the webhook wake-ups."""

    def __init__(self, config: Any, ledger: Any, queue: Any, clock: Any, dead_letters: DeadLetters,
                 reverify: Callable[..., Awaitable[Mapping[str, int]]] | None = None, overlay_writer: Any = None):
        self.config = config
        # the overlay event stream's writer (skip and replay of a stream alert); by default
        # over the job queue's Redis, as the outbox publisher writes it
        self.alerts = StreamAlerts(ledger, overlay_writer or queue_stream_writer(config, queue))
        self.ledger = ledger
        self.store = AdminStore(ledger.db)
        self.bot = BotClient(queue)
        self.billing = BillingClient(queue)
        self.clock = clock
        self.dead = dead_letters
        self._reverify = reverify
        self._recorded: tuple[int, int] | None = None  # (UTC day, active) last written
        self._recorded_at = 0.0

    def handlers(self) -> dict[str, tuple[Callable[[Any], Any], Callable[[Any], Awaitable[Any]]]]:
        return {
            aj.ADMIN_OVERVIEW: (OverviewQuery.from_wire, self.overview),
            aj.ADMIN_MONEY: (MoneyQuery.from_wire, self.money),
            aj.ADMIN_ACTIVE_SERIES: (SinceQuery.from_wire, self.active_series),
            aj.ADMIN_PAYMENTS: (AdminPaymentsQuery.from_wire, self.payments),
            aj.ADMIN_SUBSCRIBERS: (SubscribersQuery.from_wire, self.subscribers),
            aj.ADMIN_QUARANTINE: (NoArgs.from_wire, self.quarantine),
            aj.ADMIN_DEAD_LETTERS: (NoArgs.from_wire, self.dead_letters),
            aj.ADMIN_WEBHOOKS: (NoArgs.from_wire, self.webhooks),
            aj.ADMIN_EXTEND: (AdminCommand.from_wire, self.extend),
            aj.ADMIN_REVOKE: (AdminCommand.from_wire, self.revoke),
            aj.ADMIN_REVERIFY: (AdminCommand.from_wire, self.reverify),
            aj.ADMIN_REPLAY: (AdminCommand.from_wire, self.replay),
            aj.ADMIN_REDELIVER: (AdminCommand.from_wire, self.redeliver),
            aj.ADMIN_CODES: (NoArgs.from_wire, self.codes),
            aj.ADMIN_DISABLE_PROMO: (AdminCommand.from_wire, self.disable_promo),
            aj.ADMIN_ALERTS: (NoArgs.from_wire, self.stream_alerts),
            aj.ADMIN_SKIP_ALERT: (AdminCommand.from_wire, self.skip_alert),
            aj.ADMIN_REPLAY_ALERT: (AdminCommand.from_wire, self.replay_alert),
        }

    def register(self, registry: Any) -> None:
        for name, (from_wire, handler) in self.handlers().items():
            registry.register(name, typed_handler(from_wire, handler))

    # --- reading ------------------------------------------------------------------------------

    async def money(self, job: MoneyQuery) -> MoneyIntervals:
        return MoneyIntervals(tuple(await self.ledger.reports.money_between(job.edges)))

    async def overview(self, job: OverviewQuery) -> AdminOverview:
        f = await self.store.overview(self.ledger.reports, job.now, job.since, job.edges, 10)
        await self._record_active(f.counts.active)
        dead = 0
        for queue in aj.DEAD_QUEUES:
            try:
                dead += await self.dead.count(queue)
            except Exception as e:  # the overview still answers; the dead-letters page says more
                log.warn("dead letters of {queue} not counted: {error}", queue=queue, error=str(e))
        return AdminOverview(tuple(f.money), f.counts.active, f.counts.new, f.counts.lapsed, f.open_quarantine, dead,
                             tuple(f.last_payments))

    async def _record_active(self, active: int) -> None:
        """Today's point of the active-subscribers line: written when the count changed or
        every RECORD_EVERY seconds, not on every look (a write would compete with payments)."""
        now = self.clock.seconds()
        if self._recorded == (int(now // 86400), active) and now - self._recorded_at < RECORD_EVERY:
            return
        await self.ledger.reports.record_active(now, active)
        self._recorded, self._recorded_at = (int(now // 86400), active), now

    async def active_series(self, job: SinceQuery) -> Rows:
        series = await self.ledger.reports.active_series(job.since)
        return Rows(tuple({"day": day, "active": active} for day, active in series))

    async def payments(self, job: AdminPaymentsQuery) -> Rows:
        rows, cursor = await self.store.payments(job.since, job.until, job.status, job.label, job.chat_id,
                                                 job.before, job.limit)
        return Rows(tuple(rows), cursor)

    async def subscribers(self, job: SubscribersQuery) -> Rows:
        return Rows(tuple(await self.store.subscribers(job.search, self.clock.seconds(), job.limit)))

    async def quarantine(self, job: NoArgs) -> Rows:
        items = await self.ledger.quarantine.quarantine_list(unresolved_only=True, limit=aj.MAX_ROWS)
        return Rows(tuple({"id": q.id, "received_at": q.received_at, "reason": q.reason[:200],
                           "amount": _body_field(q.body, "amount"), "operation_id": _body_field(q.body, "operation_id")}
                          for q in items))

    async def dead_letters(self, job: NoArgs) -> Rows:
        rows = []
        for queue in aj.DEAD_QUEUES:
            for d in await self.dead.list(queue, 100):
                rows.append({"queue": queue, "id": d["id"], "task": d.get("task", ""), "failed_at": d.get("failed_at"),
                             "error": str(d.get("error", ""))[:300], "attempts": int(d.get("attempts") or 1)})
        return Rows(tuple(rows))

    async def webhooks(self, job: NoArgs) -> Rows:
        rows = []
        for status in ("failed", "pending"):
            for w in await self.ledger.webhooks.webhook_deliveries(status=status, limit=100):
                endpoint = await self.ledger.webhooks.webhook_endpoint_get(w.endpoint_id)
                rows.append({"id": f"{w.endpoint_id}:{w.event_id}", "url": endpoint.url if endpoint else "",
                             "event": w.type, "status": w.status, "attempts": w.attempts,
                             "last_at": w.done_at or w.first_attempt_at})
        return Rows(tuple(rows))

    async def codes(self, job: NoArgs) -> Rows:
        now = self.clock.seconds()
        rows: list[dict[str, Any]] = []
        for p in await self.ledger.promo.list():
            rows.append({"type": "promo", "code": p.code, "percent": p.percent, "off": p.off, "uses": p.uses,
                         "used": p.used, "ends_at": p.ends_at, "active": p.window_problem(now) is None})
        rows += [{"type": "access", **c} for c in await self.store.access_codes(aj.MAX_ROWS)]
        return Rows(tuple(rows))

    # --- actions ------------------------------------------------------------------------------

    async def extend(self, job: AdminCommand) -> ActionDone:
        if job.chat_id is None or job.days is None:
            raise InvalidTaskArgs("extend needs chat_id and days")
        change = await self.store.extend(job.key, job.admin, job.chat_id, job.days, self.clock.seconds())
        if change.applied and change.was_expired and change.ends_at is not None:
            # access was taken away when it lapsed: send a new invite (once per action key)
            from ymds.billing.invoices import iso
            await self.bot.grant_access(GrantAccess(job.chat_id, iso(change.ends_at), key=f"admin-extend:{job.key}"))
        log.info("admin {admin} extended {chat_id} by {days} days (applied={applied})", admin=job.admin,
                 chat_id=job.chat_id, days=job.days, applied=change.applied)
        return ActionDone(change.applied, change.count)

    async def revoke(self, job: AdminCommand) -> ActionDone:
        if job.chat_id is None:
            raise InvalidTaskArgs("revoke needs chat_id")
        change = await self.store.revoke(job.key, job.admin, job.chat_id, self.clock.seconds())
        log.info("admin {admin} revoked {chat_id} (applied={applied})", admin=job.admin, chat_id=job.chat_id,
                 applied=change.applied)
        return ActionDone(change.applied, change.count)

    async def _once(self, job: AdminCommand, action: str, run: Callable[[], Awaitable[dict[str, Any]]]) -> ActionDone:
        """Claim the key, run the action, record it; a failed action frees the key."""
        claim = await self.store.claim(job.key, job.admin, action, job.item or "*", self.clock.seconds())
        if not claim.applied:
            return ActionDone(False, int(claim.result.get("count", 0)))
        try:
            result = await run()
        except Exception:
            await self.store.forget(job.key)
            raise
        await self.store.finish(job.key, job.admin, action, result, self.clock.seconds())
        log.info("admin {admin} {action} {item}: {count}", admin=job.admin, action=action, item=job.item or "*",
                 count=result.get("count"))
        return ActionDone(True, int(result.get("count", 0)))

    async def reverify(self, job: AdminCommand) -> ActionDone:
        only = None
        if job.item:
            if not job.item.isdigit():
                raise InvalidTaskArgs("a quarantine item is its number")
            only = int(job.item)

        async def run() -> dict[str, Any]:
            if self._reverify is None:
                raise InvalidTaskArgs("reverify is not available in this billing process")
            counts = await self._reverify(only=only)
            return {"item": job.item or "*", "count": int(counts.get("applied", 0)) + int(counts.get("api_confirmed", 0)),
                    "checked": int(counts.get("checked", 0))}
        return await self._once(job, "reverify", run)

    async def replay(self, job: AdminCommand) -> ActionDone:
        queue, _, entry = job.item.partition("/")
        if queue not in aj.DEAD_QUEUES or not entry:
            raise InvalidTaskArgs("a dead letter is <queue>/<entry id>")

        async def run() -> dict[str, Any]:
            try:
                count = await self.dead.replay(queue, entry)
            except ValueError as e:
                raise InvalidTaskArgs(str(e)) from None
            return {"item": job.item, "count": count}
        return await self._once(job, "replay", run)

    async def disable_promo(self, job: AdminCommand) -> ActionDone:
        if not job.item:
            raise InvalidTaskArgs("disable needs the promo code")

        async def run() -> dict[str, Any]:
            try:
                done = await self.ledger.promo.disable(job.item, self.clock.seconds())
            except Exception as e:  # SellingRefused: not a code
                raise InvalidTaskArgs(str(e)[:200]) from None
            return {"item": job.item, "count": int(bool(done))}
        return await self._once(job, "disable_promo", run)

    async def redeliver(self, job: AdminCommand) -> ActionDone:
        endpoint, _, event = job.item.partition(":")
        if not endpoint or not event:
            raise InvalidTaskArgs("a webhook delivery is <endpoint id>:<event id>")

        async def run() -> dict[str, Any]:
            concerned = await self.ledger.webhooks.webhook_redeliver(self.clock.seconds(), event_id=event,
                                                                     endpoint_id=endpoint)
            for target in concerned:
                await self.billing.webhook_deliver(target, key=f"admin-redeliver:{job.key}:{target}")
            return {"item": job.item, "count": len(concerned)}
        return await self._once(job, "redeliver", run)

    # --- the stream overlay's alerts (issue 17) ------------------------------------------------

    async def stream_alerts(self, job: NoArgs) -> Rows:
        return Rows(tuple(await self.store.stream_alerts(aj.MAX_ROWS)))

    async def skip_alert(self, job: AdminCommand) -> ActionDone:
        target = self.alerts.entry(job.item)
        return await self._once(job, "skip_alert", lambda: self.alerts.skip(target))

    async def replay_alert(self, job: AdminCommand) -> ActionDone:
        target = self.alerts.entry(job.item)
        return await self._once(job, "replay_alert", lambda: self.alerts.replay(target))
