"""Quarantine: notifications that failed verification, kept for the owner, bounded in rows
and bytes (over the bound only a per-reason count is kept)."""

from __future__ import annotations

import hashlib
from typing import Any

from twisted.internet.defer import Deferred

from ymds.billing.database import Database
from ymds.billing.ledger import QuarantinedNotification, QuarantineResult
from ymds.billing.sql import QUARANTINE_COLS, quarantined_from_row


class QuarantineStore:
    """IQuarantineStore over SQL."""

    #: refuse to keep more than this many unresolved quarantined bodies / bytes
    max_rows = 10_000
    max_bytes = 64 * 1024 * 1024
    max_body = 65_536

    def __init__(self, db: Database, max_rows: int | None = None, max_bytes: int | None = None):
        self._db = db
        if max_rows is not None:
            self.max_rows = max_rows
        if max_bytes is not None:
            self.max_bytes = max_bytes

    def quarantine_add(self, body: str | bytes, reason: str, remote: str, now: float) -> Deferred[QuarantineResult]:
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        body = str(body)[: self.max_body]
        reason = str(reason)[:200]
        remote = str(remote)[:64]
        size = len(body.encode("utf-8"))
        digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
        return self._db.run(self._add, body, digest, size, reason, remote, now)

    def _add(self, txn: Any, body: str, digest: str, size: int, reason: str, remote: str,
             now: float) -> QuarantineResult:
        db = self._db
        upsert = ("INSERT INTO quarantine (body, body_hash, size, reason, remote, received_at, last_seen, count) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT (body_hash) DO UPDATE SET count = quarantine.count + 1, "
                  "last_seen = excluded.last_seen RETURNING id, count")
        known = db.one(txn, "SELECT id FROM quarantine WHERE body_hash = ?", (digest,))
        action = "repeated"
        if known is None:
            rows, used = db.one(txn, "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM quarantine WHERE resolved_at IS NULL")
            if rows >= self.max_rows or int(used) + size > self.max_bytes:
                # Full: count what arrives per reason but keep no more bodies.
                digest, body, size, action = "overflow:" + hashlib.sha256(reason.encode()).hexdigest(), "", 0, "aggregated"
            else:
                action = "stored"
        id_, count = db.one(txn, upsert, (body, digest, size, reason, remote, now, now))
        if action == "stored" and count > 1:
            action = "repeated"  # a concurrent process stored the same body first
        if action == "stored":
            db.add_event(txn, now, "quarantined", quarantine_id=id_, reason=reason)
        unresolved = db.one(txn, "SELECT COUNT(*) FROM quarantine WHERE resolved_at IS NULL")[0]
        return QuarantineResult(id_, action, int(unresolved))

    def quarantine_list(self, unresolved_only: bool = True, limit: int = 100,
                        after_id: int = 0) -> Deferred[list[QuarantinedNotification]]:
        def q(txn: Any) -> list[QuarantinedNotification]:
            where = " AND resolved_at IS NULL" if unresolved_only else ""
            rows = self._db.all(txn, f"SELECT {QUARANTINE_COLS} FROM quarantine WHERE id > ?{where} ORDER BY id LIMIT ?",
                                (int(after_id), int(limit)))
            return [quarantined_from_row(r) for r in rows]
        return self._db.run(q, write=False)

    def quarantine_resolve(self, id: int, how: str, now: float | None = None) -> Deferred[bool]:
        at = self._db.reactor.seconds() if now is None else now

        def q(txn: Any) -> bool:
            cur = self._db.execute(txn, "UPDATE quarantine SET resolved_at = ?, resolution = ? WHERE id = ? "
                                        "AND resolved_at IS NULL", (at, str(how)[:200], id))
            if cur.rowcount == 1:
                self._db.add_event(txn, at, "quarantine_resolved", quarantine_id=id, how=str(how)[:200])
                return True
            return False
        return self._db.run(q)
