"""The production DashboardData: billing answers over the job queue (AdminClient), the web
role turns its Unix times into the owner's local days and datetimes.

Day buckets are the owner's local days: this module computes their edges (local midnights,
DST included) and billing sums its half-hour figures between them.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Mapping, Sequence
from zoneinfo import ZoneInfo

from ymds.admin.data import (
    KINDS, AccessCodeRow, ActionResult, Codes, PromoCodeRow, AdminAction, CountPoint, DeadLetter, Overview, PaymentFilter, PaymentPage, PaymentRow,
    QuarantineItem, RevenuePoint, StreamAlert, Subscriber, WebhookDelivery,
)
from ymds.billing import admin_jobs as aj
from ymds.billing.admin_jobs import AdminClient, AdminCommand, AdminPaymentsQuery, OverviewQuery, SubscribersQuery

DAY = 86400


def local_midnight(day: date, tz: ZoneInfo) -> float:
    """Unix time of the start of ``day`` in ``tz``."""
    return datetime.combine(day, datetime.min.time(), tz).timestamp()


def _money(values: Mapping[str, Any]) -> dict[str, Decimal]:
    return {k: Decimal(str(values.get(k, "0"))).quantize(Decimal("0.01")) for k in KINDS}


def _add(a: Mapping[str, Decimal], b: Mapping[str, Decimal]) -> dict[str, Decimal]:
    return {k: a.get(k, Decimal(0)) + b.get(k, Decimal(0)) for k in KINDS}


class BillingDashboardData:
    """DashboardData over :class:`AdminClient`; ``tz`` is the owner's zone."""

    def __init__(self, client: AdminClient, tz: ZoneInfo):
        self.client = client
        self.tz = tz

    def _at(self, seconds: float | None) -> datetime:
        return datetime.fromtimestamp(float(seconds or 0), timezone.utc).astimezone(self.tz)

    def _payment(self, row: Mapping[str, Any]) -> PaymentRow:
        chat = row.get("chat_id")
        return PaymentRow(str(row.get("seq", "")), self._at(row.get("at")), Decimal(str(row.get("amount", "0"))),
                          str(row.get("kind", "donation")), str(row.get("status", "")), str(row.get("label", "")),
                          None if chat is None else str(chat), row.get("operation_id"))

    # --- reading ------------------------------------------------------------------------------

    async def overview(self, now: datetime) -> Overview:
        today = now.astimezone(self.tz).date()
        tomorrow = today + timedelta(days=1)
        edges = [local_midnight(tomorrow - timedelta(days=n), self.tz) for n in (30, 7, 1, 0)]
        ts = now.timestamp()
        o = await self.client.overview(OverviewQuery(ts, ts - 30 * DAY, tuple(edges)))
        m30_7, m7_1, today_money = (_money(m) for m in o.money)
        money = {"today": today_money, "7d": _add(m7_1, today_money), "30d": _add(m30_7, _add(m7_1, today_money))}
        return Overview(money, o.active, o.new, o.lapsed, o.open_quarantine, o.dead_letters,
                        tuple(self._payment(p) for p in o.last_payments))

    async def revenue_series(self, now: datetime, days: int, bucket: str) -> Sequence[RevenuePoint]:
        today = now.astimezone(self.tz).date()
        first = today - timedelta(days=days - 1)
        step = 1
        if bucket == "week":
            first -= timedelta(days=first.weekday())
            step = 7
        starts = []
        start = first
        while start <= today:
            starts.append(start)
            start += timedelta(days=step)
        edges = [local_midnight(d, self.tz) for d in starts + [starts[-1] + timedelta(days=step)]]
        got = await self.client.money(edges)
        return [RevenuePoint(d, _money(m)) for d, m in zip(starts, got.intervals)]

    async def subscriber_series(self, now: datetime, days: int) -> Sequence[CountPoint]:
        """Recorded once a day when the dashboard is looked at; days without a record
        carry the previous one (0 before the first)."""
        today = now.astimezone(self.tz).date()
        first = today - timedelta(days=days - 1)
        rows = (await self.client.active_series(local_midnight(first, self.tz) - DAY)).rows
        by_day = {date(1970, 1, 1) + timedelta(days=int(r["day"])): int(r["active"]) for r in rows}
        points, last = [], 0
        earlier = [d for d in by_day if d < first]
        if earlier:
            last = by_day[max(earlier)]
        for n in range(days):
            d = first + timedelta(days=n)
            last = by_day.get(d, last)
            points.append(CountPoint(d, last))
        return points

    async def payments(self, where: PaymentFilter, cursor: str | None, limit: int) -> PaymentPage:
        chat = int(where.chat) if where.chat.lstrip("-").isdigit() else None
        if where.chat and chat is None:
            return PaymentPage(())
        query = AdminPaymentsQuery(
            where.since.timestamp() if where.since else None, where.until.timestamp() if where.until else None,
            where.status[:20], where.label[:64], chat, int(cursor) if cursor and cursor.isdigit() else None,
            max(1, min(limit, aj.MAX_ROWS)))
        page = await self.client.payments(query)
        return PaymentPage(tuple(self._payment(r) for r in page.rows),
                           None if page.next_cursor is None else str(page.next_cursor))

    async def subscribers(self, search: str, limit: int) -> Sequence[Subscriber]:
        rows = (await self.client.subscribers(SubscribersQuery(search[:64], max(1, min(limit, aj.MAX_ROWS))))).rows
        return [Subscriber(str(r["chat_id"]), "", str(r.get("plan", "")), self._at(r.get("ends_at")),
                           str(r.get("status", ""))) for r in rows]

    async def quarantine(self) -> Sequence[QuarantineItem]:
        items = []
        for r in (await self.client.quarantine()).rows:
            try:
                amount = Decimal(str(r.get("amount") or "0")).quantize(Decimal("0.01"))
            except ArithmeticError:
                amount = Decimal("0.00")
            items.append(QuarantineItem(str(r["id"]), self._at(r.get("received_at")), amount, str(r.get("reason", "")),
                                        str(r.get("operation_id", ""))))
        return items

    async def dead_letters(self) -> Sequence[DeadLetter]:
        return [DeadLetter(str(r["queue"]), str(r["id"]), str(r.get("task", "")), self._at(r.get("failed_at")),
                           str(r.get("error", "")), int(r.get("attempts") or 1))
                for r in (await self.client.dead_letters()).rows]

    async def webhook_deliveries(self) -> Sequence[WebhookDelivery]:
        return [WebhookDelivery(str(r["id"]), str(r.get("url", "")), str(r.get("event", "")), str(r.get("status", "")),
                                int(r.get("attempts") or 0), None if r.get("last_at") is None else self._at(r["last_at"]))
                for r in (await self.client.webhooks()).rows]

    async def codes(self) -> Codes:
        promo, access = [], []
        for r in (await self.client.codes()).rows:
            until = r.get("ends_at") if r.get("type") == "promo" else r.get("expires_at")
            at = None if until is None else self._at(until)
            if r.get("type") == "promo":
                off = None if r.get("off") is None else Decimal(str(r["off"]))
                promo.append(PromoCodeRow(str(r["code"]), r.get("percent"), off, int(r.get("used") or 0), r.get("uses"),
                                          at, bool(r.get("active"))))
            else:
                access.append(AccessCodeRow(str(r["code"]), str(r.get("plan", "")), int(r.get("days") or 0),
                                            int(r.get("used") or 0), int(r.get("uses") or 0), at, bool(r.get("gift"))))
        return Codes(promo, access)

    async def stream_alerts(self) -> Sequence[StreamAlert]:
        return [StreamAlert(str(r["operation_id"]), None if r.get("entry_id") is None else str(r["entry_id"]),
                            self._at(r.get("at")), Decimal(str(r.get("amount") or "0")).quantize(Decimal("0.01")),
                            None if r.get("name") is None else str(r["name"]), r.get("sent_at") is not None)
                for r in (await self.client.alerts()).rows]

    # --- actions ------------------------------------------------------------------------------

    async def _act(self, task: str, action: AdminAction, **target: Any) -> ActionResult:
        done = await self.client.act(task, AdminCommand(action.admin[:64], action.idempotency_key[:aj.MAX_KEY],
                                                        **target))
        return ActionResult(done.applied, done.count, dict(done.details))

    async def extend_subscriber(self, action: AdminAction, chat_id: str, days: int) -> ActionResult:
        if not chat_id.lstrip("-").isdigit():
            return ActionResult(False, 0)
        return await self._act(aj.ADMIN_EXTEND, action, chat_id=int(chat_id), days=days)

    async def revoke_subscriber(self, action: AdminAction, chat_id: str) -> ActionResult:
        if not chat_id.lstrip("-").isdigit():
            return ActionResult(False, 0)
        return await self._act(aj.ADMIN_REVOKE, action, chat_id=int(chat_id))

    async def reverify(self, action: AdminAction, item_id: str | None) -> ActionResult:
        return await self._act(aj.ADMIN_REVERIFY, action, item=item_id or "")

    async def replay_dead_letter(self, action: AdminAction, queue: str, letter_id: str) -> ActionResult:
        return await self._act(aj.ADMIN_REPLAY, action, item=f"{queue}/{letter_id}")

    async def disable_promo(self, action: AdminAction, code: str) -> ActionResult:
        return await self._act(aj.ADMIN_DISABLE_PROMO, action, item=code[:32])

    async def redeliver_webhook(self, action: AdminAction, delivery_id: str) -> ActionResult:
        return await self._act(aj.ADMIN_REDELIVER, action, item=delivery_id)

    async def skip_alert(self, action: AdminAction, entry_id: str) -> ActionResult:
        return await self._act(aj.ADMIN_SKIP_ALERT, action, item=entry_id[:40])

    async def replay_alert(self, action: AdminAction, entry_id: str) -> ActionResult:
        return await self._act(aj.ADMIN_REPLAY_ALERT, action, item=entry_id[:40])
