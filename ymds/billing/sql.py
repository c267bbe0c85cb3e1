"""SQL shared by the SQLite and PostgreSQL ledgers: dialects, column lists, schema files and
row-to-value conversions.

Everything here is public on purpose: the stores (``ymds.billing.stores``) and the engines
(``sqlite.py``, ``postgres.py``) import it, and nothing else in the ledger has its own copy of
a column list or a money conversion.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from typing import Any, Sequence

from ymds.billing.ledger import (
    ApiKey, Event, Invoice, LedgerError, Payment, QuarantinedNotification, Subscription, WebhookDelivery,
    WebhookEndpoint,
)

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema")
CENT = Decimal("0.01")
DAY = 86400

INVOICE_COLS = ("label, kind, plan, days, chat_id, user_id, amount, description, metadata, status, "
                "created_at, expires_at, paid_at, operation_id")
PAYMENT_COLS = ("operation_id, label, invoice_label, amount, withdraw_amount, notification_type, "
                "datetime_raw, sender, held, status, source, received_at, accepted_at, chat_id, "
                "granted_until, notified, seq, raw")
PAYMENT_INSERT_COLS = PAYMENT_COLS.replace("notified, seq, raw", "notified, raw")
SUBSCRIPTION_COLS = "chat_id, plan, ends_at, updated_at, reminded_window, expired"
QUARANTINE_COLS = "id, body, reason, remote, received_at, last_seen, count, size, resolved_at, resolution"
EVENT_COLS = "id, at, kind, label, chat_id, operation_id, data"
API_KEY_COLS = "id, name, scopes, created_at, revoked_at"
ENDPOINT_COLS = "id, url, events, secret, created_at, removed_at"
DELIVERY_SELECT = ("SELECT d.endpoint_id, d.event_seq, e.id, e.type, e.created_at, e.data, d.status, d.attempts, "
                   "d.first_attempt_at, d.next_attempt_at, d.last_error, d.done_at "
                   "FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.event_seq")


# --- dialects -------------------------------------------------------------------------------


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

    def sql(self, query: str) -> str:
        """``query`` with ``?`` placeholders in this engine's parameter style."""
        return query

    def money_in(self, value: Decimal) -> Any:
        """A Decimal as this engine stores money."""
        return value

    def money_out(self, value: Any) -> Decimal:
        """Stored money back as a Decimal with two places."""
        return Decimal(value).quantize(CENT)

    def sum_money(self, column: str) -> str:
        """An exact SQL sum of a money column (0 over no rows)."""
        return f"COALESCE(SUM({column}), 0)"

    def sum_out(self, value: Any) -> Decimal:
        """The value of :meth:`sum_money` as a Decimal."""
        return Decimal(value or 0).quantize(CENT)


class SQLiteDialect(Dialect):
    name = "sqlite"
    group_commit = True
    begin_write = "BEGIN IMMEDIATE"
    begin_read = "BEGIN"
    greatest = "MAX"

    def money_in(self, value: Decimal) -> str:
        return format(value.quantize(CENT), "f")

    def money_out(self, value: Any) -> Decimal:
        return Decimal(str(value)).quantize(CENT)

    def sum_money(self, column: str) -> str:
        # Stored as text with exactly two decimals, so dropping the point gives kopecks
        # as an exact integer; no floating point anywhere.
        return f"COALESCE(SUM(CAST(REPLACE({column}, '.', '') AS INTEGER)), 0)"

    def sum_out(self, value: Any) -> Decimal:
        return (Decimal(int(value or 0)) / 100).quantize(CENT)


class PostgresDialect(Dialect):
    name = "postgresql"
    for_update = " FOR UPDATE"
    greatest = "GREATEST"
    migration_lock = "SELECT pg_advisory_xact_lock(7298411)"

    def __init__(self) -> None:
        self._converted: dict[str, str] = {}

    def sql(self, query: str) -> str:
        converted = self._converted.get(query)
        if converted is None:
            converted = self._converted[query] = query.replace("?", "%s")
        return converted


# --- schema files ---------------------------------------------------------------------------


def known_migrations(dialect_name: str) -> list[tuple[int, str]]:
    """(version, path) of the schema files for one dialect, in order."""
    found = []
    suffix = f".{dialect_name}.sql"
    for name in os.listdir(SCHEMA_DIR):
        if name.endswith(suffix) and name[:3].isdigit():
            found.append((int(name[:3]), os.path.join(SCHEMA_DIR, name)))
    found.sort()
    versions = [v for v, _ in found]
    # Gaps are allowed (features land in parallel, each with its own assigned number); the
    # migrator applies every version not yet recorded, in order. Two files with one number are not.
    if len(set(versions)) != len(versions) or (versions and versions[0] != 1):
        raise LedgerError(f"schema files for {dialect_name} must be numbered uniquely from 001: {versions}")
    return found


def statements(sql: str) -> list[str]:
    """The statements of one schema file."""
    # Our schema files hold plain DDL: ';' ends a statement, '--' starts a comment.
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


# --- values (each *_from_row takes a row that exists) ------------------------------------


def json_text(value: Any) -> str:
    """The JSON the ledger stores: sorted keys, no spaces, Decimals as strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def invoice_from_row(dialect: Dialect, row: Sequence[Any]) -> Invoice:
    (label, kind, plan, days, chat_id, user_id, amount, description, metadata, status,
     created_at, expires_at, paid_at, operation_id) = row
    return Invoice(label, kind, plan, days, chat_id, user_id, dialect.money_out(amount), description,
                   json.loads(metadata or "{}"), status, created_at, expires_at, paid_at, operation_id)


def payment_from_row(dialect: Dialect, row: Sequence[Any]) -> Payment:
    (operation_id, label, invoice_label, amount, withdraw_amount, notification_type, datetime_raw,
     sender, held, status, source, received_at, accepted_at, chat_id, granted_until, notified,
     seq, raw) = row
    return Payment(operation_id, label, invoice_label, dialect.money_out(amount),
                   dialect.money_out(withdraw_amount), notification_type, datetime_raw, sender,
                   bool(held), status, source, received_at, accepted_at, chat_id, granted_until,
                   bool(notified), seq, json.loads(raw or "{}"))


def subscription_from_row(row: Sequence[Any]) -> Subscription:
    chat_id, plan, ends_at, updated_at, reminded_window, expired = row
    return Subscription(chat_id, plan, float(ends_at), float(updated_at), reminded_window, bool(expired))


def quarantined_from_row(row: Sequence[Any]) -> QuarantinedNotification:
    return QuarantinedNotification(*row)


def event_from_row(row: Sequence[Any]) -> Event:
    id_, at, kind, label, chat_id, operation_id, data = row
    return Event(id_, at, kind, label, chat_id, operation_id, json.loads(data or "{}"))


def api_key_from_row(row: Sequence[Any]) -> ApiKey:
    id_, name, scopes, created_at, revoked_at = row
    return ApiKey(id_, name, tuple(scopes.split()), created_at, revoked_at)


def endpoint_from_row(row: Sequence[Any], pending: int = 0, failed: int = 0) -> WebhookEndpoint:
    id_, url, events, secret, created_at, removed_at = row
    return WebhookEndpoint(id_, url, tuple(events.split()), secret, created_at, removed_at, pending, failed)


def delivery_from_row(row: Sequence[Any]) -> WebhookDelivery:
    (endpoint_id, seq, event_id, type_, created_at, data, status, attempts, first, next_at, error, done) = row
    return WebhookDelivery(endpoint_id, int(seq), event_id, type_, created_at, json.loads(data), status,
                           int(attempts), first, next_at, error, done)
