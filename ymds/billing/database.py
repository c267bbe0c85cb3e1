"""Transactions over an adbapi pool: the one place the SQL ledger's stores get a transaction.

:class:`Database` is the one place that opens transactions: each store method runs one
interaction (one transaction) in the pool's thread through :meth:`Database.run`.  Writes
that read before they write take the write lock first (SQLite: BEGIN IMMEDIATE;
PostgreSQL: row locks with SELECT ... FOR UPDATE and INSERT ... ON CONFLICT), so several
billing processes sharing one database never credit an operation twice.

On SQLite, work handed to :meth:`Database.batched` (apply_payment, mark_notified) while a
transaction is running is done together in the next one, each item in its own savepoint
(group commit: one fsync for the lot, a failing item rolls back alone).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Sequence

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from twisted.python.failure import Failure

from ymds.billing.ledger import Event, LedgerError, SchemaTooNew
from ymds.billing.sql import Dialect, json_text, known_migrations, statements

log = Logger()

#: one pending audit event: (kind, label, chat_id, operation_id, data)
PendingEvent = tuple[str, "str | None", "int | None", "str | None", "dict[str, Any]"]


def fork(d: Deferred) -> Deferred:
    """A new Deferred with ``d``'s result, leaving ``d`` usable by others."""
    forked: Deferred = Deferred()

    def both(result: Any) -> Any:
        if isinstance(result, Failure):
            forked.errback(result)
        else:
            forked.callback(result)
        return result
    d.addBoth(both)
    return forked


class Database:
    """An adbapi pool with its dialect: transactions, group commit and the audit log.

    Guarantees: every :meth:`run` is one transaction (committed when ``fn`` returns,
    rolled back when it raises); after :meth:`close` no new work starts.
    """

    #: at most this many items share one group commit (SQLite)
    max_batch = 200

    def __init__(self, pool: Any, dialect: Dialect, reactor: Any):
        self.pool = pool
        self.dialect = dialect
        self.reactor = reactor
        self._pending: list = []
        self._flushing = False
        self._batch: Deferred | None = None  # fires when the running batch is done
        self._closed: Deferred | None = None

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed is not None

    # --- transactions ---------------------------------------------------------------------

    def run(self, fn: Callable[..., Any], *args: Any, write: bool = True, **kw: Any) -> Deferred:
        """``fn(txn, *args, **kw)`` in one transaction; ``write`` takes the write lock first."""
        if not self.pool.running:  # a stopped pool would queue the work forever
            return fail(LedgerError("the ledger is closed"))
        d = self.dialect

        def interaction(txn: Any) -> Any:
            begin = d.begin_write if write else d.begin_read
            if begin:
                txn.execute(begin)
            return fn(txn, *args, **kw)

        return self.pool.runInteraction(interaction)

    def batched(self, fn: Callable[..., Any], *args: Any) -> Deferred:
        """Run ``fn(txn, *args)`` in the next group commit (or alone where there is none)."""
        if self._closed is not None:
            return fail(LedgerError("the ledger is closed"))
        if not self.dialect.group_commit:
            return self.run(fn, *args)
        d: Deferred = Deferred()
        self._pending.append(((fn, args), d))
        if not self._flushing:
            self._flush()
        return d

    def _flush(self) -> None:
        batch = self._pending[: self.max_batch]
        del self._pending[: self.max_batch]
        if not batch:
            self._flushing = False
            finished, self._batch = self._batch, None
            if finished is not None:
                finished.callback(None)
            return
        self._flushing = True
        if self._batch is None:
            self._batch = Deferred()

        def done(results: list) -> None:
            for (_, d), (ok, value) in zip(batch, results):
                if ok:
                    d.callback(value)
                else:
                    d.errback(value)

        def failed(failure: Failure) -> None:
            for _, d in batch:
                d.errback(failure)

        run = self.run(self._run_batch, [item for item, _ in batch])
        run.addCallbacks(done, failed)
        run.addBoth(lambda _: self._flush())

    @staticmethod
    def _run_batch(txn: Any, items: list) -> list:
        results: list = []
        for fn, args in items:
            txn.execute("SAVEPOINT batched")
            try:
                result = fn(txn, *args)
            except Exception:
                results.append((False, Failure()))
                txn.execute("ROLLBACK TO batched")
            else:
                results.append((True, result))
            txn.execute("RELEASE batched")
        return results

    def close(self) -> Deferred:
        """Finish the work already handed in, then close the pool (idempotent)."""
        if self._closed is not None:
            return fork(self._closed)
        self._closed = Deferred()

        async def shut() -> None:
            try:
                while self._batch is not None:
                    await self._batch
            finally:
                if self.pool.running:
                    self.pool.close()
        d = Deferred.fromCoroutine(shut())
        d.addErrback(lambda f: log.failure("closing the ledger", f))
        d.chainDeferred(self._closed)
        return fork(self._closed)  # each caller gets its own Deferred

    # --- statements inside a transaction ---------------------------------------------------

    def execute(self, txn: Any, query: str, params: Iterable[Any] = ()) -> Any:
        """Run ``query`` (``?`` placeholders) in ``txn``; returns the cursor."""
        txn.execute(self.dialect.sql(query), tuple(params))
        return txn

    def one(self, txn: Any, query: str, params: Iterable[Any] = ()) -> Any:
        """The first row of ``query`` or None."""
        return self.execute(txn, query, params).fetchone()

    def all(self, txn: Any, query: str, params: Iterable[Any] = ()) -> list:
        """Every row of ``query``."""
        return self.execute(txn, query, params).fetchall()

    # --- the audit log (every store writes to it) -------------------------------------------

    def add_event(self, txn: Any, now: float, kind: str, label: str | None = None, chat_id: int | None = None,
                  operation_id: str | None = None, **data: Any) -> Event:
        """Append one audit event in ``txn``."""
        row = self.one(
            txn,
            "INSERT INTO events (at, kind, label, chat_id, operation_id, data) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (now, kind, label, chat_id, operation_id, json_text(data)))
        return Event(row[0], now, kind, label, chat_id, operation_id, json.loads(json_text(data)))

    def write_events(self, txn: Any, now: float, pending: Sequence[PendingEvent]) -> tuple[Event, ...]:
        """Append several events in few statements (fewer round trips in apply_payment)."""
        written: list[Event] = []
        for start in range(0, len(pending), 500):  # well below both engines' parameter limits
            chunk = pending[start:start + 500]
            values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk))
            params: list = []
            texts = []
            for kind, label, chat_id, operation_id, data in chunk:
                text = json_text(data)
                texts.append(text)
                params += [now, kind, label, chat_id, operation_id, text]
            rows = self.all(txn, f"INSERT INTO events (at, kind, label, chat_id, operation_id, data) VALUES {values} "
                                 "RETURNING id", params)
            # identity values are handed out in row order; RETURNING's own order is not promised
            ids = sorted(r[0] for r in rows)
            written += [Event(id_, now, kind, label, chat_id, operation_id, json.loads(text))
                        for id_, (kind, label, chat_id, operation_id, _), text in zip(ids, chunk, texts)]
        return tuple(written)

    # --- schema ------------------------------------------------------------------------------

    def migrate(self) -> Deferred:
        """Create or upgrade the schema; fires with the version now in force."""
        migrations = known_migrations(self.dialect.name)
        return self.run(self._migrate, migrations, self.reactor.seconds())

    def _migrate(self, txn: Any, migrations: list[tuple[int, str]], now: float) -> int:
        if self.dialect.migration_lock:
            self.execute(txn, self.dialect.migration_lock)
        self.execute(txn, "CREATE TABLE IF NOT EXISTS schema_version ("
                          "version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")
        applied = {int(r[0]) for r in self.all(txn, "SELECT version FROM schema_version")}
        current = max(applied, default=0)
        newest = migrations[-1][0] if migrations else 0
        if current > newest:
            raise SchemaTooNew(
                f"the ledger database has schema version {current} but this ymds knows only up to "
                f"{newest}; upgrade ymds (or point ledger.url at the right database)")
        for version, path in migrations:
            if version in applied:
                continue
            with open(path, encoding="utf-8") as f:
                for statement in statements(f.read()):
                    txn.execute(statement)
            self.execute(txn, "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (version, now))
            log.info("ledger schema migrated to version {version}", version=version)
        return max(current, newest)

    def schema_version(self) -> Deferred:
        """Fires with the schema version in force (0 before the first migration)."""
        def q(txn: Any) -> int:
            row = self.one(txn, "SELECT MAX(version) FROM schema_version")
            return int(row[0]) if row and row[0] is not None else 0
        return self.run(q, write=False)

