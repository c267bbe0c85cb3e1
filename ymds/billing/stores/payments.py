"""Payments: applying a notification to its invoice and the chat's subscription, releasing
held payments, and the payment list.

apply_payment and mark_notified go through :meth:`Database.batched` (group commit on
SQLite).  The PostgreSQL engine subclasses :class:`PaymentStore` to apply a payment in two
round trips (``ymds.billing.postgres``); the steps it may reuse are public here.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Mapping

from twisted.internet.defer import Deferred, fail, succeed

from ymds.billing.database import Database, PendingEvent
from ymds.billing.ledger import (
    GRANTING, SOURCES, ApplyResult, BadPaymentFields, Invoice, LedgerError, Payment, PaymentFields, PaymentPage,
    Subscription,
)
from ymds.billing.sql import (
    DAY, INVOICE_COLS, PAYMENT_COLS, PAYMENT_INSERT_COLS, SUBSCRIPTION_COLS, invoice_from_row, json_text,
    payment_from_row, subscription_from_row,
)
from ymds.billing.stores.reports import record_grant_in, record_payment_in, report_kind
from ymds.billing.stores.promo import promo_of
from ymds.links import is_our_label


def paid_time(pf: PaymentFields, source: str, now: float) -> float:
    """When the buyer paid, recorded as the payment's ``received_at`` and the invoice's
    ``paid_at``: ``now`` for a notification (YooMoney sends it at once); for a payment found
    later by reconciliation, the operation's own datetime (never after ``now``)."""
    if source != "reconcile":
        return now
    try:
        moment = datetime.fromisoformat(pf.datetime_raw.strip().replace("Z", "+00:00"))
    except ValueError:
        return now
    if moment.tzinfo is None:  # YooMoney always gives a zone; a bare time is not trusted
        return now
    return min(now, moment.timestamp())


def classify(invoice: Invoice | None, withdraw: Decimal, held: bool, received_at: float) -> str:
    """The outcome of a payment of ``withdraw`` against ``invoice``."""
    if held:
        return "held"
    if invoice is None:
        return "unmatched"
    if withdraw < invoice.amount:
        return "underpaid"
    if withdraw > invoice.amount:
        return "overpaid"
    if invoice.status == "expired" or received_at > invoice.expires_at:
        return "late"
    return "paid"


def plan_settlement(invoice: Invoice | None, operation_id: str, outcome: str, now: float) -> tuple[Invoice | None, bool]:
    """What settling this outcome changes: the invoice as it becomes (None when its row
    stays as it is) and whether the chat's subscription is extended."""
    if invoice is None:
        return None, False
    changed = None
    if invoice.status not in GRANTING:  # a second payment never downgrades a paid invoice
        paid_at = now if outcome in GRANTING else invoice.paid_at
        op = operation_id if outcome in GRANTING or invoice.operation_id is None else invoice.operation_id
        if outcome != invoice.status or op != invoice.operation_id:
            changed = replace(invoice, status=outcome, paid_at=paid_at, operation_id=op)
    grant = bool(outcome in GRANTING and invoice.kind == "subscription" and invoice.chat_id is not None
                 and invoice.days)
    return changed, grant


class PaymentStore:
    """IPaymentStore over SQL."""

    def __init__(self, db: Database):
        self._db = db

    # --- applying ----------------------------------------------------------------------------

    def apply_payment(self, fields: PaymentFields | Mapping[str, Any], source: str, now: float,
                      held: bool | None = None) -> Deferred[ApplyResult]:
        if source not in SOURCES:
            return fail(LedgerError(f"payment source {source!r} is not one of {SOURCES}"))
        try:
            pf = fields if isinstance(fields, PaymentFields) else PaymentFields.from_fields(fields)
        except BadPaymentFields:
            return fail()
        if pf.is_test:
            return succeed(ApplyResult("test", None, None, None, (), False))
        return self._db.batched(self.apply_in, pf, source, now, pf.held if held is None else bool(held))

    def apply_in(self, txn: Any, pf: PaymentFields, source: str, now: float, held: bool) -> ApplyResult:
        """apply_payment inside a running transaction ``txn``."""
        db = self._db
        invoice = self.lock_invoice(txn, pf.label)
        paid = paid_time(pf, source, now)  # a reconciled payment: when it was paid, not found
        outcome = classify(invoice, pf.withdraw_amount, held, paid)
        money = db.dialect.money_in
        inserted = db.one(
            txn,
            f"INSERT INTO payments ({PAYMENT_INSERT_COLS}, promo_code) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, ?, ?) "
            "ON CONFLICT (operation_id) DO NOTHING RETURNING seq",
            (pf.operation_id, pf.label, invoice.label if invoice else None, money(pf.amount),
             money(pf.withdraw_amount), pf.notification_type, pf.datetime_raw, pf.sender, int(held), outcome,
             source, paid, None if held else now, invoice.chat_id if invoice else None, json_text(dict(pf.raw)),
             promo_of(invoice)))
        if inserted is None:
            return self.again(txn, pf, source, now, held, invoice)
        pending: list[PendingEvent] = [
            ("payment_" + outcome, pf.label or None, invoice.chat_id if invoice else None, pf.operation_id,
             {"source": source, "amount": pf.amount, "withdraw_amount": pf.withdraw_amount, "held": held})]
        if not held:
            record_payment_in(db, txn, paid, report_kind(invoice), pf.amount, pf.operation_id)  # its received_at
        invoice, subscription = self._settle(txn, invoice, pf.operation_id, outcome, now, pending, paid_at=paid)
        events = db.write_events(txn, now, pending)
        payment = Payment(
            pf.operation_id, pf.label, invoice.label if invoice else None, pf.amount, pf.withdraw_amount,
            pf.notification_type, pf.datetime_raw, pf.sender, held, outcome, source, paid,
            None if held else now, invoice.chat_id if invoice else None,
            subscription.ends_at if subscription else None, False, inserted[0], pf.raw)
        return ApplyResult(outcome, payment, invoice, subscription, events, True,
                           chat_blocked=self.blocked(txn, payment.chat_id))

    def _settle(self, txn: Any, invoice: Invoice | None, operation_id: str, outcome: str, now: float,
                events: list[PendingEvent], paid_at: float | None = None) -> tuple[Invoice | None, Subscription | None]:
        """Set the invoice's status for this outcome (paid at ``paid_at``, default ``now``) and
        extend the subscription from ``now`` when it grants."""
        db = self._db
        changed, grant = plan_settlement(invoice, operation_id, outcome, now if paid_at is None else paid_at)
        subscription = None
        if changed is not None and invoice is not None:
            db.execute(txn, "UPDATE invoices SET status = ?, paid_at = ?, operation_id = ? WHERE label = ?",
                       (changed.status, changed.paid_at, changed.operation_id, changed.label))
            events.append(("invoice_" + outcome, invoice.label, invoice.chat_id, operation_id,
                           {"previous": invoice.status}))
            invoice = changed
        if grant and invoice is not None and invoice.days is not None:
            g = db.dialect.greatest
            row = db.one(
                txn,
                f"INSERT INTO subscriptions ({SUBSCRIPTION_COLS}) VALUES (?, ?, ?, ?, NULL, 0) "
                f"ON CONFLICT (chat_id) DO UPDATE SET ends_at = {g}(subscriptions.ends_at, ?) + ?, "
                "plan = excluded.plan, updated_at = excluded.updated_at, reminded_window = NULL, expired = 0 "
                f"RETURNING {SUBSCRIPTION_COLS}",
                (invoice.chat_id, invoice.plan, now + invoice.days * DAY, now, now, float(invoice.days * DAY)))
            subscription = subscription_from_row(row)
            record_grant_in(db, txn, subscription.chat_id, now)
            db.execute(txn, "UPDATE payments SET granted_until = ?, chat_id = ? WHERE operation_id = ?",
                       (subscription.ends_at, invoice.chat_id, operation_id))
            events.append(("subscription_extended", invoice.label, invoice.chat_id, operation_id,
                           {"plan": invoice.plan, "days": invoice.days, "ends_at": subscription.ends_at}))
        return invoice, subscription

    def again(self, txn: Any, pf: PaymentFields, source: str, now: float, held: bool,
              invoice: Invoice | None) -> ApplyResult:
        """The operation is already recorded: a release if it was held and now is not,
        otherwise a duplicate."""
        db = self._db
        existing = self.lock_payment(txn, pf.operation_id)
        if existing is None:  # pragma: no cover - the caller's insert just conflicted with it
            raise LedgerError(f"operation {pf.operation_id} vanished while being recorded")
        if existing.held and not held:
            return self._release(txn, existing, source, now)
        if existing.invoice_label and (invoice is None or invoice.label != existing.invoice_label):
            row = db.one(txn, f"SELECT {INVOICE_COLS} FROM invoices WHERE label = ?", (existing.invoice_label,))
            invoice = None if row is None else invoice_from_row(db.dialect, row)
        chat_id = existing.chat_id
        subscription = None
        if chat_id is not None:
            row = db.one(txn, f"SELECT {SUBSCRIPTION_COLS} FROM subscriptions WHERE chat_id = ?", (chat_id,))
            subscription = None if row is None else subscription_from_row(row)
        if (pf.amount, pf.withdraw_amount) != (existing.amount, existing.withdraw_amount):
            # Same operation_id, different money: never credited twice, but worth a look.
            db.add_event(txn, now, "duplicate_mismatch", label=existing.label or None, chat_id=chat_id,
                         operation_id=pf.operation_id, source=source, amount=pf.amount,
                         withdraw_amount=pf.withdraw_amount)
        return ApplyResult("duplicate", existing, invoice, subscription, (), False,
                           chat_blocked=self.blocked(txn, invoice.chat_id if invoice else None))

    def _release(self, txn: Any, existing: Payment, source: str, now: float) -> ApplyResult:
        invoice = self.lock_invoice(txn, existing.invoice_label) if existing.invoice_label else None
        outcome = classify(invoice, existing.withdraw_amount, False, existing.received_at)
        self._db.execute(txn, "UPDATE payments SET held = 0, status = ?, accepted_at = ?, notified = 0 "
                              "WHERE operation_id = ?", (outcome, now, existing.operation_id))
        record_payment_in(self._db, txn, existing.received_at, report_kind(invoice), existing.amount,
                          existing.operation_id)
        pending: list[PendingEvent] = [("payment_released", existing.label or None, existing.chat_id,
                                        existing.operation_id, {"source": source, "outcome": outcome})]
        invoice, subscription = self._settle(txn, invoice, existing.operation_id, outcome, now, pending)
        events = self._db.write_events(txn, now, pending)
        payment = self.lock_payment(txn, existing.operation_id)
        return ApplyResult(outcome, payment, invoice, subscription, events, False, released=True,
                           chat_blocked=self.blocked(txn, invoice.chat_id if invoice else None))

    def release_payment(self, operation_id: str, now: float, source: str = "manual") -> Deferred[ApplyResult | None]:
        def q(txn: Any) -> ApplyResult | None:
            existing = self.lock_payment(txn, operation_id)
            if existing is None:
                return None
            if not existing.held:
                return ApplyResult("duplicate", existing, None, None, (), False)
            return self._release(txn, existing, source, now)
        return self._db.run(q)

    # --- row helpers inside a transaction ------------------------------------------------------

    def blocked(self, txn: Any, chat_id: int | None) -> bool:
        """Whether ``chat_id`` blocked the bot (False for no chat)."""
        if chat_id is None:
            return False
        return self._db.one(txn, "SELECT 1 FROM blocked_chats WHERE chat_id = ?", (chat_id,)) is not None

    def lock_invoice(self, txn: Any, label: str | None) -> Invoice | None:
        """Our invoice with this label, row-locked where the engine has row locks."""
        if not label or not is_our_label(label):
            return None
        db = self._db
        row = db.one(txn, f"SELECT {INVOICE_COLS} FROM invoices WHERE label = ?{db.dialect.for_update}", (label,))
        return None if row is None else invoice_from_row(db.dialect, row)

    def lock_payment(self, txn: Any, operation_id: str) -> Payment | None:
        """The payment, row-locked where the engine has row locks."""
        db = self._db
        row = db.one(txn, f"SELECT {PAYMENT_COLS} FROM payments WHERE operation_id = ?{db.dialect.for_update}",
                     (operation_id,))
        return None if row is None else payment_from_row(db.dialect, row)

    # --- reading and marking -------------------------------------------------------------------

    def get_payment(self, operation_id: str) -> Deferred[Payment | None]:
        def q(txn: Any) -> Payment | None:
            row = self._db.one(txn, f"SELECT {PAYMENT_COLS} FROM payments WHERE operation_id = ?", (operation_id,))
            return None if row is None else payment_from_row(self._db.dialect, row)
        return self._db.run(q, write=False)

    def mark_notified(self, operation_id: str) -> Deferred[bool]:
        return self._db.batched(self.mark_notified_in, operation_id)

    def mark_notified_in(self, txn: Any, operation_id: str) -> bool:
        """mark_notified inside a running transaction ``txn``."""
        return self._db.execute(txn, "UPDATE payments SET notified = 1 WHERE operation_id = ? AND notified = 0",
                                (operation_id,)).rowcount == 1

    def list_payments(self, since: float | None = None, until: float | None = None, status: str | None = None,
                      label: str | None = None, chat_id: int | None = None, after_cursor: int | None = None,
                      limit: int = 100) -> Deferred[PaymentPage]:
        limit = max(1, min(int(limit), 10_000))
        where, params = [], []
        for clause, value in (("received_at >= ?", since), ("received_at < ?", until), ("status = ?", status),
                              ("label = ?", label), ("chat_id = ?", chat_id), ("seq > ?", after_cursor)):
            if value is not None:
                where.append(clause)
                params.append(value)
        query = f"SELECT {PAYMENT_COLS} FROM payments"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY seq LIMIT ?"
        params.append(limit + 1)

        def q(txn: Any) -> PaymentPage:
            rows = self._db.all(txn, query, params)
            payments = tuple(payment_from_row(self._db.dialect, r) for r in rows[:limit])
            return PaymentPage(payments, payments[-1].seq if len(rows) > limit else None)
        return self._db.run(q, write=False)
