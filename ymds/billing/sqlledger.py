"""The SQL ledger shared by SQLite and PostgreSQL: one implementation of ILedger over
twisted.enterprise.adbapi, with the few engine differences kept in a :class:`Dialect`.

Each public method runs one interaction (one transaction) in the pool's thread.  Writes
that read before they write take the write lock first (SQLite: BEGIN IMMEDIATE;
PostgreSQL: row locks with SELECT ... FOR UPDATE and INSERT ... ON CONFLICT), so several
billing processes sharing one database never credit an operation twice.

On SQLite, apply_payment calls that arrive while a transaction is running are applied
together in the next one, each in its own savepoint (group commit: one fsync for the lot,
a failing payment rolls back alone).  PostgreSQL overrides ``_apply`` with a two-round-trip
version (see postgres.py).
"""

from __future__ import annotations

import calendar
import hashlib
import json
import os
import secrets
import time
from dataclasses import replace
from decimal import Decimal
from typing import Any, Callable, Iterable

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ymds.billing.ledger import (
    GRANTING, SOURCES, ApiKey, ApplyResult, BadPaymentFields, Event, IdempotencyConflict, ILedger, Invoice,
    LedgerError, Payment, PaymentFields, PaymentPage, QuarantinedNotification, QuarantineResult, SchemaTooNew,
    Stats, Subscription, WebhookAttempt, WebhookDelivery, WebhookEndpoint,
)
from ymds.links import is_our_label, new_label

log = Logger()

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema")
CENT = Decimal("0.01")
DAY = 86400


def known_migrations(dialect_name: str) -> list[tuple[int, str]]:
    """(version, path) of the schema files for one dialect, in order."""
    found = []
    suffix = f".{dialect_name}.sql"
    for name in os.listdir(SCHEMA_DIR):
        if name.endswith(suffix) and name[:3].isdigit():
            found.append((int(name[:3]), os.path.join(SCHEMA_DIR, name)))
    found.sort()
    versions = [v for v, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise LedgerError(f"schema files for {dialect_name} are not numbered 001, 002, ...: {versions}")
    return found


def _statements(sql: str) -> list[str]:
    # Our schema files hold plain DDL: ';' ends a statement, '--' starts a comment.
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _fork(d: Deferred) -> Deferred:
    """A new Deferred with ``d``'s result, leaving ``d`` usable by others."""
    forked = Deferred()

    def both(result):
        if isinstance(result, Failure):
            forked.errback(result)
        else:
            forked.callback(result)
        return result
    d.addBoth(both)
    return forked


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class Dialect:
    """What differs between the engines."""
    name = ""
    begin_write: str | None = None  # statement that takes the write lock at the start
    begin_read: str | None = None
    for_update = ""
    greatest = "MAX"
    migration_lock: str | None = None
    # Apply payments that queue up behind a running transaction together in the next one
    # (each in its own savepoint): one commit, one fsync for the lot.  Only where one
    # writer at a time is the rule anyway (SQLite); on PostgreSQL a batch holding many row
    # locks would only invite deadlocks between processes.
    group_commit = False

    def __init__(self):
        self._cache: dict[str, str] = {}

    def sql(self, query: str) -> str:
        return query

    def money_in(self, value: Decimal):
        return value

    def money_out(self, value) -> Decimal:
        return Decimal(value).quantize(CENT)

    def sum_money(self, column: str) -> str:
        return f"COALESCE(SUM({column}), 0)"

    def sum_out(self, value) -> Decimal:
        return Decimal(value or 0).quantize(CENT)


class SQLiteDialect(Dialect):
    name = "sqlite"
    group_commit = True
    begin_write = "BEGIN IMMEDIATE"
    begin_read = "BEGIN"
    greatest = "MAX"

    def money_in(self, value: Decimal) -> str:
        return format(value.quantize(CENT), "f")

    def money_out(self, value) -> Decimal:
        return Decimal(str(value)).quantize(CENT)

    def sum_money(self, column: str) -> str:
        # Stored as text with exactly two decimals, so dropping the point gives kopecks
        # as an exact integer; no floating point anywhere.
        return f"COALESCE(SUM(CAST(REPLACE({column}, '.', '') AS INTEGER)), 0)"

    def sum_out(self, value) -> Decimal:
        return (Decimal(int(value or 0)) / 100).quantize(CENT)


class PostgresDialect(Dialect):
    name = "postgresql"
    for_update = " FOR UPDATE"
    greatest = "GREATEST"
    migration_lock = "SELECT pg_advisory_xact_lock(7298411)"

    def sql(self, query: str) -> str:
        converted = self._cache.get(query)
        if converted is None:
            converted = self._cache[query] = query.replace("?", "%s")
        return converted


_INVOICE_COLS = ("label, kind, plan, days, chat_id, user_id, amount, description, metadata, status, "
                 "created_at, expires_at, paid_at, operation_id")
_PAYMENT_COLS = ("operation_id, label, invoice_label, amount, withdraw_amount, notification_type, "
                 "datetime_raw, sender, held, status, source, received_at, accepted_at, chat_id, "
                 "granted_until, notified, seq, raw")
_PAYMENT_INSERT_COLS = _PAYMENT_COLS.replace("notified, seq, raw", "notified, raw")
_SUB_COLS = "chat_id, plan, ends_at, updated_at, reminded_window, expired"
_Q_COLS = "id, body, reason, remote, received_at, last_seen, count, size, resolved_at, resolution"
_EVENT_COLS = "id, at, kind, label, chat_id, operation_id, data"
_KEY_COLS = "id, name, scopes, created_at, revoked_at"
_ENDPOINT_COLS = "id, url, events, secret, created_at, removed_at"
_DELIVERY_SELECT = ("SELECT d.endpoint_id, d.event_seq, e.id, e.type, e.created_at, e.data, d.status, d.attempts, "
                    "d.first_attempt_at, d.next_attempt_at, d.last_error, d.done_at "
                    "FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.event_seq")


@implementer(ILedger)
class SQLLedger:
    """ILedger over an adbapi ConnectionPool; subclasses build the pool and the dialect."""

    #: refuse to keep more than this many unresolved quarantined bodies / bytes
    quarantine_max_rows = 10_000
    quarantine_max_bytes = 64 * 1024 * 1024
    quarantine_max_body = 65_536
    #: at most this many payments share one group commit (SQLite)
    max_payment_batch = 200

    def __init__(self, pool, dialect: Dialect, reactor, quarantine_max_rows: int | None = None,
                 quarantine_max_bytes: int | None = None):
        self._pool = pool
        self._d = dialect
        self._pending_payments: list = []
        self._flushing_payments = False
        self._batch: Deferred | None = None  # fires when the running payment batch is done
        self._closed: Deferred | None = None
        self._reactor = reactor
        if quarantine_max_rows is not None:
            self.quarantine_max_rows = quarantine_max_rows
        if quarantine_max_bytes is not None:
            self.quarantine_max_bytes = quarantine_max_bytes

    # --- plumbing ---------------------------------------------------------------------

    def _run(self, fn: Callable, *args, write: bool = True, **kw) -> Deferred:
        if not self._pool.running:  # a stopped pool would queue the work forever
            return fail(LedgerError("the ledger is closed"))
        d = self._d

        def interaction(txn):
            begin = d.begin_write if write else d.begin_read
            if begin:
                txn.execute(begin)
            return fn(txn, *args, **kw)

        return self._pool.runInteraction(interaction)

    def _x(self, txn, query: str, params: Iterable = ()):
        txn.execute(self._d.sql(query), tuple(params))
        return txn

    def _one(self, txn, query: str, params: Iterable = ()):
        return self._x(txn, query, params).fetchone()

    def _all(self, txn, query: str, params: Iterable = ()):
        return self._x(txn, query, params).fetchall()

    def close(self) -> Deferred:
        """Finish the payments already handed in, then close the pool (idempotent)."""
        if self._closed is not None:
            return self._closed
        self._closed = Deferred()

        async def shut():
            try:
                while self._batch is not None:
                    await self._batch
            finally:
                if self._pool.running:
                    self._pool.close()
        d = Deferred.fromCoroutine(shut())
        d.addErrback(lambda f: log.failure("closing the ledger", f))
        d.chainDeferred(self._closed)
        return _fork(self._closed)  # each caller gets its own Deferred

    # --- schema -----------------------------------------------------------------------

    def migrate(self) -> Deferred:
        migrations = known_migrations(self._d.name)
        now = self._reactor.seconds()
        return self._run(self._migrate, migrations, now)

    def _migrate(self, txn, migrations, now):
        if self._d.migration_lock:
            self._x(txn, self._d.migration_lock)
        self._x(txn, "CREATE TABLE IF NOT EXISTS schema_version ("
                     "version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")
        row = self._one(txn, "SELECT MAX(version) FROM schema_version")
        current = int(row[0]) if row and row[0] is not None else 0
        newest = migrations[-1][0] if migrations else 0
        if current > newest:
            raise SchemaTooNew(
                f"the ledger database has schema version {current} but this ymds knows only up to "
                f"{newest}; upgrade ymds (or point ledger.url at the right database)")
        for version, path in migrations:
            if version <= current:
                continue
            with open(path, encoding="utf-8") as f:
                for statement in _statements(f.read()):
                    txn.execute(statement)
            self._x(txn, "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (version, now))
            log.info("ledger schema migrated to version {version}", version=version)
        return max(current, newest)

    def schema_version(self) -> Deferred:
        def q(txn):
            row = self._one(txn, "SELECT MAX(version) FROM schema_version")
            return int(row[0]) if row and row[0] is not None else 0
        return self._run(q, write=False)

    # --- rows -> values ---------------------------------------------------------------

    def _invoice(self, row) -> Invoice | None:
        if row is None:
            return None
        (label, kind, plan, days, chat_id, user_id, amount, description, metadata, status,
         created_at, expires_at, paid_at, operation_id) = row
        return Invoice(label, kind, plan, days, chat_id, user_id, self._d.money_out(amount), description,
                       json.loads(metadata or "{}"), status, created_at, expires_at, paid_at, operation_id)

    def _payment(self, row) -> Payment | None:
        if row is None:
            return None
        (operation_id, label, invoice_label, amount, withdraw_amount, notification_type, datetime_raw,
         sender, held, status, source, received_at, accepted_at, chat_id, granted_until, notified,
         seq, raw) = row
        return Payment(operation_id, label, invoice_label, self._d.money_out(amount),
                       self._d.money_out(withdraw_amount), notification_type, datetime_raw, sender,
                       bool(held), status, source, received_at, accepted_at, chat_id, granted_until,
                       bool(notified), seq, json.loads(raw or "{}"))

    @staticmethod
    def _subscription(row) -> Subscription | None:
        if row is None:
            return None
        chat_id, plan, ends_at, updated_at, reminded_window, expired = row
        return Subscription(chat_id, plan, float(ends_at), float(updated_at), reminded_window, bool(expired))

    @staticmethod
    def _quarantined(row) -> QuarantinedNotification:
        return QuarantinedNotification(*row)

    @staticmethod
    def _event(row) -> Event:
        id_, at, kind, label, chat_id, operation_id, data = row
        return Event(id_, at, kind, label, chat_id, operation_id, json.loads(data or "{}"))

    def _add_event(self, txn, now, kind, label=None, chat_id=None, operation_id=None, **data) -> Event:
        row = self._one(
            txn,
            "INSERT INTO events (at, kind, label, chat_id, operation_id, data) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (now, kind, label, chat_id, operation_id, _json(data)))
        return Event(row[0], now, kind, label, chat_id, operation_id, json.loads(_json(data)))

    def _write_events(self, txn, now, pending) -> tuple[Event, ...]:
        """Append several events in few statements (fewer round trips in apply_payment)."""
        written: list[Event] = []
        for start in range(0, len(pending), 500):  # well below both engines' parameter limits
            chunk = pending[start:start + 500]
            values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk))
            params: list = []
            texts = []
            for kind, label, chat_id, operation_id, data in chunk:
                text = _json(data)
                texts.append(text)
                params += [now, kind, label, chat_id, operation_id, text]
            rows = self._all(txn, f"INSERT INTO events (at, kind, label, chat_id, operation_id, data) VALUES {values} "
                                  "RETURNING id", params)
            # identity values are handed out in row order; RETURNING's own order is not promised
            ids = sorted(r[0] for r in rows)
            written += [Event(id_, now, kind, label, chat_id, operation_id, json.loads(text))
                        for id_, (kind, label, chat_id, operation_id, _), text in zip(ids, chunk, texts)]
        return tuple(written)

    # --- invoices ---------------------------------------------------------------------

    def create_invoice(self, kind, amount, now, ttl, plan=None, days=None, chat_id=None, user_id=None,
                       description="", metadata=None, label=None, reuse_open=False) -> Deferred:
        if kind not in ("subscription", "donation"):
            return fail(LedgerError(f"invoice kind {kind!r} is not subscription or donation"))
        if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0 or amount >= Decimal("1e10"):
            return fail(LedgerError(f"invoice amount {amount!r} is not a positive Decimal below 10^10"))
        if kind == "subscription" and (not plan or not days or chat_id is None):
            return fail(LedgerError("a subscription invoice needs a plan, its days and a chat"))
        amount = amount.quantize(CENT)
        label = label or new_label()
        if not is_our_label(label):
            return fail(LedgerError(f"invoice label {label!r} is not in our format"))
        return self._run(self._create_invoice, kind, amount, now, ttl, plan, days, chat_id, user_id,
                         description or "", dict(metadata or {}), label, reuse_open)

    def _create_invoice(self, txn, kind, amount, now, ttl, plan, days, chat_id, user_id, description,
                        metadata, label, reuse_open):
        if reuse_open and chat_id is not None and plan:
            row = self._one(
                txn,
                f"SELECT {_INVOICE_COLS} FROM invoices WHERE chat_id = ? AND plan = ? AND status = 'open' "
                "AND amount = ? AND expires_at > ? ORDER BY created_at DESC LIMIT 1",
                (chat_id, plan, self._d.money_in(amount), now + ttl / 2))
            if row is not None:
                return self._invoice(row)
        expires_at = now + ttl
        self._x(txn, f"INSERT INTO invoices ({_INVOICE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, NULL, NULL)",
                (label, kind, plan, days, chat_id, user_id, self._d.money_in(amount), description,
                 _json(metadata), now, expires_at))
        self._add_event(txn, now, "invoice_created", label=label, chat_id=chat_id, invoice_kind=kind, plan=plan,
                        amount=amount, expires_at=expires_at)
        return Invoice(label, kind, plan, days, chat_id, user_id, amount, description, metadata, "open",
                       now, expires_at)

    def get_invoice(self, label) -> Deferred:
        def q(txn):
            return self._invoice(self._one(txn, f"SELECT {_INVOICE_COLS} FROM invoices WHERE label = ?", (label,)))
        return self._run(q, write=False)

    def open_invoices_for(self, chat_id, now=None) -> Deferred:
        def q(txn):
            query = f"SELECT {_INVOICE_COLS} FROM invoices WHERE chat_id = ? AND status = 'open'"
            params = [chat_id]
            if now is not None:
                query += " AND expires_at > ?"
                params.append(now)
            rows = self._all(txn, query + " ORDER BY created_at DESC", params)
            return [self._invoice(r) for r in rows]
        return self._run(q, write=False)

    def expire_invoices(self, now) -> Deferred:
        def q(txn):
            rows = self._all(txn, "UPDATE invoices SET status = 'expired' WHERE status = 'open' AND expires_at <= ? "
                                  "RETURNING label, chat_id", (now,))
            for label, chat_id in rows:
                self._add_event(txn, now, "invoice_expired", label=label, chat_id=chat_id)
            return [label for label, _ in rows]
        return self._run(q)

    def prune_unpaid(self, older_than) -> Deferred:
        def q(txn):
            # Unpaid invoices (and their own creation/expiry events) go, so nobody can grow
            # the ledger without paying; anything that saw money keeps its full history.
            self._x(txn, "DELETE FROM events WHERE kind IN ('invoice_created', 'invoice_expired') AND label IN "
                         "(SELECT label FROM invoices WHERE status = 'expired' AND expires_at < ?)", (older_than,))
            cur = self._x(txn, "DELETE FROM invoices WHERE status = 'expired' AND expires_at < ?", (older_than,))
            return max(cur.rowcount, 0)
        return self._run(q)

    # --- payments ---------------------------------------------------------------------

    def apply_payment(self, fields, source, now, held=None) -> Deferred:
        if source not in SOURCES:
            return fail(LedgerError(f"payment source {source!r} is not one of {SOURCES}"))
        try:
            pf = fields if isinstance(fields, PaymentFields) else PaymentFields.from_fields(fields)
        except BadPaymentFields:
            return fail()
        if pf.is_test:
            return succeed(ApplyResult("test", None, None, None, (), False))
        if self._closed is not None:
            return fail(LedgerError("the ledger is closed"))
        return self._batched(self._apply, pf, source, now, pf.held if held is None else bool(held))

    def _batched(self, fn: Callable, *args) -> Deferred:
        """Run ``fn(txn, *args)`` in the next group commit (or alone where there is none)."""
        if not self._d.group_commit:
            return self._run(fn, *args)
        d = Deferred()
        self._pending_payments.append(((fn, args), d))
        if not self._flushing_payments:
            self._flush_payments()
        return d

    def _flush_payments(self) -> None:
        batch = self._pending_payments[: self.max_payment_batch]
        del self._pending_payments[: self.max_payment_batch]
        if not batch:
            self._flushing_payments = False
            finished, self._batch = self._batch, None
            if finished is not None:
                finished.callback(None)
            return
        self._flushing_payments = True
        if self._batch is None:
            self._batch = Deferred()

        def done(results):
            for (_, d), (ok, value) in zip(batch, results):
                if ok:
                    d.callback(value)
                else:
                    d.errback(value)

        def failed(failure):
            for _, d in batch:
                d.errback(failure)

        run = self._run(self._apply_batch, [item for item, _ in batch])
        run.addCallbacks(done, failed)
        run.addBoth(lambda _: self._flush_payments())

    def _apply_batch(self, txn, items) -> list:
        results = []
        for fn, args in items:
            txn.execute("SAVEPOINT payment")
            try:
                result = fn(txn, *args)
            except Exception:
                results.append((False, Failure()))
                txn.execute("ROLLBACK TO payment")
            else:
                results.append((True, result))
            txn.execute("RELEASE payment")
        return results

    def _blocked(self, txn, chat_id) -> bool:
        if chat_id is None:
            return False
        return self._one(txn, "SELECT 1 FROM blocked_chats WHERE chat_id = ?", (chat_id,)) is not None

    def _lock_invoice(self, txn, label) -> Invoice | None:
        if not label or not is_our_label(label):
            return None
        return self._invoice(self._one(txn, f"SELECT {_INVOICE_COLS} FROM invoices WHERE label = ?{self._d.for_update}",
                                       (label,)))

    def _lock_payment(self, txn, operation_id) -> Payment | None:
        return self._payment(self._one(txn, f"SELECT {_PAYMENT_COLS} FROM payments WHERE operation_id = ?{self._d.for_update}",
                                       (operation_id,)))

    @staticmethod
    def _classify(invoice: Invoice | None, withdraw: Decimal, held: bool, received_at: float) -> str:
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

    @staticmethod
    def _plan(invoice: Invoice | None, operation_id: str, outcome: str, now: float) -> tuple[Invoice | None, bool]:
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

    def _settle(self, txn, invoice: Invoice | None, operation_id: str, outcome: str, now: float,
                events: list) -> tuple[Invoice | None, Subscription | None]:
        """Set the invoice's status for this outcome and extend the subscription when it grants."""
        changed, grant = self._plan(invoice, operation_id, outcome, now)
        subscription = None
        if changed is not None:
            self._x(txn, "UPDATE invoices SET status = ?, paid_at = ?, operation_id = ? WHERE label = ?",
                    (changed.status, changed.paid_at, changed.operation_id, changed.label))
            events.append(("invoice_" + outcome, invoice.label, invoice.chat_id, operation_id,
                           {"previous": invoice.status}))
            invoice = changed
        if grant:
            g = self._d.greatest
            row = self._one(
                txn,
                f"INSERT INTO subscriptions ({_SUB_COLS}) VALUES (?, ?, ?, ?, NULL, 0) "
                f"ON CONFLICT (chat_id) DO UPDATE SET ends_at = {g}(subscriptions.ends_at, ?) + ?, "
                "plan = excluded.plan, updated_at = excluded.updated_at, reminded_window = NULL, expired = 0 "
                f"RETURNING {_SUB_COLS}",
                (invoice.chat_id, invoice.plan, now + invoice.days * DAY, now, now, float(invoice.days * DAY)))
            subscription = self._subscription(row)
            self._x(txn, "UPDATE payments SET granted_until = ?, chat_id = ? WHERE operation_id = ?",
                    (subscription.ends_at, invoice.chat_id, operation_id))
            events.append(("subscription_extended", invoice.label, invoice.chat_id, operation_id,
                           {"plan": invoice.plan, "days": invoice.days, "ends_at": subscription.ends_at}))
        return invoice, subscription

    def _apply(self, txn, pf: PaymentFields, source: str, now: float, held: bool) -> ApplyResult:
        invoice = self._lock_invoice(txn, pf.label)
        outcome = self._classify(invoice, pf.withdraw_amount, held, now)
        money = self._d.money_in
        inserted = self._one(
            txn,
            f"INSERT INTO payments ({_PAYMENT_INSERT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, ?) "
            "ON CONFLICT (operation_id) DO NOTHING RETURNING seq",
            (pf.operation_id, pf.label, invoice.label if invoice else None, money(pf.amount),
             money(pf.withdraw_amount), pf.notification_type, pf.datetime_raw, pf.sender, int(held), outcome,
             source, now, None if held else now, invoice.chat_id if invoice else None, _json(dict(pf.raw))))
        if inserted is None:
            return self._again(txn, pf, source, now, held, invoice)
        pending = [("payment_" + outcome, pf.label or None, invoice.chat_id if invoice else None, pf.operation_id,
                    {"source": source, "amount": pf.amount, "withdraw_amount": pf.withdraw_amount, "held": held})]
        invoice, subscription = self._settle(txn, invoice, pf.operation_id, outcome, now, pending)
        events = self._write_events(txn, now, pending)
        payment = Payment(
            pf.operation_id, pf.label, invoice.label if invoice else None, pf.amount, pf.withdraw_amount,
            pf.notification_type, pf.datetime_raw, pf.sender, held, outcome, source, now,
            None if held else now, invoice.chat_id if invoice else None,
            subscription.ends_at if subscription else None, False, inserted[0], pf.raw)
        return ApplyResult(outcome, payment, invoice, subscription, events, True,
                           chat_blocked=self._blocked(txn, payment.chat_id))

    def _again(self, txn, pf, source, now, held, invoice) -> ApplyResult:
        """The operation is already recorded: a release if it was held and now is not,
        otherwise a duplicate."""
        existing = self._lock_payment(txn, pf.operation_id)
        if existing.held and not held:
            return self._release(txn, existing, source, now)
        if existing.invoice_label and (invoice is None or invoice.label != existing.invoice_label):
            invoice = self._invoice(self._one(txn, f"SELECT {_INVOICE_COLS} FROM invoices WHERE label = ?",
                                              (existing.invoice_label,)))
        chat_id = existing.chat_id
        subscription = self._subscription(self._one(txn, f"SELECT {_SUB_COLS} FROM subscriptions WHERE chat_id = ?",
                                                    (chat_id,))) if chat_id is not None else None
        if (pf.amount, pf.withdraw_amount) != (existing.amount, existing.withdraw_amount):
            # Same operation_id, different money: never credited twice, but worth a look.
            self._add_event(txn, now, "duplicate_mismatch", label=existing.label or None, chat_id=chat_id,
                            operation_id=pf.operation_id, source=source, amount=pf.amount,
                            withdraw_amount=pf.withdraw_amount)
        return ApplyResult("duplicate", existing, invoice, subscription, (), False,
                           chat_blocked=self._blocked(txn, invoice.chat_id if invoice else None))

    def _release(self, txn, existing: Payment, source: str, now: float) -> ApplyResult:
        invoice = self._lock_invoice(txn, existing.invoice_label) if existing.invoice_label else None
        outcome = self._classify(invoice, existing.withdraw_amount, False, existing.received_at)
        self._x(txn, "UPDATE payments SET held = 0, status = ?, accepted_at = ?, notified = 0 WHERE operation_id = ?",
                (outcome, now, existing.operation_id))
        pending = [("payment_released", existing.label or None, existing.chat_id, existing.operation_id,
                    {"source": source, "outcome": outcome})]
        invoice, subscription = self._settle(txn, invoice, existing.operation_id, outcome, now, pending)
        events = self._write_events(txn, now, pending)
        payment = self._lock_payment(txn, existing.operation_id)
        return ApplyResult(outcome, payment, invoice, subscription, events, False, released=True,
                           chat_blocked=self._blocked(txn, invoice.chat_id if invoice else None))

    def release_payment(self, operation_id, now, source="manual") -> Deferred:
        def q(txn):
            existing = self._lock_payment(txn, operation_id)
            if existing is None:
                return None
            if not existing.held:
                return ApplyResult("duplicate", existing, None, None, (), False)
            return self._release(txn, existing, source, now)
        return self._run(q)

    def get_payment(self, operation_id) -> Deferred:
        def q(txn):
            return self._payment(self._one(txn, f"SELECT {_PAYMENT_COLS} FROM payments WHERE operation_id = ?",
                                           (operation_id,)))
        return self._run(q, write=False)

    def mark_notified(self, operation_id) -> Deferred:
        if self._closed is not None:
            return fail(LedgerError("the ledger is closed"))
        return self._batched(self._mark_notified, operation_id)

    def _mark_notified(self, txn, operation_id) -> bool:
        return self._x(txn, "UPDATE payments SET notified = 1 WHERE operation_id = ? AND notified = 0",
                       (operation_id,)).rowcount == 1

    def list_payments(self, since=None, until=None, status=None, label=None, chat_id=None,
                      after_cursor=None, limit=100) -> Deferred:
        limit = max(1, min(int(limit), 10_000))
        where, params = [], []
        for clause, value in (("received_at >= ?", since), ("received_at < ?", until), ("status = ?", status),
                              ("label = ?", label), ("chat_id = ?", chat_id), ("seq > ?", after_cursor)):
            if value is not None:
                where.append(clause)
                params.append(value)
        query = f"SELECT {_PAYMENT_COLS} FROM payments"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY seq LIMIT ?"
        params.append(limit + 1)

        def q(txn):
            rows = self._all(txn, query, params)
            payments = tuple(self._payment(r) for r in rows[:limit])
            return PaymentPage(payments, payments[-1].seq if len(rows) > limit else None)
        return self._run(q, write=False)

    # --- subscriptions ----------------------------------------------------------------

    def subscription(self, chat_id) -> Deferred:
        def q(txn):
            return self._subscription(self._one(txn, f"SELECT {_SUB_COLS} FROM subscriptions WHERE chat_id = ?", (chat_id,)))
        return self._run(q, write=False)

    def due_reminders(self, now, window, limit=1000) -> Deferred:
        def q(txn):
            # blocked chats get no reminders (their expiry is still processed)
            rows = self._all(txn, f"SELECT {_SUB_COLS} FROM subscriptions WHERE expired = 0 AND ends_at > ? "
                                  "AND ends_at <= ? AND (reminded_window IS NULL OR reminded_window > ?) "
                                  "AND chat_id NOT IN (SELECT chat_id FROM blocked_chats) "
                                  "ORDER BY ends_at LIMIT ?", (now, now + window, int(window), int(limit)))
            return [self._subscription(r) for r in rows]
        return self._run(q, write=False)

    def mark_reminded(self, items, window, now=None) -> Deferred:
        # one lock order for every process (no deadlock between two sweeps on PostgreSQL)
        items = sorted((int(c), float(e)) for c, e in items)
        at = self._reactor.seconds() if now is None else now

        def q(txn):
            claimed = []
            for chat_id, ends_at in items:
                cur = self._x(txn, "UPDATE subscriptions SET reminded_window = ? WHERE chat_id = ? AND ends_at = ? "
                                   "AND expired = 0 AND (reminded_window IS NULL OR reminded_window > ?)",
                              (int(window), chat_id, ends_at, int(window)))
                if cur.rowcount == 1:
                    claimed.append(chat_id)
            if claimed:
                self._write_events(txn, at, [("subscription_reminded", None, chat_id, None,
                                              {"window": int(window)}) for chat_id in claimed])
            return claimed
        return self._run(q)

    def unmark_reminded(self, chat_id, ends_at, window) -> Deferred:
        def q(txn):
            return self._x(txn, "UPDATE subscriptions SET reminded_window = NULL WHERE chat_id = ? AND ends_at = ? "
                                "AND reminded_window = ?", (chat_id, ends_at, int(window))).rowcount == 1
        return self._run(q)

    def expired_subscriptions(self, now, limit=1000) -> Deferred:
        def q(txn):
            rows = self._all(txn, f"SELECT {_SUB_COLS} FROM subscriptions WHERE expired = 0 AND ends_at <= ? "
                                  "ORDER BY ends_at LIMIT ?", (now, int(limit)))
            return [self._subscription(r) for r in rows]
        return self._run(q, write=False)

    def mark_expired(self, items, now=None) -> Deferred:
        # one lock order for every process (no deadlock between two sweeps on PostgreSQL)
        items = sorted((int(c), float(e)) for c, e in items)
        at = self._reactor.seconds() if now is None else now

        def q(txn):
            claimed = []
            for chat_id, ends_at in items:
                cur = self._x(txn, "UPDATE subscriptions SET expired = 1 WHERE chat_id = ? AND ends_at = ? AND expired = 0",
                              (chat_id, ends_at))
                if cur.rowcount == 1:
                    claimed.append(chat_id)
                    self._add_event(txn, at, "subscription_expired", chat_id=chat_id, ends_at=ends_at)
            return claimed
        return self._run(q)

    def unmark_expired(self, chat_id, ends_at) -> Deferred:
        def q(txn):
            return self._x(txn, "UPDATE subscriptions SET expired = 0 WHERE chat_id = ? AND ends_at = ? AND expired = 1",
                           (chat_id, ends_at)).rowcount == 1
        return self._run(q)

    def mark_blocked(self, chat_id, now=None) -> Deferred:
        if now is None:
            now = self._reactor.seconds()

        def q(txn):
            cur = self._x(txn, "INSERT INTO blocked_chats (chat_id, blocked_at) VALUES (?, ?) ON CONFLICT (chat_id) DO NOTHING",
                          (chat_id, now))
            if cur.rowcount == 1:
                self._add_event(txn, now, "chat_blocked", chat_id=chat_id)
                return True
            return False
        return self._run(q)

    def is_blocked(self, chat_id) -> Deferred:
        def q(txn):
            return self._one(txn, "SELECT 1 FROM blocked_chats WHERE chat_id = ?", (chat_id,)) is not None
        return self._run(q, write=False)

    # --- quarantine -------------------------------------------------------------------

    def quarantine_add(self, body, reason, remote, now) -> Deferred:
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        body = str(body)[: self.quarantine_max_body]
        reason = str(reason)[:200]
        remote = str(remote)[:64]
        size = len(body.encode("utf-8"))
        digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
        return self._run(self._quarantine_add, body, digest, size, reason, remote, now)

    def _quarantine_add(self, txn, body, digest, size, reason, remote, now) -> QuarantineResult:
        upsert = ("INSERT INTO quarantine (body, body_hash, size, reason, remote, received_at, last_seen, count) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT (body_hash) DO UPDATE SET count = quarantine.count + 1, "
                  "last_seen = excluded.last_seen RETURNING id, count")
        known = self._one(txn, "SELECT id FROM quarantine WHERE body_hash = ?", (digest,))
        action = "repeated"
        if known is None:
            rows, used = self._one(txn, "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM quarantine WHERE resolved_at IS NULL")
            if rows >= self.quarantine_max_rows or int(used) + size > self.quarantine_max_bytes:
                # Full: count what arrives per reason but keep no more bodies.
                digest, body, size, action = "overflow:" + hashlib.sha256(reason.encode()).hexdigest(), "", 0, "aggregated"
            else:
                action = "stored"
        id_, count = self._one(txn, upsert, (body, digest, size, reason, remote, now, now))
        if action == "stored" and count > 1:
            action = "repeated"  # a concurrent process stored the same body first
        if action == "stored":
            self._add_event(txn, now, "quarantined", quarantine_id=id_, reason=reason)
        unresolved = self._one(txn, "SELECT COUNT(*) FROM quarantine WHERE resolved_at IS NULL")[0]
        return QuarantineResult(id_, action, int(unresolved))

    def quarantine_list(self, unresolved_only=True, limit=100, after_id=0) -> Deferred:
        def q(txn):
            where = " AND resolved_at IS NULL" if unresolved_only else ""
            rows = self._all(txn, f"SELECT {_Q_COLS} FROM quarantine WHERE id > ?{where} ORDER BY id LIMIT ?",
                             (int(after_id), int(limit)))
            return [self._quarantined(r) for r in rows]
        return self._run(q, write=False)

    def quarantine_resolve(self, id, how, now=None) -> Deferred:
        if now is None:
            now = self._reactor.seconds()

        def q(txn):
            cur = self._x(txn, "UPDATE quarantine SET resolved_at = ?, resolution = ? WHERE id = ? AND resolved_at IS NULL",
                          (now, str(how)[:200], id))
            if cur.rowcount == 1:
                self._add_event(txn, now, "quarantine_resolved", quarantine_id=id, how=str(how)[:200])
                return True
            return False
        return self._run(q)

    # --- owner's view -----------------------------------------------------------------

    def stats(self, now) -> Deferred:
        day = now - now % DAY
        t = time.gmtime(now)
        month = float(calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0)))
        d = self._d

        def q(txn):
            counted = f"SELECT COUNT(*), {d.sum_money('amount')} FROM payments WHERE status <> 'held' AND received_at >= ?"
            today_n, today_sum = self._one(txn, counted, (day,))
            month_n, month_sum = self._one(txn, counted, (month,))
            active = self._one(txn, "SELECT COUNT(*) FROM subscriptions WHERE ends_at > ?", (now,))[0]
            quarantined = self._one(txn, "SELECT COUNT(*) FROM quarantine WHERE resolved_at IS NULL")[0]
            return Stats(int(today_n), d.sum_out(today_sum), int(month_n), d.sum_out(month_sum), int(active),
                         int(quarantined))
        return self._run(q, write=False)

    def get_cursor(self, name) -> Deferred:
        def q(txn):
            row = self._one(txn, "SELECT value FROM cursors WHERE name = ?", (name,))
            return row[0] if row else None
        return self._run(q, write=False)

    def set_cursor(self, name, value) -> Deferred:
        def q(txn):
            self._x(txn, "INSERT INTO cursors (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    (name, str(value)))
        return self._run(q)

    def events(self, label=None, chat_id=None, operation_id=None, limit=1000) -> Deferred:
        where, params = [], []
        for clause, value in (("label = ?", label), ("chat_id = ?", chat_id), ("operation_id = ?", operation_id)):
            if value is not None:
                where.append(clause)
                params.append(value)
        if not where:
            return fail(LedgerError("events() needs a label, chat_id or operation_id"))

        def q(txn):
            rows = self._all(txn, f"SELECT {_EVENT_COLS} FROM events WHERE {' OR '.join(where)} ORDER BY id LIMIT ?",
                             params + [int(limit)])
            return [self._event(r) for r in rows]
        return self._run(q, write=False)


    # --- integration API: keys and idempotency ------------------------------------------

    @staticmethod
    def _api_key(row) -> ApiKey | None:
        if row is None:
            return None
        id_, name, scopes, created_at, revoked_at = row
        return ApiKey(id_, name, tuple(scopes.split()), created_at, revoked_at)

    def api_key_create(self, key_id, key_hash, name, scopes, now) -> Deferred:
        scopes = tuple(scopes)

        def q(txn):
            self._x(txn, "INSERT INTO api_keys (id, key_hash, name, scopes, created_at) VALUES (?, ?, ?, ?, ?)",
                    (key_id, key_hash, name, " ".join(scopes), now))
            self._add_event(txn, now, "api_key_created", key_id=key_id, scopes=list(scopes))
            return ApiKey(key_id, name, scopes, now)
        return self._run(q)

    def api_key_lookup(self, key_hash) -> Deferred:
        def q(txn):
            return self._api_key(self._one(txn, f"SELECT {_KEY_COLS} FROM api_keys WHERE key_hash = ?", (key_hash,)))
        return self._run(q, write=False)

    def api_key_list(self) -> Deferred:
        def q(txn):
            return [self._api_key(r) for r in self._all(txn, f"SELECT {_KEY_COLS} FROM api_keys ORDER BY created_at, id")]
        return self._run(q, write=False)

    def api_key_revoke(self, key_id, now) -> Deferred:
        def q(txn):
            cur = self._x(txn, "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now, key_id))
            if cur.rowcount == 1:
                self._add_event(txn, now, "api_key_revoked", key_id=key_id)
                return True
            return False
        return self._run(q)

    def create_invoice_once(self, key_id, idempotency_key, request_hash, now, kind, amount, ttl, plan=None,
                            days=None, chat_id=None, user_id=None, description="", metadata=None) -> Deferred:
        if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0 or amount >= Decimal("1e10"):
            return fail(LedgerError(f"invoice amount {amount!r} is not a positive Decimal below 10^10"))
        if kind not in ("subscription", "donation"):
            return fail(LedgerError(f"invoice kind {kind!r} is not subscription or donation"))
        if kind == "subscription" and (not plan or not days or chat_id is None):
            return fail(LedgerError("a subscription invoice needs a plan, its days and a chat"))
        amount = amount.quantize(CENT)
        label = new_label()

        def q(txn):
            # The write lock (SQLite) or the primary key (PostgreSQL, ON CONFLICT) makes
            # the second of two concurrent requests with one key see the first one's row.
            row = self._one(txn, "SELECT request_hash, invoice_label FROM idempotency_keys WHERE key_id = ? AND idem_key = ?",
                            (key_id, idempotency_key))
            if row is None:
                claimed = self._one(txn, "INSERT INTO idempotency_keys (key_id, idem_key, request_hash, invoice_label, "
                                         "created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key_id, idem_key) DO NOTHING "
                                         "RETURNING invoice_label", (key_id, idempotency_key, request_hash, label, now))
                if claimed is not None:
                    invoice = self._create_invoice(txn, kind, amount, now, ttl, plan, days, chat_id, user_id,
                                                   description or "", dict(metadata or {}), label, False)
                    return invoice, False
                row = self._one(txn, "SELECT request_hash, invoice_label FROM idempotency_keys "
                                     "WHERE key_id = ? AND idem_key = ?", (key_id, idempotency_key))
            if row[0] != request_hash:
                raise IdempotencyConflict("this Idempotency-Key was used with a different request")
            invoice = self._invoice(self._one(txn, f"SELECT {_INVOICE_COLS} FROM invoices WHERE label = ?", (row[1],)))
            if invoice is None:
                raise IdempotencyConflict("the invoice first created with this Idempotency-Key no longer exists")
            return invoice, True
        return self._run(q)

    def prune_idempotency(self, older_than) -> Deferred:
        def q(txn):
            return max(self._x(txn, "DELETE FROM idempotency_keys WHERE created_at < ?", (older_than,)).rowcount, 0)
        return self._run(q)

    # --- webhooks: endpoints ------------------------------------------------------------

    @staticmethod
    def _endpoint(row, pending=0, failed=0) -> WebhookEndpoint | None:
        if row is None:
            return None
        id_, url, events, secret, created_at, removed_at = row
        return WebhookEndpoint(id_, url, tuple(events.split()), secret, created_at, removed_at, pending, failed)

    def webhook_endpoint_add(self, endpoint_id, url, events, secret, now) -> Deferred:
        events = tuple(events)

        def q(txn):
            self._x(txn, "INSERT INTO webhook_endpoints (id, url, events, secret, created_at) VALUES (?, ?, ?, ?, ?)",
                    (endpoint_id, url, " ".join(events), secret, now))
            self._add_event(txn, now, "webhook_endpoint_added", endpoint_id=endpoint_id, events=list(events))
            return WebhookEndpoint(endpoint_id, url, events, secret, now)
        return self._run(q)

    def webhook_endpoint_get(self, endpoint_id) -> Deferred:
        def q(txn):
            return self._endpoint(self._one(txn, f"SELECT {_ENDPOINT_COLS} FROM webhook_endpoints WHERE id = ?",
                                            (endpoint_id,)))
        return self._run(q, write=False)

    def webhook_endpoints(self, include_removed=False) -> Deferred:
        def q(txn):
            where = "" if include_removed else " WHERE removed_at IS NULL"
            rows = self._all(txn, f"SELECT {_ENDPOINT_COLS} FROM webhook_endpoints{where} ORDER BY created_at, id")
            counts = {}
            for endpoint_id, status, n in self._all(txn, "SELECT endpoint_id, status, COUNT(*) FROM webhook_deliveries "
                                                         "WHERE status <> 'delivered' GROUP BY endpoint_id, status"):
                counts[(endpoint_id, status)] = int(n)
            return [self._endpoint(r, counts.get((r[0], "pending"), 0), counts.get((r[0], "failed"), 0)) for r in rows]
        return self._run(q, write=False)

    def webhook_endpoint_remove(self, endpoint_id, now) -> Deferred:
        def q(txn):
            cur = self._x(txn, "UPDATE webhook_endpoints SET removed_at = ? WHERE id = ? AND removed_at IS NULL",
                          (now, endpoint_id))
            if cur.rowcount == 1:
                self._add_event(txn, now, "webhook_endpoint_removed", endpoint_id=endpoint_id)
                return True
            return False
        return self._run(q)

    # --- webhooks: the outbox -----------------------------------------------------------

    def _wanting(self, txn, event_type) -> list[str]:
        rows = self._all(txn, "SELECT id, events FROM webhook_endpoints WHERE removed_at IS NULL ORDER BY id")
        return [id_ for id_, events in rows if event_type in events.split() or "*" in events.split()]

    def webhook_emit(self, events, now) -> Deferred:
        events = [(str(t), str(c), dict(d)) for t, c, d in events]

        def q(txn):
            concerned: list[str] = []
            for event_type, cause, data in events:
                row = self._one(txn, "INSERT INTO webhook_events (id, cause, type, created_at, data) VALUES (?, ?, ?, ?, ?) "
                                     "ON CONFLICT (cause) DO NOTHING RETURNING seq",
                                (f"evt_{secrets.token_hex(12)}", cause, event_type, now, _json(data)))
                if row is not None:
                    for endpoint_id in self._wanting(txn, event_type):
                        self._x(txn, "INSERT INTO webhook_deliveries (endpoint_id, event_seq, status, attempts, "
                                     "next_attempt_at) VALUES (?, ?, 'pending', 0, ?)", (endpoint_id, row[0], now))
                    seq = row[0]
                else:
                    seq = self._one(txn, "SELECT seq FROM webhook_events WHERE cause = ?", (cause,))[0]
                for (endpoint_id,) in self._all(txn, "SELECT endpoint_id FROM webhook_deliveries WHERE event_seq = ? "
                                                     "AND status = 'pending' ORDER BY endpoint_id", (seq,)):
                    if endpoint_id not in concerned:
                        concerned.append(endpoint_id)
            return concerned
        return self._run(q)

    def webhook_claim(self, endpoint_id, token, now, lease) -> Deferred:
        def q(txn):
            cur = self._x(txn, "UPDATE webhook_endpoints SET lease_token = ?, lease_until = ? WHERE id = ? "
                               "AND removed_at IS NULL AND (lease_token IS NULL OR lease_token = ? OR lease_until <= ?)",
                          (token, now + lease, endpoint_id, token, now))
            return cur.rowcount == 1
        return self._run(q)

    def webhook_release(self, endpoint_id, token) -> Deferred:
        def q(txn):
            return self._x(txn, "UPDATE webhook_endpoints SET lease_token = NULL, lease_until = NULL "
                                "WHERE id = ? AND lease_token = ?", (endpoint_id, token)).rowcount == 1
        return self._run(q)

    @staticmethod
    def _delivery(row) -> WebhookDelivery:
        (endpoint_id, seq, event_id, type_, created_at, data, status, attempts, first, next_at, error, done) = row
        return WebhookDelivery(endpoint_id, int(seq), event_id, type_, created_at, json.loads(data), status,
                               int(attempts), first, next_at, error, done)

    def webhook_next(self, endpoint_id) -> Deferred:
        def q(txn):
            row = self._one(txn, f"{_DELIVERY_SELECT} WHERE d.endpoint_id = ? AND d.status = 'pending' "
                                 "ORDER BY d.event_seq LIMIT 1", (endpoint_id,))
            return None if row is None else self._delivery(row)
        return self._run(q, write=False)

    def webhook_record_attempt(self, endpoint_id, event_seq, now, status_code, error, duration, outcome,
                               next_attempt_at=None) -> Deferred:
        if outcome not in ("delivered", "retry", "failed"):
            return fail(LedgerError(f"attempt outcome {outcome!r} is not delivered, retry or failed"))
        error = None if error is None else str(error)[:500]

        def q(txn):
            self._x(txn, "INSERT INTO webhook_attempts (endpoint_id, event_seq, at, status_code, error, duration, outcome) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", (endpoint_id, event_seq, now, status_code, error, duration, outcome))
            status = "pending" if outcome == "retry" else outcome
            cur = self._x(txn, "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, "
                               "first_attempt_at = COALESCE(first_attempt_at, ?), next_attempt_at = ?, last_error = ?, "
                               "done_at = ? WHERE endpoint_id = ? AND event_seq = ? AND status = 'pending'",
                          (status, now, next_attempt_at if next_attempt_at is not None else now, error,
                           None if outcome == "retry" else now, endpoint_id, event_seq))
            return cur.rowcount == 1
        return self._run(q)

    def webhook_due(self, now, limit=1000) -> Deferred:
        def q(txn):
            rows = self._all(txn, "SELECT w.id FROM webhook_endpoints w WHERE w.removed_at IS NULL "
                                  "AND (w.lease_token IS NULL OR w.lease_until <= ?) AND (SELECT d.next_attempt_at FROM "
                                  "webhook_deliveries d WHERE d.endpoint_id = w.id AND d.status = 'pending' "
                                  "ORDER BY d.event_seq LIMIT 1) <= ? ORDER BY w.id LIMIT ?", (now, now, int(limit)))
            return [r[0] for r in rows]
        return self._run(q, write=False)

    def webhook_redeliver(self, now, event_id=None, endpoint_id=None, since=None) -> Deferred:
        if event_id is None and endpoint_id is None:
            return fail(LedgerError("webhook_redeliver needs an event id or an endpoint id"))

        def q(txn):
            where, params = [], []
            if event_id is not None:
                where.append("id = ?")
                params.append(event_id)
            if since is not None:
                where.append("created_at >= ?")
                params.append(since)
            events = self._all(txn, "SELECT seq, type FROM webhook_events WHERE " + " AND ".join(where or ["1 = 1"])
                               + " ORDER BY seq", params)
            concerned: list[str] = []
            for seq, event_type in events:
                targets = self._wanting(txn, event_type)
                if endpoint_id is not None:
                    targets = [t for t in targets if t == endpoint_id]
                for target in targets:
                    cur = self._x(txn, "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, "
                                       "first_attempt_at = NULL, next_attempt_at = ?, last_error = NULL, done_at = NULL "
                                       "WHERE endpoint_id = ? AND event_seq = ?", (now, target, seq))
                    if cur.rowcount == 0:
                        self._x(txn, "INSERT INTO webhook_deliveries (endpoint_id, event_seq, status, attempts, "
                                     "next_attempt_at) VALUES (?, ?, 'pending', 0, ?)", (target, seq, now))
                    if target not in concerned:
                        concerned.append(target)
            if concerned:
                self._add_event(txn, now, "webhook_redeliver", event_id=event_id, endpoint_id=endpoint_id,
                                since=since, deliveries=len(events))
            return concerned
        return self._run(q)

    def webhook_deliveries(self, endpoint_id=None, event_id=None, status=None, limit=100) -> Deferred:
        where, params = [], []
        for clause, value in (("d.endpoint_id = ?", endpoint_id), ("e.id = ?", event_id), ("d.status = ?", status)):
            if value is not None:
                where.append(clause)
                params.append(value)

        def q(txn):
            query = _DELIVERY_SELECT + (" WHERE " + " AND ".join(where) if where else "")
            rows = self._all(txn, query + " ORDER BY d.event_seq, d.endpoint_id LIMIT ?", params + [int(limit)])
            return [self._delivery(r) for r in rows]
        return self._run(q, write=False)

    def webhook_attempts(self, endpoint_id=None, event_id=None, limit=100) -> Deferred:
        where, params = [], []
        for clause, value in (("a.endpoint_id = ?", endpoint_id), ("e.id = ?", event_id)):
            if value is not None:
                where.append(clause)
                params.append(value)

        def q(txn):
            query = ("SELECT a.id, a.endpoint_id, e.id, a.at, a.status_code, a.error, a.duration, a.outcome "
                     "FROM webhook_attempts a JOIN webhook_events e ON e.seq = a.event_seq")
            if where:
                query += " WHERE " + " AND ".join(where)
            rows = self._all(txn, query + " ORDER BY a.id LIMIT ?", params + [int(limit)])
            return [WebhookAttempt(*r) for r in rows]
        return self._run(q, write=False)
