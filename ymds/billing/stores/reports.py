"""The dashboard's figures: money per half hour and kind, first grants, active-subscriber
snapshots — kept as payments are applied, so the overview never scans payments.

What counts as money in: every payment that is not held (the ``amount`` credited to the
wallet, whatever its status: what ``ymds stats`` counts too), under the kind of its invoice
("subscription"), or "donation" for a donation invoice or money without one of our
invoices.  A held payment counts when it is released, in the bucket of its received_at.

The payment stores call :func:`record_payment_in` / :func:`record_grant_in` inside the
payment's own transaction (the PostgreSQL store adds the same rows as CTEs:
:func:`postgres_report_ctes`), so a duplicate delivery, which inserts no payment, adds
nothing, and a rolled-back payment takes its figures with it.

Buckets are half hours of UTC (``bucket = floor(received_at / 1800)``): any time zone whose
offset is a whole or half hour sums its own local days from them, and changing
``server.timezone`` needs no rebuild.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Sequence

from twisted.internet.defer import Deferred

from ymds.billing.database import Database
from ymds.billing.ledger import Invoice

BUCKET = 1800
SLOTS = 16  # rows per (bucket, kind): concurrent payments lock different ones
KINDS = ("subscription", "donation")
_KOPECKS = Decimal(100)


@dataclass(frozen=True)
class MoneyBucket:
    """Money accepted in one half hour (``bucket * 1800`` Unix seconds on) of one kind."""

    bucket: int
    kind: str
    amount: Decimal
    count: int


@dataclass(frozen=True)
class SubscriberCounts:
    """Active now, first granted since ``since``, and ended between ``since`` and now."""

    active: int
    new: int
    lapsed: int


def report_kind(invoice: Invoice | None) -> str:
    """The dashboard's kind of a payment made against ``invoice`` (None: no invoice of ours)."""
    return "subscription" if invoice is not None and invoice.kind == "subscription" else "donation"


def bucket_of(at: float) -> int:
    """The half-hour bucket of a Unix time."""
    return int(at // BUCKET)


def kopecks(amount: Decimal) -> int:
    return int(amount * _KOPECKS)


def slot_of(operation_id: str) -> int:
    """The row of its bucket a payment adds to (stable, spread by operation id)."""
    return zlib.crc32(operation_id.encode("utf-8", "replace")) % SLOTS


_UPSERT_MONEY = ("INSERT INTO report_money (bucket, kind, slot, amount, count) VALUES (?, ?, ?, ?, 1) "
                 "ON CONFLICT (bucket, kind, slot) DO UPDATE SET amount = report_money.amount + excluded.amount, "
                 "count = report_money.count + 1")
_INSERT_GRANT = "INSERT INTO report_chats (chat_id, first_paid_at) VALUES (?, ?) ON CONFLICT (chat_id) DO NOTHING"


def record_payment_in(db: Database, txn: Any, received_at: float, kind: str, amount: Decimal,
                      operation_id: str) -> None:
    """Add one accepted payment to the money figures, inside the payment's transaction."""
    db.execute(txn, _UPSERT_MONEY, (bucket_of(received_at), kind, slot_of(operation_id), kopecks(amount)))


def record_grant_in(db: Database, txn: Any, chat_id: int, at: float) -> None:
    """Note a chat's first granted subscription (no-op when it had one before)."""
    db.execute(txn, _INSERT_GRANT, (chat_id, at))


def postgres_report_ctes(received_at: float, kind: str, amount: Decimal, operation_id: str,
                         granted_chat: int | None, now: float) -> tuple[list[str], list[Any]]:
    """The same rows as data-modifying CTEs for the PostgreSQL payment statement; they
    run only when its ``ins`` CTE inserted the payment (a new, not-held payment)."""
    ctes = ["rep AS (INSERT INTO report_money (bucket, kind, slot, amount, count) "
            "SELECT %s::bigint, %s::text, %s::int, %s::bigint, 1 WHERE EXISTS (SELECT 1 FROM ins) "
            "ON CONFLICT (bucket, kind, slot) DO UPDATE SET amount = report_money.amount + excluded.amount, "
            "count = report_money.count + 1)"]
    params: list[Any] = [bucket_of(received_at), kind, slot_of(operation_id), kopecks(amount)]
    if granted_chat is not None:
        ctes.append("repc AS (INSERT INTO report_chats (chat_id, first_paid_at) "
                    "SELECT %s::bigint, %s::double precision WHERE EXISTS (SELECT 1 FROM ins) "
                    "ON CONFLICT (chat_id) DO NOTHING)")
        params += [granted_chat, now]
    return ctes, params


def _buckets(rows: Sequence[Sequence[Any]]) -> list[MoneyBucket]:
    return [MoneyBucket(int(b), str(k), (Decimal(int(a)) / _KOPECKS).quantize(Decimal("0.01")), int(c))
            for b, k, a, c in rows]


class ReportStore:
    """The dashboard's figures over SQL (reads, plus the active-subscriber snapshot)."""

    def __init__(self, db: Database):
        self._db = db

    def money(self, since: float, until: float) -> Deferred[list[MoneyBucket]]:
        """The buckets starting in [since, until), by bucket then kind (empty ones absent)."""
        def q(txn: Any) -> list[MoneyBucket]:
            return self.money_in(txn, since, until)
        return self._db.run(q, write=False)

    def money_in(self, txn: Any, since: float, until: float) -> list[MoneyBucket]:
        rows = self._db.all(txn, "SELECT bucket, kind, SUM(amount), SUM(count) FROM report_money WHERE bucket >= ? "
                                 "AND bucket < ? GROUP BY bucket, kind ORDER BY bucket, kind", (bucket_of(since), bucket_of(until - 1e-6) + 1))
        return _buckets(rows)

    def money_between(self, edges: Sequence[float]) -> Deferred[list[dict[str, Decimal]]]:
        """Money per kind between consecutive ``edges`` (Unix times), summed by the database:
        a bucket counts in the interval where it starts.  One range scan per interval."""
        def q(txn: Any) -> list[dict[str, Decimal]]:
            return self.money_between_in(txn, edges)
        return self._db.run(q, write=False)

    def money_between_in(self, txn: Any, edges: Sequence[float]) -> list[dict[str, Decimal]]:
        """:meth:`money_between` inside a running transaction ``txn``."""
        bounds = [math.ceil(e / BUCKET) for e in edges]
        values = ", ".join(["(?, ?, ?)"] * (len(bounds) - 1))
        params: list[Any] = []
        for i, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
            params += [i, lo, hi]
        query = (f"WITH edges (i, lo, hi) AS (VALUES {values}) SELECT edges.i, r.kind, SUM(r.amount) FROM edges "
                 "JOIN report_money r ON r.bucket >= edges.lo AND r.bucket < edges.hi GROUP BY edges.i, r.kind")

        out = [{k: Decimal("0.00") for k in KINDS} for _ in bounds[1:]]
        for i, kind, kopeck_sum in self._db.all(txn, query, params):
            out[int(i)][str(kind)] = (Decimal(int(kopeck_sum)) / _KOPECKS).quantize(Decimal("0.01"))
        return out

    def fold(self, before: float) -> Deferred[int]:
        """Fold the slots of every half hour that starts before ``before`` into its slot 0,
        so reads sum one row per half hour and kind; returns how many rows went.

        The slot rows are locked first (FOR UPDATE where the engine has row locks) and only
        those exact rows are deleted, so a payment adding to an old half hour meanwhile
        (one found by reconciliation) is never lost: it waits, or lands in a new row."""
        db = self._db

        def q(txn: Any) -> int:
            rows = db.all(txn, "SELECT bucket, kind, slot, amount, count FROM report_money WHERE bucket < ? AND slot > 0 "
                               f"ORDER BY bucket, kind, slot{db.dialect.for_update}", (bucket_of(before),))
            totals: dict[tuple[int, str], list[int]] = {}
            for bucket, kind, _, amount, count in rows:
                entry = totals.setdefault((int(bucket), str(kind)), [0, 0])
                entry[0] += int(amount)
                entry[1] += int(count)
            # executemany: one call per statement (psycopg pipelines it) however many rows
            txn.executemany(db.dialect.sql(
                "INSERT INTO report_money (bucket, kind, slot, amount, count) VALUES (?, ?, 0, ?, ?) "
                "ON CONFLICT (bucket, kind, slot) DO UPDATE SET amount = report_money.amount + excluded.amount, "
                "count = report_money.count + excluded.count"),
                [(bucket, kind, amount, count) for (bucket, kind), (amount, count) in sorted(totals.items())])
            txn.executemany(db.dialect.sql("DELETE FROM report_money WHERE bucket = ? AND kind = ? AND slot = ?"),
                            [(bucket, kind, slot) for bucket, kind, slot, _, _ in rows])
            return len(rows)
        return db.run(q)

    def recount(self, since: float, until: float) -> Deferred[list[MoneyBucket]]:
        """The same figures recounted from the payments themselves (a slow scan: for checks)."""
        d = self._db.dialect

        def q(txn: Any) -> list[MoneyBucket]:
            rows = self._db.all(
                txn, "SELECT p.received_at, CASE WHEN i.kind = 'subscription' THEN 'subscription' ELSE 'donation' END, "
                     "p.amount FROM payments p LEFT JOIN invoices i ON i.label = p.invoice_label "
                     "WHERE p.held = 0 AND p.received_at >= ? AND p.received_at < ?", (since, until))
            totals: dict[tuple[int, str], list[Any]] = {}
            for received_at, kind, amount in rows:
                entry = totals.setdefault((bucket_of(float(received_at)), kind), [Decimal(0), 0])
                entry[0] += d.money_out(amount)
                entry[1] += 1
            return [MoneyBucket(b, k, v[0].quantize(Decimal("0.01")), v[1]) for (b, k), v in sorted(totals.items())]
        return self._db.run(q, write=False)

    def subscriber_counts(self, now: float, since: float) -> Deferred[SubscriberCounts]:
        """Active now, first granted since ``since``, lapsed since ``since``."""
        def q(txn: Any) -> SubscriberCounts:
            return self.subscriber_counts_in(txn, now, since)
        return self._db.run(q, write=False)

    def record_active(self, now: float, active: int) -> Deferred[None]:
        """Record ``active`` as today's (UTC day) count for :meth:`active_series`."""
        def q(txn: Any) -> None:
            self._db.execute(txn, "INSERT INTO report_active (day, active, at) VALUES (?, ?, ?) ON CONFLICT (day) "
                                  "DO UPDATE SET active = excluded.active, at = excluded.at",
                             (int(now // 86400), int(active), now))
        return self._db.run(q)

    def subscriber_counts_in(self, txn: Any, now: float, since: float) -> SubscriberCounts:
        db = self._db
        active = int(db.one(txn, "SELECT COUNT(*) FROM subscriptions WHERE expired IN (0, 1) AND ends_at > ?",
                            (now,))[0])
        new = int(db.one(txn, "SELECT COUNT(*) FROM report_chats WHERE first_paid_at >= ?", (since,))[0])
        lapsed = int(db.one(txn, "SELECT COUNT(*) FROM subscriptions WHERE expired IN (0, 1) AND ends_at > ? "
                                 "AND ends_at <= ?", (since, now))[0])
        return SubscriberCounts(active, new, lapsed)

    def active_series(self, since: float) -> Deferred[list[tuple[int, int]]]:
        """(UTC day number, active subscribers when last recorded that day) from ``since`` on."""
        def q(txn: Any) -> list[tuple[int, int]]:
            rows = self._db.all(txn, "SELECT day, active FROM report_active WHERE day >= ? ORDER BY day",
                                (int(since // 86400),))
            return [(int(d), int(a)) for d, a in rows]
        return self._db.run(q, write=False)


__all__ = ["BUCKET", "KINDS", "MoneyBucket", "ReportStore", "SubscriberCounts", "bucket_of", "postgres_report_ctes",
           "record_grant_in", "record_payment_in", "report_kind"]
