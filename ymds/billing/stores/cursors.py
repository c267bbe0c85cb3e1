"""Named text cursors (how far reconciliation has read the wallet's history)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from ymds.billing.database import Database


class CursorStore:
    """ICursorStore over SQL."""

    def __init__(self, db: Database):
        self._db = db

    def get_cursor(self, name: str) -> Deferred[str | None]:
        def q(txn: Any) -> str | None:
            row = self._db.one(txn, "SELECT value FROM cursors WHERE name = ?", (name,))
            return row[0] if row else None
        return self._db.run(q, write=False)

    def set_cursor(self, name: str, value: str) -> Deferred[None]:
        def q(txn: Any) -> None:
            self._db.execute(txn, "INSERT INTO cursors (name, value) VALUES (?, ?) "
                                  "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (name, str(value)))
        return self._db.run(q)
