"""Subscriptions: reading them, claiming reminders and expiries, and chats that blocked the bot.

Claims (mark_reminded, mark_expired) are conditional updates, so two processes sweeping at
once never both get the same chat; a claim that could not be acted on is given back.
"""

from __future__ import annotations

from typing import Any, Iterable

from twisted.internet.defer import Deferred

from ymds.billing.database import Database
from ymds.billing.ledger import Subscription
from ymds.billing.sql import SUBSCRIPTION_COLS, subscription_from_row


class SubscriptionStore:
    """ISubscriptionStore over SQL."""

    def __init__(self, db: Database):
        self._db = db

    def subscription(self, chat_id: int) -> Deferred[Subscription | None]:
        def q(txn: Any) -> Subscription | None:
            row = self._db.one(txn, f"SELECT {SUBSCRIPTION_COLS} FROM subscriptions WHERE chat_id = ?", (chat_id,))
            return None if row is None else subscription_from_row(row)
        return self._db.run(q, write=False)

    def due_reminders(self, now: float, window: float, limit: int = 1000) -> Deferred[list[Subscription]]:
        def q(txn: Any) -> list[Subscription]:
            # blocked chats get no reminders (their expiry is still processed)
            rows = self._db.all(txn, f"SELECT {SUBSCRIPTION_COLS} FROM subscriptions WHERE expired = 0 AND ends_at > ? "
                                     "AND ends_at <= ? AND (reminded_window IS NULL OR reminded_window > ?) "
                                     "AND chat_id NOT IN (SELECT chat_id FROM blocked_chats) "
                                     "ORDER BY ends_at LIMIT ?", (now, now + window, int(window), int(limit)))
            return [subscription_from_row(r) for r in rows]
        return self._db.run(q, write=False)

    def mark_reminded(self, items: Iterable[tuple[int, float]], window: float,
                      now: float | None = None) -> Deferred[list[int]]:
        # one lock order for every process (no deadlock between two sweeps on PostgreSQL)
        claims = sorted((int(c), float(e)) for c, e in items)
        at = self._db.reactor.seconds() if now is None else now

        def q(txn: Any) -> list[int]:
            claimed = []
            for chat_id, ends_at in claims:
                cur = self._db.execute(
                    txn, "UPDATE subscriptions SET reminded_window = ? WHERE chat_id = ? AND ends_at = ? "
                         "AND expired = 0 AND (reminded_window IS NULL OR reminded_window > ?)",
                    (int(window), chat_id, ends_at, int(window)))
                if cur.rowcount == 1:
                    claimed.append(chat_id)
            if claimed:
                self._db.write_events(txn, at, [("subscription_reminded", None, chat_id, None,
                                                 {"window": int(window)}) for chat_id in claimed])
            return claimed
        return self._db.run(q)

    def unmark_reminded(self, chat_id: int, ends_at: float, window: float) -> Deferred[bool]:
        def q(txn: Any) -> bool:
            return self._db.execute(txn, "UPDATE subscriptions SET reminded_window = NULL WHERE chat_id = ? "
                                         "AND ends_at = ? AND reminded_window = ?",
                                    (chat_id, ends_at, int(window))).rowcount == 1
        return self._db.run(q)

    def expired_subscriptions(self, now: float, limit: int = 1000) -> Deferred[list[Subscription]]:
        def q(txn: Any) -> list[Subscription]:
            rows = self._db.all(txn, f"SELECT {SUBSCRIPTION_COLS} FROM subscriptions WHERE expired = 0 AND ends_at <= ? "
                                     "ORDER BY ends_at LIMIT ?", (now, int(limit)))
            return [subscription_from_row(r) for r in rows]
        return self._db.run(q, write=False)

    def mark_expired(self, items: Iterable[tuple[int, float]], now: float | None = None) -> Deferred[list[int]]:
        # one lock order for every process (no deadlock between two sweeps on PostgreSQL)
        claims = sorted((int(c), float(e)) for c, e in items)
        at = self._db.reactor.seconds() if now is None else now

        def q(txn: Any) -> list[int]:
            claimed = []
            for chat_id, ends_at in claims:
                cur = self._db.execute(txn, "UPDATE subscriptions SET expired = 1 WHERE chat_id = ? AND ends_at = ? "
                                            "AND expired = 0", (chat_id, ends_at))
                if cur.rowcount == 1:
                    claimed.append(chat_id)
                    self._db.add_event(txn, at, "subscription_expired", chat_id=chat_id, ends_at=ends_at)
            return claimed
        return self._db.run(q)

    def unmark_expired(self, chat_id: int, ends_at: float) -> Deferred[bool]:
        def q(txn: Any) -> bool:
            return self._db.execute(txn, "UPDATE subscriptions SET expired = 0 WHERE chat_id = ? AND ends_at = ? "
                                         "AND expired = 1", (chat_id, ends_at)).rowcount == 1
        return self._db.run(q)

    def mark_blocked(self, chat_id: int, now: float | None = None) -> Deferred[bool]:
        at = self._db.reactor.seconds() if now is None else now

        def q(txn: Any) -> bool:
            cur = self._db.execute(txn, "INSERT INTO blocked_chats (chat_id, blocked_at) VALUES (?, ?) "
                                        "ON CONFLICT (chat_id) DO NOTHING", (chat_id, at))
            if cur.rowcount == 1:
                self._db.add_event(txn, at, "chat_blocked", chat_id=chat_id)
                return True
            return False
        return self._db.run(q)

    def is_blocked(self, chat_id: int) -> Deferred[bool]:
        def q(txn: Any) -> bool:
            return self._db.one(txn, "SELECT 1 FROM blocked_chats WHERE chat_id = ?", (chat_id,)) is not None
        return self._db.run(q, write=False)
