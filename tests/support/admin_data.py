"""A small real in-memory DashboardData for the dashboard tests (phase 1, before billing backs it).

It keeps payments, subscribers, quarantine, dead letters and webhook deliveries in lists,
computes the overview and the series from them, applies actions once per idempotency key
and records an audit line (admin, action, target) for each applied action.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from ymds.admin.data import (KINDS, AccessCodeRow, ActionResult, AdminAction, Codes, CountPoint, DeadLetter, Overview,
                             PaymentFilter, PaymentPage, PaymentRow, PromoCodeRow, QuarantineItem, RevenuePoint,
                             Subscriber, WebhookDelivery)

PAID = ("paid", "overpaid", "late")


class InMemoryDashboardData:
    def __init__(self) -> None:
        self.payments_list: list[PaymentRow] = []
        self.subscribers_list: list[Subscriber] = []
        self.quarantine_list: list[QuarantineItem] = []
        self.dead_list: list[DeadLetter] = []
        self.webhook_list: list[WebhookDelivery] = []
        self.promo_list: list[PromoCodeRow] = []
        self.access_list: list[AccessCodeRow] = []
        self.audit: list[tuple[str, str, str]] = []
        self._done: dict[str, ActionResult] = {}

    # --- reading ----------------------------------------------------------------------------

    def _paid_between(self, start: datetime, end: datetime) -> dict[str, Decimal]:
        money = {k: Decimal(0) for k in KINDS}
        for p in self.payments_list:
            if p.status in PAID and start <= p.at < end:
                money[p.kind] += p.amount
        return money

    async def overview(self, now: datetime) -> Overview:
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        tomorrow = midnight + timedelta(days=1)
        money = {"today": self._paid_between(midnight, tomorrow),
                 "7d": self._paid_between(tomorrow - timedelta(days=7), tomorrow),
                 "30d": self._paid_between(tomorrow - timedelta(days=30), tomorrow)}
        month_ago = now - timedelta(days=30)
        active = [s for s in self.subscribers_list if s.status == "active"]
        lapsed = [s for s in self.subscribers_list
                  if s.status != "active" and s.expires_at and month_ago <= s.expires_at <= now]
        new = [s for s in active if s.expires_at and s.expires_at - timedelta(days=30) >= month_ago]
        last = sorted(self.payments_list, key=lambda p: p.at, reverse=True)[:10]
        return Overview(money, len(active), len(new), len(lapsed), len(self.quarantine_list), len(self.dead_list), last)

    async def revenue_series(self, now: datetime, days: int, bucket: str) -> list[RevenuePoint]:
        today = now.date()
        first = today - timedelta(days=days - 1)
        if bucket == "week":
            first -= timedelta(days=first.weekday())
        step = 7 if bucket == "week" else 1
        points = []
        start = first
        while start <= today:
            lo = datetime.combine(start, datetime.min.time(), now.tzinfo)
            points.append(RevenuePoint(start, self._paid_between(lo, lo + timedelta(days=step))))
            start += timedelta(days=step)
        return points

    async def subscriber_series(self, now: datetime, days: int) -> list[CountPoint]:
        today = now.date()
        active = len([s for s in self.subscribers_list if s.status == "active"])
        # a gentle made-up history ending at today's real count
        return [CountPoint(today - timedelta(days=days - 1 - i), max(0, active - (days - 1 - i) // 7))
                for i in range(days)]

    async def payments(self, where: PaymentFilter, cursor: str | None, limit: int) -> PaymentPage:
        rows = sorted(self.payments_list, key=lambda p: (p.at, p.id), reverse=True)
        rows = [p for p in rows if (where.since is None or p.at >= where.since)
                and (where.until is None or p.at <= where.until) and (not where.status or p.status == where.status)
                and (not where.label or where.label in p.label) and (not where.chat or p.chat == where.chat)]
        offset = int(cursor) if cursor and cursor.isdigit() else 0
        page = rows[offset:offset + limit]
        more = str(offset + limit) if offset + limit < len(rows) else None
        return PaymentPage(page, more)

    async def subscribers(self, search: str, limit: int) -> list[Subscriber]:
        s = search.lower()
        return [x for x in self.subscribers_list
                if not s or s in x.chat_id or s in x.name.lower()][:limit]

    async def quarantine(self) -> list[QuarantineItem]:
        return list(self.quarantine_list)

    async def dead_letters(self) -> list[DeadLetter]:
        return list(self.dead_list)

    async def webhook_deliveries(self) -> list[WebhookDelivery]:
        return list(self.webhook_list)

    async def codes(self) -> Codes:
        return Codes(list(self.promo_list), list(self.access_list))

    # --- actions ----------------------------------------------------------------------------

    def _once(self, action: AdminAction, name: str, target: str, apply) -> ActionResult:
        if action.idempotency_key in self._done:
            return ActionResult(applied=False, count=self._done[action.idempotency_key].count)
        count = apply()
        result = ActionResult(applied=True, count=count)
        self._done[action.idempotency_key] = result
        self.audit.append((action.admin, name, target))
        return result

    def _subscriber_index(self, chat_id: str) -> int:
        for i, s in enumerate(self.subscribers_list):
            if s.chat_id == chat_id:
                return i
        raise KeyError(chat_id)

    async def extend_subscriber(self, action: AdminAction, chat_id: str, days: int) -> ActionResult:
        def apply() -> int:
            i = self._subscriber_index(chat_id)
            s = self.subscribers_list[i]
            base = max(s.expires_at or datetime.now(timezone.utc), datetime.now(timezone.utc))
            self.subscribers_list[i] = replace(s, expires_at=base + timedelta(days=days), status="active")
            return 1
        return self._once(action, "extend", f"{chat_id}+{days}", apply)

    async def revoke_subscriber(self, action: AdminAction, chat_id: str) -> ActionResult:
        def apply() -> int:
            i = self._subscriber_index(chat_id)
            self.subscribers_list[i] = replace(self.subscribers_list[i], status="revoked")
            return 1
        return self._once(action, "revoke", chat_id, apply)

    async def reverify(self, action: AdminAction, item_id: str | None) -> ActionResult:
        def apply() -> int:
            taken = [q for q in self.quarantine_list if item_id is None or q.id == item_id]
            self.quarantine_list = [q for q in self.quarantine_list if q not in taken]
            return len(taken)
        return self._once(action, "reverify", item_id or "*", apply)

    async def replay_dead_letter(self, action: AdminAction, queue: str, letter_id: str) -> ActionResult:
        def apply() -> int:
            before = len(self.dead_list)
            self.dead_list = [d for d in self.dead_list if (d.queue, d.id) != (queue, letter_id)]
            return before - len(self.dead_list)
        return self._once(action, "replay", f"{queue}/{letter_id}", apply)

    async def disable_promo(self, action: AdminAction, code: str) -> ActionResult:
        def apply() -> int:
            for i, p in enumerate(self.promo_list):
                if p.code == code and p.active:
                    self.promo_list[i] = replace(p, active=False)
                    return 1
            return 0
        return self._once(action, "disable_promo", code, apply)

    async def redeliver_webhook(self, action: AdminAction, delivery_id: str) -> ActionResult:
        def apply() -> int:
            for i, w in enumerate(self.webhook_list):
                if w.id == delivery_id:
                    self.webhook_list[i] = replace(w, status="pending", attempts=w.attempts + 1)
                    return 1
            return 0
        return self._once(action, "redeliver", delivery_id, apply)


def sample_data(now: datetime) -> InMemoryDashboardData:
    """A believable small business: 60 days of payments, subscribers, one of everything to fix."""
    data = InMemoryDashboardData()
    n = 0
    for back in range(60):
        at = now - timedelta(days=back, hours=1)
        for j in range(back % 3 + 1):
            n += 1
            kind = "subscription" if j % 2 == 0 else "donation"
            amount = Decimal("1990.00") if kind == "subscription" else Decimal(100 + 50 * (back % 5))
            data.payments_list.append(PaymentRow(f"p{n}", at - timedelta(minutes=j), amount, kind, "paid",
                                                 f"inv-{n}", str(1000 + n % 3) if kind == "subscription" else None, f"op{n}"))
    data.payments_list.append(PaymentRow("p-held", now - timedelta(hours=2), Decimal("500.00"), "donation", "held",
                                         "inv-held", None, "op-held"))
    for i, name in enumerate(["Анна", "Boris", "Вера", "Dmitry"]):
        status = "active" if i < 3 else "lapsed"
        data.subscribers_list.append(Subscriber(str(1000 + i), name, "month",
                                                now + timedelta(days=10 * i + 5 if i < 3 else -3), status))
    data.quarantine_list.append(QuarantineItem("q1", now - timedelta(hours=5), Decimal("1990.00"),
                                               "amount does not match", "op-q1"))
    data.quarantine_list.append(QuarantineItem("q2", now - timedelta(hours=3), Decimal("250.00"),
                                               "unknown label", "op-q2"))
    data.dead_list.append(DeadLetter("billing", "1764000000000-0", "grant_access", now - timedelta(hours=7), "Telegram 403", 5))
    data.webhook_list.append(WebhookDelivery("w1", "https://example.org/hook", "payment.paid", "failed", 6,
                                             now - timedelta(hours=1)))
    data.promo_list.append(PromoCodeRow("SPRING", 20, None, 3, 100, now + timedelta(days=20), True))
    data.promo_list.append(PromoCodeRow("OLD50", None, Decimal("50.00"), 10, None, None, False))
    data.access_list.append(AccessCodeRow("K7M2QX9PTA", "month", 30, 1, 5, None, False))
    data.access_list.append(AccessCodeRow("R4ZW…", "year", 365, 0, 1, None, True))
    return data
