"""The default ledger: one SQLite file in WAL mode behind an adbapi pool of one connection.

One connection per process keeps SQLite's single-writer rule simple inside the process;
several processes on one file are serialised by BEGIN IMMEDIATE and wait for each other
through busy_timeout instead of failing with "database is locked".
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

from twisted.enterprise import adbapi

from ymds.billing.database import Database
from ymds.billing.ledger import LedgerError
from ymds.billing.sql import SQLiteDialect
from ymds.billing.sqlledger import SQLLedger


def sqlite_path(url: str) -> str:
    """``sqlite:///relative.db`` and ``sqlite:////absolute.db`` (as config.py writes it)."""
    if not url.startswith("sqlite:///"):
        raise LedgerError(f"ledger.url {url!r}: write sqlite:///path/ledger.sqlite3")
    path = url[len("sqlite:///"):]
    if not path:
        raise LedgerError(f"ledger.url {url!r} has no file path")
    return path


class SQLiteLedger(SQLLedger):
    """The SQL ledger on one SQLite file (``options``: the quarantine bounds)."""

    def __init__(self, path: str, reactor: Any, busy_timeout: float = 10.0, synchronous: str = "FULL",
                 **options: Any):
        self.path = path
        if path != ":memory:":
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory):
                raise LedgerError(f"ledger.url: the directory {directory} does not exist; create it or change ledger.url")
        if synchronous.upper() not in ("FULL", "NORMAL"):
            raise LedgerError(f"SQLite synchronous={synchronous!r}: use FULL or NORMAL")

        def on_connect(conn: Any) -> None:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            mode = _enable_wal(conn, busy_timeout)
            if path != ":memory:" and mode.lower() != "wal":
                raise LedgerError(f"{path}: SQLite refused WAL mode (journal_mode={mode})")
            # FULL: a commit survives power loss, which a payment ledger wants.
            conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")

        pool = adbapi.ConnectionPool(
            "sqlite3", path, check_same_thread=False, isolation_level=None, timeout=busy_timeout,
            cp_min=1, cp_max=1, cp_openfun=on_connect, cp_reactor=reactor, cp_noisy=False)
        pool.start()
        super().__init__(Database(pool, SQLiteDialect(), reactor), **options)

    @classmethod
    def from_url(cls, url: str, reactor: Any, **options: Any) -> "SQLiteLedger":
        return cls(sqlite_path(url), reactor, **options)

    def __repr__(self) -> str:
        return f"<SQLiteLedger {self.path}>"


__all__ = ["SQLiteLedger", "sqlite_path"]


def _enable_wal(conn: Any, busy_timeout: float) -> str:
    """Switch to WAL; returns the journal mode in force.

    Turning WAL on takes an exclusive lock and SQLite does not always call the busy handler for
    it, so two processes opening a new ledger at once can see "database is locked": retry for up
    to busy_timeout. This runs in the pool's thread, where blocking is expected.
    """
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
