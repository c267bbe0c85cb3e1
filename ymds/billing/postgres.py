"""The PostgreSQL ledger: adbapi over psycopg 3 with a small pool.

Several billing processes may share the database: apply_payment locks the invoice row
(SELECT ... FOR UPDATE) and inserts the payment with ON CONFLICT (operation_id) DO NOTHING,
so the second of two concurrent deliveries waits for the first and then sees a duplicate.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.enterprise import adbapi

from ymds.billing.database import Database, PendingEvent
from ymds.billing.ledger import ApplyResult, Event, LedgerError, Payment, PaymentFields
from ymds.billing.sql import DAY, PAYMENT_INSERT_COLS, SUBSCRIPTION_COLS, PostgresDialect, json_text, subscription_from_row
from ymds.billing.sqlledger import SQLLedger
from ymds.billing.stores.promo import promo_of
from ymds.billing.stores.payments import PaymentStore, classify, paid_time, plan_settlement
from ymds.billing.stores.reports import postgres_report_ctes, report_kind


class ConcurrentLabelChange(LedgerError):
    """The same operation was being recorded under another label at the same moment; the
    transaction is rolled back and the job's retry sees the first one."""


_EVENT_ROW = "SELECT %s::double precision, %s::text, %s::text, %s::bigint, %s::text, %s::text"


class PostgresPaymentStore(PaymentStore):
    """The payment store with apply_payment in two round trips."""

    def apply_in(self, txn: Any, pf: PaymentFields, source: str, now: float, held: bool) -> ApplyResult:
        """The same steps as the shared path, in two round trips instead of six: lock the
        invoice, then one statement of data-modifying CTEs (subscription, payment, invoice,
        events).  Settling is guarded by the payment insert; the subscription, which must
        come first to give the payment its granted_until, is guarded by NOT EXISTS, which
        the invoice lock makes reliable (the same operation always has the same label).

        Long because it builds one statement piece by piece; split, the pieces would only
        pass the half-built statement around."""
        invoice = self.lock_invoice(txn, pf.label)
        paid = paid_time(pf, source, now)  # a reconciled payment: when it was paid, not found
        outcome = classify(invoice, pf.withdraw_amount, held, paid)
        changed, grant = plan_settlement(invoice, pf.operation_id, outcome, paid)
        granted = invoice if grant else None  # the invoice whose days extend the chat's subscription
        chat_id = invoice.chat_id if invoice else None
        ctes: list[str] = []
        params: list[Any] = []
        if granted is not None:
            days = float((granted.days or 0) * DAY)
            ctes.append(
                f"sub AS (INSERT INTO subscriptions ({SUBSCRIPTION_COLS}) "
                "SELECT %s::bigint, %s::text, %s::double precision, %s::double precision, NULL, 0 "
                "WHERE NOT EXISTS (SELECT 1 FROM payments WHERE operation_id = %s) "
                "ON CONFLICT (chat_id) DO UPDATE SET ends_at = GREATEST(subscriptions.ends_at, %s::double precision) + %s::double precision, "
                "plan = excluded.plan, updated_at = excluded.updated_at, reminded_window = NULL, expired = 0 "
                f"RETURNING {SUBSCRIPTION_COLS})")
            params += [chat_id, granted.plan, now + days, now, pf.operation_id, now, days]
        ctes.append(
            f"ins AS (INSERT INTO payments ({PAYMENT_INSERT_COLS}, promo_code) VALUES "
            f"(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, {'(SELECT ends_at FROM sub)' if granted is not None else 'NULL'}, 0, %s, %s) "
            "ON CONFLICT (operation_id) DO NOTHING RETURNING seq)")
        params += [pf.operation_id, pf.label, invoice.label if invoice else None, pf.amount, pf.withdraw_amount,
                   pf.notification_type, pf.datetime_raw, pf.sender, int(held), outcome, source, paid,
                   None if held else now, chat_id, json_text(dict(pf.raw)), promo_of(invoice)]
        if changed is not None:
            ctes.append("inv AS (UPDATE invoices SET status = %s, paid_at = %s, operation_id = %s "
                        "WHERE label = %s AND EXISTS (SELECT 1 FROM ins) RETURNING label)")
            params += [changed.status, changed.paid_at, changed.operation_id, changed.label]
        if not held:  # the dashboard's figures, in this same statement
            report_ctes, report_params = postgres_report_ctes(
                paid, report_kind(invoice), pf.amount, pf.operation_id, chat_id if granted is not None else None, now)
            ctes += report_ctes
            params += report_params
        pending: list[PendingEvent] = [
            ("payment_" + outcome, pf.label or None, chat_id, pf.operation_id,
             {"source": source, "amount": pf.amount, "withdraw_amount": pf.withdraw_amount, "held": held})]
        if changed is not None and invoice is not None:
            pending.append(("invoice_" + outcome, invoice.label, chat_id, pf.operation_id, {"previous": invoice.status}))
        rows = []
        for kind, label, chat, op, data in pending:
            rows.append(_EVENT_ROW + " WHERE EXISTS (SELECT 1 FROM ins)")
            params += [now, kind, label, chat, op, json_text(data)]
        if granted is not None:
            rows.append("SELECT %s::double precision, 'subscription_extended', %s::text, %s::bigint, %s::text, "
                        "json_build_object('days', %s::int, 'ends_at', sub.ends_at, 'plan', %s::text)::text "
                        "FROM sub WHERE EXISTS (SELECT 1 FROM ins)")
            params += [now, granted.label, chat_id, pf.operation_id, granted.days, granted.plan]
        ctes.append("ev AS (INSERT INTO events (at, kind, label, chat_id, operation_id, data) "
                    + " UNION ALL ".join(rows) + " RETURNING id, kind, data)")
        select = ("SELECT (SELECT seq FROM ins), (SELECT json_agg(json_build_array(id, kind, data) ORDER BY id) FROM ev), "
                  "EXISTS (SELECT 1 FROM blocked_chats WHERE chat_id = %s::bigint)")
        params.append(chat_id)
        if granted is not None:
            select += f", (SELECT json_build_array({SUBSCRIPTION_COLS}) FROM sub)"
        txn.execute("WITH " + ", ".join(ctes) + " " + select, params)
        row = txn.fetchone()
        seq, events_json, blocked = row[0], row[1], row[2]
        sub_row = row[3] if granted is not None else None
        if seq is None:
            if sub_row is not None:
                # extended for an operation another transaction was recording: undo it all
                raise ConcurrentLabelChange(f"operation {pf.operation_id} was being recorded under another label")
            return self.again(txn, pf, source, now, held, invoice)
        events = tuple(Event(id_, now, kind, pending_label, pending_chat, pf.operation_id, json.loads(data))
                       for (id_, kind, data), (_, pending_label, pending_chat, _, _)
                       in zip(events_json, pending + ([("", granted.label, chat_id, "", {})] if granted is not None else [])))
        subscription = subscription_from_row(sub_row) if sub_row is not None else None
        invoice = changed if changed is not None else invoice
        payment = Payment(
            pf.operation_id, pf.label, invoice.label if invoice else None, pf.amount, pf.withdraw_amount,
            pf.notification_type, pf.datetime_raw, pf.sender, held, outcome, source, paid, None if held else now,
            chat_id, subscription.ends_at if subscription else None, False, seq, pf.raw)
        return ApplyResult(outcome, payment, invoice, subscription, events, True, chat_blocked=bool(blocked))

    def mark_notified_in(self, txn: Any, operation_id: str) -> bool:
        # Losing this mark in a crash costs at most a re-enqueue that the bot jobs'
        # idempotency keys absorb, so it need not wait for the WAL flush.
        txn.execute("SET LOCAL synchronous_commit TO OFF")
        return super().mark_notified_in(txn, operation_id)


class PostgresLedger(SQLLedger):
    """The SQL ledger on PostgreSQL (``options``: the quarantine bounds)."""

    payment_store = PostgresPaymentStore

    def __init__(self, url: str, reactor: Any, pool_size: int = 5, connect_timeout: int = 10, **options: Any):
        try:
            import psycopg  # noqa: F401  (the DB-API module adbapi loads by name)
        except ImportError:
            raise LedgerError("ledger.url is PostgreSQL but psycopg is not installed: pip install 'ymds[postgres]'") from None
        self.url = url
        pool = adbapi.ConnectionPool(
            "psycopg", url, connect_timeout=connect_timeout,
            cp_min=1, cp_max=max(1, pool_size), cp_reconnect=True, cp_reactor=reactor, cp_noisy=False)
        pool.start()
        super().__init__(Database(pool, PostgresDialect(), reactor), **options)

    @classmethod
    def from_url(cls, url: str, reactor: Any, **options: Any) -> "PostgresLedger":
        return cls(url, reactor, **options)

    def __repr__(self) -> str:
        # the URL may carry a password: show only the database name
        return f"<PostgresLedger {self.url.rsplit('/', 1)[-1].split('?')[0]}>"


__all__ = ["ConcurrentLabelChange", "PostgresLedger", "PostgresPaymentStore"]
