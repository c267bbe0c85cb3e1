"""The dashboard's ledger work that no other store does: its lists (payments newest first
with their kind, subscribers) and its actions, each applied once per idempotency key
(table ``admin_actions``, schema 006) and written to the audit events with the admin's id.

Extending and revoking a subscription happen in the same transaction as the key's claim,
so a double submit changes nothing twice.  Actions done elsewhere (reverify, replay,
redeliver) claim the key first, then :meth:`AdminStore.finish` records what was done, or
:meth:`AdminStore.forget` frees the key when the action failed (the owner may retry).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Sequence

from twisted.internet.defer import Deferred

from ymds.billing.database import Database
from ymds.billing.sql import DAY, json_text
from ymds.billing.stores.reports import ReportStore, SubscriberCounts

MAX_LIST = 500


@dataclass(frozen=True)
class Claim:
    """``applied`` False: the key was used before; ``result`` is what it did then."""
    applied: bool
    result: dict[str, Any]


@dataclass(frozen=True)
class OverviewFigures:
    money: list[dict[str, Decimal]]
    counts: SubscriberCounts
    open_quarantine: int
    last_payments: list[dict[str, Any]]


@dataclass(frozen=True)
class SubscriptionChange:
    applied: bool
    count: int  # 0: no such subscription
    ends_at: float | None = None
    was_expired: bool = False


class AdminStore:
    def __init__(self, db: Database):
        self._db = db

    # --- idempotency ----------------------------------------------------------------------

    def _claim_in(self, txn: Any, key: str, admin: str, action: str, target: str, now: float) -> Claim:
        row = self._db.one(txn, "INSERT INTO admin_actions (idempotency_key, admin, action, target, result, at) "
                                "VALUES (?, ?, ?, ?, '{}', ?) ON CONFLICT (idempotency_key) DO NOTHING "
                                "RETURNING idempotency_key", (key, admin, action, target, now))
        if row is not None:
            return Claim(True, {})
        old = self._db.one(txn, "SELECT result FROM admin_actions WHERE idempotency_key = ?", (key,))
        return Claim(False, json.loads(old[0] or "{}") if old else {})

    def claim(self, key: str, admin: str, action: str, target: str, now: float) -> Deferred[Claim]:
        """Take ``key`` for this action (applied=True), or say it was used (applied=False)."""
        return self._db.run(self._claim_in, key, admin, action, target, now)

    def finish(self, key: str, admin: str, action: str, result: dict[str, Any], now: float,
               chat_id: int | None = None) -> Deferred[None]:
        """Record what a claimed action did, and its audit event ("admin_<action>")."""
        def q(txn: Any) -> None:
            self._db.execute(txn, "UPDATE admin_actions SET result = ? WHERE idempotency_key = ?",
                             (json_text(result), key))
            self._db.add_event(txn, now, "admin_" + action, chat_id=chat_id, admin=admin, key=key, **result)
        return self._db.run(q)

    def forget(self, key: str) -> Deferred[None]:
        """Free a claimed key whose action failed."""
        def q(txn: Any) -> None:
            self._db.execute(txn, "DELETE FROM admin_actions WHERE idempotency_key = ?", (key,))
        return self._db.run(q)

    # --- subscriptions --------------------------------------------------------------------

    def extend(self, key: str, admin: str, chat_id: int, days: int, now: float) -> Deferred[SubscriptionChange]:
        """Add ``days`` to the subscription (from now if it ended), once per key."""
        def q(txn: Any) -> SubscriptionChange:
            claim = self._claim_in(txn, key, admin, "extend", f"{chat_id}+{days}", now)
            if not claim.applied:
                return SubscriptionChange(False, int(claim.result.get("count", 0)), claim.result.get("ends_at"))
            db = self._db
            row = db.one(txn, f"SELECT ends_at, expired FROM subscriptions WHERE chat_id = ?{db.dialect.for_update}",
                         (chat_id,))
            if row is None:
                return self._done(txn, key, admin, "extend", chat_id, now, SubscriptionChange(True, 0))
            ends_at = max(float(row[0]), now) + days * DAY
            db.execute(txn, "UPDATE subscriptions SET ends_at = ?, updated_at = ?, reminded_window = NULL, expired = 0 "
                            "WHERE chat_id = ?", (ends_at, now, chat_id))
            change = SubscriptionChange(True, 1, ends_at, bool(row[1]))
            return self._done(txn, key, admin, "extend", chat_id, now, change, days=days)
        return self._db.run(q)

    def revoke(self, key: str, admin: str, chat_id: int, now: float) -> Deferred[SubscriptionChange]:
        """End the subscription now (the expiry sweep then removes access), once per key."""
        def q(txn: Any) -> SubscriptionChange:
            claim = self._claim_in(txn, key, admin, "revoke", str(chat_id), now)
            if not claim.applied:
                return SubscriptionChange(False, int(claim.result.get("count", 0)), claim.result.get("ends_at"))
            cur = self._db.execute(txn, "UPDATE subscriptions SET ends_at = ?, updated_at = ?, expired = 0 "
                                        "WHERE chat_id = ? AND ends_at > ?", (now, now, chat_id, now))
            change = SubscriptionChange(True, cur.rowcount, now if cur.rowcount else None)
            return self._done(txn, key, admin, "revoke", chat_id, now, change)
        return self._db.run(q)

    def _done(self, txn: Any, key: str, admin: str, action: str, chat_id: int, now: float,
              change: SubscriptionChange, **extra: Any) -> SubscriptionChange:
        result = {"count": change.count, "ends_at": change.ends_at, **extra}
        self._db.execute(txn, "UPDATE admin_actions SET result = ? WHERE idempotency_key = ?", (json_text(result), key))
        self._db.add_event(txn, now, "admin_" + action, chat_id=chat_id, admin=admin, key=key, **result)
        return change

    # --- lists ------------------------------------------------------------------------------

    def overview(self, reports: ReportStore, now: float, since: float, edges: Sequence[float],
                 last: int) -> Deferred[OverviewFigures]:
        """Everything the overview reads from the ledger, in one read transaction."""
        def q(txn: Any) -> OverviewFigures:
            money = reports.money_between_in(txn, edges)
            counts = reports.subscriber_counts_in(txn, now, since)
            quarantined = int(self._db.one(txn, "SELECT COUNT(*) FROM quarantine WHERE resolved_at IS NULL")[0])
            rows, _ = self._payments_in(txn, None, None, "", "", None, None, last)
            return OverviewFigures(money, counts, quarantined, rows)
        return self._db.run(q, write=False)

    def payments(self, since: float | None, until: float | None, status: str, label: str, chat_id: int | None,
                 before: int | None, limit: int) -> Deferred[tuple[list[dict[str, Any]], int | None]]:
        """Newest first (by seq), with the kind of their invoice; and the next page's cursor."""
        return self._db.run(self._payments_in, since, until, status, label, chat_id, before, limit, write=False)

    def _payments_in(self, txn: Any, since: float | None, until: float | None, status: str, label: str,
                     chat_id: int | None, before: int | None, limit: int) -> tuple[list[dict[str, Any]], int | None]:
        where, params = ["1 = 1"], []
        for clause, value in (("p.received_at >= ?", since), ("p.received_at < ?", until),
                              ("p.status = ?", status or None), ("p.label = ?", label or None),
                              ("p.chat_id = ?", chat_id), ("p.seq < ?", before)):
            if value is not None:
                where.append(clause)
                params.append(value)
        limit = max(1, min(int(limit), MAX_LIST))
        query = ("SELECT p.seq, p.operation_id, p.received_at, p.amount, p.status, p.label, p.chat_id, i.kind "
                 "FROM payments p LEFT JOIN invoices i ON i.label = p.invoice_label WHERE "
                 + " AND ".join(where) + " ORDER BY p.seq DESC LIMIT ?")

        rows = self._db.all(txn, query, params + [limit + 1])
        money = self._db.dialect.money_out
        out = [{"seq": int(seq), "operation_id": op, "at": float(at), "amount": money(amount), "status": st,
                "label": lab or "", "chat_id": chat, "kind": "subscription" if kind == "subscription" else "donation"}
               for seq, op, at, amount, st, lab, chat, kind in rows[:limit]]
        return out, (out[-1]["seq"] if len(rows) > limit else None)

    def subscribers(self, search: str, now: float, limit: int) -> Deferred[list[dict[str, Any]]]:
        """Subscriptions whose chat id contains ``search`` (all when empty), latest end first."""
        limit = max(1, min(int(limit), MAX_LIST))
        digits = "".join(ch for ch in search if ch.isdigit())

        def q(txn: Any) -> list[dict[str, Any]]:
            query = "SELECT chat_id, plan, ends_at, expired FROM subscriptions"
            params: list[Any] = []
            if search:
                query += " WHERE CAST(chat_id AS TEXT) LIKE ?"
                params.append(f"%{digits}%" if digits else "-")
            rows = self._db.all(txn, query + " ORDER BY ends_at DESC LIMIT ?", params + [limit])
            return [{"chat_id": int(c), "plan": p or "", "ends_at": float(e),
                     "status": "active" if float(e) > now else "lapsed"} for c, p, e, _ in rows]
        return self._db.run(q, write=False)

    def access_codes(self, limit: int) -> Deferred[list[dict[str, Any]]]:
        """Gift and access codes, newest first, with their redemptions; a gift code (bought by a
        payer, who holds it) shows only its first four characters."""
        def q(txn: Any) -> list[dict[str, Any]]:
            rows = self._db.all(txn, "SELECT c.code, c.plan, c.days, c.uses, c.expires_at, c.gift_invoice, "
                                     "(SELECT COUNT(*) FROM code_redemptions r WHERE r.code = c.code) "
                                     "FROM access_codes c ORDER BY c.created_at DESC, c.code LIMIT ?",
                                (max(1, min(int(limit), MAX_LIST)),))
            return [{"code": code if gift is None else code[:4] + "…", "plan": plan or "", "days": int(days),
                     "uses": int(uses), "used": int(used), "expires_at": expires_at, "gift": gift is not None}
                    for code, plan, days, uses, expires_at, gift, used in rows]
        return self._db.run(q, write=False)

    def stream_alerts(self, limit: int) -> Deferred[list[dict[str, Any]]]:
        """The newest donation alerts of the overlay outbox (issue 17), newest first: the
        stream entry each became (None until published), the amount the donor paid, and the
        name only of a donor who chose to be shown."""
        def q(txn: Any) -> list[dict[str, Any]]:
            rows = self._db.all(txn, "SELECT o.operation_id, o.entry_id, o.created_at, o.sent_at, p.received_at, "
                                     "p.withdraw_amount, d.name FROM overlay_outbox o "
                                     "JOIN payments p ON p.operation_id = o.operation_id "
                                     "LEFT JOIN donation_public d ON d.label = p.invoice_label "
                                     "ORDER BY o.created_at DESC, o.operation_id DESC LIMIT ?",
                                (max(1, min(int(limit), MAX_LIST)),))
            money = self._db.dialect.money_out
            return [{"operation_id": str(op), "entry_id": entry, "queued_at": float(queued),
                     "sent_at": None if sent is None else float(sent), "at": float(at), "amount": money(amount),
                     "name": name} for op, entry, queued, sent, at, amount, name in rows]
        return self._db.run(q, write=False)
