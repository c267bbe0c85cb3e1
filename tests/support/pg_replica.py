"""A PostgreSQL primary and a streaming replica on free loopback ports, for failover tests.

:class:`PostgresPair` starts a private primary (tests.support.pg_instance: initdb, trust on
127.0.0.1, database ``ymds``), copies it with ``pg_basebackup -R`` (the copy starts as a hot
standby streaming from the primary) and turns on synchronous replication
(``synchronous_standby_names = '*'``): a commit returns only once the standby has its WAL,
so a promoted standby has every commit the ledger was told succeeded.

``url`` is the libpq multi-host URL ymds is given (``target_session_attrs=read-write``: a
connection goes to whichever server takes writes).  ``crash_primary()`` stops the primary
like a crash (``-m immediate``); ``promote()`` makes the standby the new primary.
"""
from __future__ import annotations

import os
import time

from tests.support.pg_instance import PostgresInstance


class PostgresPair:
    def __init__(self, synchronous: bool = True):
        self.primary = PostgresInstance()
        self.standby = PostgresInstance()
        self.synchronous = synchronous

    @property
    def url(self) -> str:
        return (f"postgresql://postgres@127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}/ymds"
                "?target_session_attrs=read-write")

    def start(self) -> "PostgresPair":
        self.primary.start()
        standby = self.standby
        standby._run(os.path.join(standby.bindir, "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary.port),
                     "-U", "postgres", "-D", standby.data, "-R", "-X", "stream", "--no-sync", "--checkpoint=fast")
        standby._initialised = True  # the database came with the copy
        standby.start()
        self.wait_streaming()
        if self.synchronous:
            self.primary.sql("ALTER SYSTEM SET synchronous_standby_names = '*'")
            self.primary.sql("SELECT pg_reload_conf()")
            self._wait(lambda: self.primary.sql("SELECT sync_state FROM pg_stat_replication") == [("sync",)],
                       30, "the standby in synchronous replication")
        return self

    def wait_streaming(self, timeout: float = 30) -> None:
        self._wait(lambda: self.primary.sql("SELECT state FROM pg_stat_replication") == [("streaming",)],
                   timeout, "the standby streaming from the primary")

    def crash_primary(self) -> None:
        self.primary.crash()

    def promote(self) -> None:
        self.standby._run(os.path.join(self.standby.bindir, "pg_ctl"), "-D", self.standby.data, "-w", "-t", "60",
                          "promote")
        self._wait(lambda: self.standby.sql("SELECT pg_is_in_recovery()") == [(False,)], 30,
                   "the standby promoted")

    def cleanup(self) -> None:
        self.primary.cleanup()
        self.standby.cleanup()

    @staticmethod
    def _wait(predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if predicate():
                    return
            except Exception:  # the server is still starting
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout}s")
            time.sleep(0.05)
