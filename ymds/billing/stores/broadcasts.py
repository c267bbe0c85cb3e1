"""Broadcasts: one message to many subscribers, resumable.

A broadcast's recipients are written once, when it is first started, each ``pending``; the
sender marks each ``sent``, ``blocked`` or ``failed`` as the bot answers.  A second run of
the same broadcast (after a crash or a kill) reads the ones still pending: the bot's
per-recipient dedup key makes a message that went out just before the crash count as sent
without going out again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from twisted.internet.defer import Deferred, fail

from ymds.billing.database import Database
from ymds.billing.ledger import LedgerError

RECIPIENT_STATUSES = ("pending", "sent", "blocked", "failed")
_COLS = "id, audience, plan, text_hash, total, created_at, finished_at"


@dataclass(frozen=True)
class Broadcast:
    id: str
    audience: str
    plan: str | None
    text_hash: str
    total: int
    created_at: float
    finished_at: float | None = None


def _broadcast(row: Sequence[Any]) -> Broadcast:
    id_, audience, plan, text_hash, total, created_at, finished_at = row
    return Broadcast(id_, audience, plan, text_hash, int(total), float(created_at),
                     None if finished_at is None else float(finished_at))


class BroadcastStore:
    """IBroadcastStore over SQL."""

    def __init__(self, db: Database):
        self._db = db

    def broadcast_start(self, broadcast_id: str, audience: str, plan: str | None, text_hash: str,
                        chat_ids: Iterable[int], now: float) -> Deferred[tuple[Broadcast, bool]]:
        recipients = sorted({int(c) for c in chat_ids})

        def q(txn: Any) -> tuple[Broadcast, bool]:
            db = self._db
            # two runs starting at once: the second waits for the first's row, then reads it
            created = db.one(txn, f"INSERT INTO broadcasts ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, NULL) "
                                  "ON CONFLICT (id) DO NOTHING RETURNING id",
                             (broadcast_id, audience, plan, text_hash, len(recipients), now))
            if created is None:
                return _broadcast(db.one(txn, f"SELECT {_COLS} FROM broadcasts WHERE id = ?", (broadcast_id,))), False
            for start in range(0, len(recipients), 500):  # well below both engines' parameter limits
                chunk = recipients[start:start + 500]
                values = ", ".join(["(?, ?, 'pending')"] * len(chunk))
                params: list[Any] = []
                for chat_id in chunk:
                    params += [broadcast_id, chat_id]
                db.execute(txn, f"INSERT INTO broadcast_recipients (broadcast_id, chat_id, status) VALUES {values}",
                           params)
            db.add_event(txn, now, "broadcast_started", broadcast=broadcast_id, audience=audience, plan=plan,
                         total=len(recipients))
            return Broadcast(broadcast_id, audience, plan, text_hash, len(recipients), now), True
        return self._db.run(q)

    def broadcast_get(self, broadcast_id: str) -> Deferred[Broadcast | None]:
        def q(txn: Any) -> Broadcast | None:
            row = self._db.one(txn, f"SELECT {_COLS} FROM broadcasts WHERE id = ?", (broadcast_id,))
            return None if row is None else _broadcast(row)
        return self._db.run(q, write=False)

    def broadcast_pending(self, broadcast_id: str, limit: int = 100000) -> Deferred[list[int]]:
        def q(txn: Any) -> list[int]:
            rows = self._db.all(txn, "SELECT chat_id FROM broadcast_recipients WHERE broadcast_id = ? "
                                     "AND status = 'pending' ORDER BY chat_id LIMIT ?", (broadcast_id, int(limit)))
            return [int(r[0]) for r in rows]
        return self._db.run(q, write=False)

    def broadcast_record(self, broadcast_id: str, outcomes: Iterable[tuple[int, str]], now: float) -> Deferred[int]:
        done = sorted((int(c), s) for c, s in outcomes)  # one lock order for every process
        bad = [s for _, s in done if s not in RECIPIENT_STATUSES[1:]]
        if bad:
            return fail(LedgerError(f"a recipient's outcome is sent, blocked or failed, not {bad[0]!r}"))

        def q(txn: Any) -> int:
            changed = 0
            for chat_id, status in done:
                cur = self._db.execute(txn, "UPDATE broadcast_recipients SET status = ?, done_at = ? "
                                            "WHERE broadcast_id = ? AND chat_id = ? AND status = 'pending'",
                                       (status, now, broadcast_id, chat_id))
                changed += cur.rowcount
            return changed
        return self._db.run(q)

    def broadcast_counts(self, broadcast_id: str) -> Deferred[dict[str, int]]:
        def q(txn: Any) -> dict[str, int]:
            rows = self._db.all(txn, "SELECT status, COUNT(*) FROM broadcast_recipients WHERE broadcast_id = ? "
                                     "GROUP BY status", (broadcast_id,))
            counts = dict.fromkeys(RECIPIENT_STATUSES, 0)
            counts.update({str(s): int(n) for s, n in rows})
            return counts
        return self._db.run(q, write=False)

    def broadcast_finish(self, broadcast_id: str, now: float) -> Deferred[bool]:
        def q(txn: Any) -> bool:
            cur = self._db.execute(txn, "UPDATE broadcasts SET finished_at = ? WHERE id = ? AND finished_at IS NULL",
                                   (now, broadcast_id))
            if cur.rowcount != 1:
                return False
            rows = self._db.all(txn, "SELECT status, COUNT(*) FROM broadcast_recipients WHERE broadcast_id = ? "
                                     "GROUP BY status", (broadcast_id,))
            counts = {str(s): int(n) for s, n in rows}
            self._db.add_event(txn, now, "broadcast_finished", broadcast=broadcast_id, counts=counts)
            return True
        return self._db.run(q)
