"""Invoices: creating them, looking them up, expiring and pruning the unpaid ones."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

from twisted.internet.defer import Deferred, fail

from ymds.billing.database import Database
from ymds.billing.ledger import Invoice, LedgerError
from ymds.billing.sql import CENT, INVOICE_COLS, invoice_from_row, json_text
from ymds.links import is_our_label, new_label


def check_invoice_args(kind: str, amount: Any, plan: str | None, days: int | None, chat_id: int | None) -> str | None:
    """Why these invoice arguments are refused, or None when they are fine."""
    if kind not in ("subscription", "donation"):
        return f"invoice kind {kind!r} is not subscription or donation"
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0 or amount >= Decimal("1e10"):
        return f"invoice amount {amount!r} is not a positive Decimal below 10^10"
    if kind == "subscription" and (not plan or not days or chat_id is None):
        return "a subscription invoice needs a plan, its days and a chat"
    return None


class InvoiceStore:
    """IInvoiceStore over SQL."""

    def __init__(self, db: Database):
        self._db = db

    def create_invoice(self, kind: str, amount: Decimal, now: float, ttl: float, plan: str | None = None,
                       days: int | None = None, chat_id: int | None = None, user_id: int | None = None,
                       description: str = "", metadata: Mapping[str, Any] | None = None, label: str | None = None,
                       reuse_open: bool = False) -> Deferred[Invoice]:
        problem = check_invoice_args(kind, amount, plan, days, chat_id)
        if problem:
            return fail(LedgerError(problem))
        amount = amount.quantize(CENT)
        label = label or new_label()
        if not is_our_label(label):
            return fail(LedgerError(f"invoice label {label!r} is not in our format"))
        return self._db.run(self.insert, kind, amount, now, ttl, plan, days, chat_id, user_id,
                            description or "", dict(metadata or {}), label, reuse_open)

    def insert(self, txn: Any, kind: str, amount: Decimal, now: float, ttl: float, plan: str | None,
               days: int | None, chat_id: int | None, user_id: int | None, description: str,
               metadata: dict[str, Any], label: str, reuse_open: bool) -> Invoice:
        """create_invoice inside a running transaction ``txn`` (arguments already checked)."""
        db = self._db
        if reuse_open and chat_id is not None and plan:
            row = db.one(
                txn,
                f"SELECT {INVOICE_COLS} FROM invoices WHERE chat_id = ? AND plan = ? AND status = 'open' "
                "AND amount = ? AND expires_at > ? ORDER BY created_at DESC LIMIT 1",
                (chat_id, plan, db.dialect.money_in(amount), now + ttl / 2))
            if row is not None:
                return invoice_from_row(db.dialect, row)
        expires_at = now + ttl
        db.execute(txn, f"INSERT INTO invoices ({INVOICE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, NULL, NULL)",
                   (label, kind, plan, days, chat_id, user_id, db.dialect.money_in(amount), description,
                    json_text(metadata), now, expires_at))
        db.add_event(txn, now, "invoice_created", label=label, chat_id=chat_id, invoice_kind=kind, plan=plan,
                     amount=amount, expires_at=expires_at)
        return Invoice(label, kind, plan, days, chat_id, user_id, amount, description, metadata, "open",
                       now, expires_at)

    def get_invoice(self, label: str) -> Deferred[Invoice | None]:
        def q(txn: Any) -> Invoice | None:
            row = self._db.one(txn, f"SELECT {INVOICE_COLS} FROM invoices WHERE label = ?", (label,))
            return None if row is None else invoice_from_row(self._db.dialect, row)
        return self._db.run(q, write=False)

    def open_invoices_for(self, chat_id: int, now: float | None = None) -> Deferred[list[Invoice]]:
        def q(txn: Any) -> list[Invoice]:
            query = f"SELECT {INVOICE_COLS} FROM invoices WHERE chat_id = ? AND status = 'open'"
            params: list[Any] = [chat_id]
            if now is not None:
                query += " AND expires_at > ?"
                params.append(now)
            rows = self._db.all(txn, query + " ORDER BY created_at DESC", params)
            return [invoice_from_row(self._db.dialect, r) for r in rows]
        return self._db.run(q, write=False)

    def expire_invoices(self, now: float) -> Deferred[list[str]]:
        def q(txn: Any) -> list[str]:
            rows = self._db.all(txn, "UPDATE invoices SET status = 'expired' WHERE status = 'open' AND expires_at <= ? "
                                     "RETURNING label, chat_id", (now,))
            for label, chat_id in rows:
                self._db.add_event(txn, now, "invoice_expired", label=label, chat_id=chat_id)
            return [label for label, _ in rows]
        return self._db.run(q)

    def prune_unpaid(self, older_than: float) -> Deferred[int]:
        def q(txn: Any) -> int:
            # Unpaid invoices (and their own creation/expiry events) go, so nobody can grow
            # the ledger without paying; anything that saw money keeps its full history.
            self._db.execute(txn, "DELETE FROM events WHERE kind IN ('invoice_created', 'invoice_expired') AND label IN "
                                  "(SELECT label FROM invoices WHERE status = 'expired' AND expires_at < ?)", (older_than,))
            cur = self._db.execute(txn, "DELETE FROM invoices WHERE status = 'expired' AND expires_at < ?", (older_than,))
            return max(cur.rowcount, 0)
        return self._db.run(q)
