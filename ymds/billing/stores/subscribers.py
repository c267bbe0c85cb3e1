"""Subscriber management: the owner's list of subscribers and the hand-made changes
(grant, extend, revoke) that ``ymds subscribers`` and the REST API make.

Every change is one transaction that also appends its audit event
(``subscriber_granted``, ``subscriber_extended``, ``subscriber_revoked``) naming who made it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, fail

from ymds.billing.database import Database
from ymds.billing.ledger import IdempotencyConflict, LedgerError, Subscription
from ymds.billing.sql import DAY, SUBSCRIPTION_COLS, subscription_from_row

AUDIENCES = ("active", "expired", "all")
MAX_DAYS = 36500


@dataclass(frozen=True)
class SubscriberChange:
    """What a grant, extend or revoke did: the subscription before and after (None when
    there was none), and whether the chat had access before the change.  ``repeated``: the
    request key was seen before, nothing changed now (``after`` is the subscription as it is)."""
    before: Subscription | None
    after: Subscription | None
    was_active: bool
    repeated: bool = False


def _audience_clause(now: float, status: str, plan: str | None) -> tuple[str, list[Any]]:
    """The WHERE clause and its parameters choosing subscriptions by status and plan."""
    if status not in AUDIENCES:
        raise LedgerError(f"audience must be one of {', '.join(AUDIENCES)}")
    where = {"active": "ends_at > ?", "expired": "ends_at <= ?", "all": "1 = 1"}[status]
    params: list[Any] = [] if status == "all" else [now]
    if plan is not None:
        where += " AND plan = ?"
        params.append(plan)
    return where, params


class SubscriberStore:
    """ISubscriberStore over SQL."""

    def __init__(self, db: Database):
        self._db = db

    def _lock(self, txn: Any, chat_id: int, now: float) -> Subscription | None:
        """The chat's subscription, its row locked until the transaction ends (PostgreSQL:
        a concurrent change waits; SQLite's write transactions are serial anyway)."""
        row = self._db.one(txn, f"UPDATE subscriptions SET updated_at = ? WHERE chat_id = ? RETURNING {SUBSCRIPTION_COLS}",
                           (now, chat_id))
        return None if row is None else subscription_from_row(row)

    def _first(self, txn: Any, request: tuple[str, str], chat_id: int, now: float) -> bool:
        """Record a request (key, hash); False when the key came before with the same request,
        IdempotencyConflict when it came with another.  A concurrent twin waits for the first."""
        key, digest = request
        if self._db.one(txn, "INSERT INTO subscriber_requests (request_key, request_hash, chat_id, created_at) "
                             "VALUES (?, ?, ?, ?) ON CONFLICT (request_key) DO NOTHING RETURNING request_key",
                        (key, digest, chat_id, now)) is not None:
            return True
        row = self._db.one(txn, "SELECT request_hash FROM subscriber_requests WHERE request_key = ?", (key,))
        if row is None or row[0] != digest:
            raise IdempotencyConflict("this Idempotency-Key was used with another request")
        return False

    def _as_is(self, txn: Any, chat_id: int, now: float) -> SubscriberChange | None:
        row = self._db.one(txn, f"SELECT {SUBSCRIPTION_COLS} FROM subscriptions WHERE chat_id = ?", (chat_id,))
        if row is None:
            return None
        current = subscription_from_row(row)
        return SubscriberChange(current, current, current.active(now), repeated=True)

    def subscribers(self, now: float, status: str = "active", plan: str | None = None,
                    expiring_within: float | None = None, limit: int = 100000) -> Deferred[list[Subscription]]:
        try:
            where, params = _audience_clause(now, status, plan)
        except LedgerError as e:
            return fail(e)
        if expiring_within is not None:
            where += " AND ends_at > ? AND ends_at <= ?"
            params += [now, now + float(expiring_within)]

        def q(txn: Any) -> list[Subscription]:
            rows = self._db.all(txn, f"SELECT {SUBSCRIPTION_COLS} FROM subscriptions WHERE {where} "
                                     "ORDER BY ends_at, chat_id LIMIT ?", params + [int(limit)])
            return [subscription_from_row(r) for r in rows]
        return self._db.run(q, write=False)

    def audience(self, now: float, status: str, plan: str | None = None) -> Deferred[list[int]]:
        try:
            where, params = _audience_clause(now, status, plan)
        except LedgerError as e:
            return fail(e)

        def q(txn: Any) -> list[int]:
            rows = self._db.all(txn, f"SELECT chat_id FROM subscriptions WHERE {where} "
                                     "AND chat_id NOT IN (SELECT chat_id FROM blocked_chats) ORDER BY chat_id", params)
            return [int(r[0]) for r in rows]
        return self._db.run(q, write=False)

    def grant(self, chat_id: int, days: int, now: float, plan: str | None = None, by: str = "",
              only_existing: bool = False, request: tuple[str, str] | None = None) -> Deferred[SubscriberChange | None]:
        if not 1 <= int(days) <= MAX_DAYS:
            return fail(LedgerError(f"days must be between 1 and {MAX_DAYS}"))
        kind = "subscriber_extended" if only_existing else "subscriber_granted"

        def q(txn: Any) -> SubscriberChange | None:
            db = self._db
            if request is not None and not self._first(txn, request, chat_id, now):
                return self._as_is(txn, chat_id, now)
            before = self._lock(txn, chat_id, now)
            if before is None and only_existing:
                return None
            g = db.dialect.greatest
            # the end is computed in the statement: two grants at once (a second process
            # inserting the row meanwhile) both count
            row = db.one(txn, f"INSERT INTO subscriptions ({SUBSCRIPTION_COLS}) VALUES (?, ?, ?, ?, NULL, 0) "
                              f"ON CONFLICT (chat_id) DO UPDATE SET ends_at = {g}(subscriptions.ends_at, ?) + ?, "
                              "plan = COALESCE(excluded.plan, subscriptions.plan), updated_at = excluded.updated_at, "
                              f"reminded_window = NULL, expired = 0 RETURNING {SUBSCRIPTION_COLS}",
                         (chat_id, plan, now + int(days) * DAY, now, now, float(int(days) * DAY)))
            after = subscription_from_row(row)
            db.add_event(txn, now, kind, chat_id=chat_id, by=by, days=int(days), plan=after.plan, ends_at=after.ends_at)
            return SubscriberChange(before, after, before is not None and before.active(now))
        return self._db.run(q)

    def revoke(self, chat_id: int, now: float, by: str = "",
               request: tuple[str, str] | None = None) -> Deferred[SubscriberChange | None]:
        def q(txn: Any) -> SubscriberChange | None:
            db = self._db
            if request is not None and not self._first(txn, request, chat_id, now):
                return self._as_is(txn, chat_id, now)
            before = self._lock(txn, chat_id, now)
            if before is None:
                return None
            # expired = 1: the expiry sweep has nothing left to do (no "expired" message after a revoke)
            row = db.one(txn, "UPDATE subscriptions SET ends_at = ?, updated_at = ?, expired = 1 "
                              f"WHERE chat_id = ? RETURNING {SUBSCRIPTION_COLS}",
                         (min(before.ends_at, now), now, chat_id))
            after = subscription_from_row(row)
            db.add_event(txn, now, "subscriber_revoked", chat_id=chat_id, by=by, plan=before.plan,
                         previous_ends_at=before.ends_at)
            return SubscriberChange(before, after, before.active(now))
        return self._db.run(q)
