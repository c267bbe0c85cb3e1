"""The owner's view: the audit log of one invoice, chat or operation, and the day/month stats."""

from __future__ import annotations

import calendar
import time
from typing import Any

from twisted.internet.defer import Deferred, fail

from ymds.billing.database import Database
from ymds.billing.ledger import Event, LedgerError, Stats
from ymds.billing.sql import DAY, EVENT_COLS, event_from_row


class AuditStore:
    """IAuditStore over SQL (events are written by every store through Database.add_event)."""

    def __init__(self, db: Database):
        self._db = db

    def events(self, label: str | None = None, chat_id: int | None = None, operation_id: str | None = None,
               limit: int = 1000) -> Deferred[list[Event]]:
        where, params = [], []
        for clause, value in (("label = ?", label), ("chat_id = ?", chat_id), ("operation_id = ?", operation_id)):
            if value is not None:
                where.append(clause)
                params.append(value)
        if not where:
            return fail(LedgerError("events() needs a label, chat_id or operation_id"))

        def q(txn: Any) -> list[Event]:
            rows = self._db.all(txn, f"SELECT {EVENT_COLS} FROM events WHERE {' OR '.join(where)} ORDER BY id LIMIT ?",
                                params + [int(limit)])
            return [event_from_row(r) for r in rows]
        return self._db.run(q, write=False)

    def stats(self, now: float) -> Deferred[Stats]:
        day = now - now % DAY
        t = time.gmtime(now)
        month = float(calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0)))
        d = self._db.dialect

        def q(txn: Any) -> Stats:
            counted = f"SELECT COUNT(*), {d.sum_money('amount')} FROM payments WHERE status <> 'held' AND received_at >= ?"
            today_n, today_sum = self._db.one(txn, counted, (day,))
            month_n, month_sum = self._db.one(txn, counted, (month,))
            active = self._db.one(txn, "SELECT COUNT(*) FROM subscriptions WHERE ends_at > ?", (now,))[0]
            quarantined = self._db.one(txn, "SELECT COUNT(*) FROM quarantine WHERE resolved_at IS NULL")[0]
            return Stats(int(today_n), d.sum_out(today_sum), int(month_n), d.sum_out(month_sum), int(active),
                         int(quarantined))
        return self._db.run(q, write=False)
