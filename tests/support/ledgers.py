"""One ledger per test, on either engine: the set-up every ledger contract suite shares.

A contract suite is a plain class of ``async def test_*`` methods run twice, e.g.::

    class AccessContract(LedgerTestMixin): ...
    class SQLiteAccessTests(SQLiteLedgerMixin, AccessContract, unittest.TestCase): ...
    class PostgresAccessTests(PostgresLedgerMixin, AccessContract, unittest.TestCase): ...

The engine mixin comes first so that its ``make_url`` is the one found.  PostgreSQL is not
optional: without a server every PostgreSQL test errors with the reason
(tests/support/postgres.py), so a missing server cannot pass silently.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any, Callable

from twisted.internet import reactor
from twisted.internet.defer import Deferred

from tests.support.postgres import create_database, drop_database
from ymds.billing.open import open_ledger

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sqlite_url(testcase: Any) -> str:
    """The URL of a ledger file in a fresh temp directory, removed when ``testcase`` ends."""
    directory = tempfile.mkdtemp(prefix="ymds-ledger-")
    testcase.addCleanup(shutil.rmtree, directory)
    return "sqlite:///" + os.path.join(directory, "ledger.sqlite3")


class SQLiteLedgerMixin:
    """``make_url()``: a ledger file in a fresh temp directory, removed when the test ends."""

    def make_url(self) -> str:
        return sqlite_url(self)


class PostgresLedgerMixin:
    """``make_url()``: a fresh database on the test server (YMDS_TEST_PG), dropped when the test ends."""

    addCleanup: Callable[..., None]

    def make_url(self) -> str:
        url = create_database()
        self.addCleanup(drop_database, url)
        return url


class LedgerTestMixin:
    """``setUp`` gives ``self.url`` (from the engine mixin) and ``self.ledger``, opened and
    migrated; ``open()`` opens another handle on the same ledger.  Every handle is closed
    before the ledger's file or database is removed (cleanups run last-added first)."""

    url: str
    ledger: Any
    addCleanup: Callable[..., None]
    make_url: Callable[[], str]

    def setUp(self) -> Deferred[None]:
        self.url = self.make_url()
        return Deferred.fromCoroutine(self._open_first())

    async def _open_first(self) -> None:
        self.ledger = await self.open()

    async def open(self, **options: Any) -> Any:
        """A migrated ledger at ``self.url``, closed when the test ends."""
        ledger = open_ledger(self.url, reactor, **options)
        self.addCleanup(ledger.close)
        await ledger.migrate()
        return ledger


def race_two_processes(test: Any, script: str) -> list[Any]:
    """Run ``script`` (``python -c``) in two OS processes released at the same moment; the
    last line each prints, as JSON.  The script prints "ready" once its ledger is open, then
    waits for a line on stdin before it starts.  A child that fails fails ``test``."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    children = [subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT) for _ in range(2)]
    for child in children:  # both have migrated and opened their connections
        test.assertEqual(child.stdout.readline().strip(), "ready", child.stderr.read() if child.poll() else "")
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    outcomes = []
    for child in children:
        out, err = child.communicate(timeout=120)
        test.assertEqual(child.returncode, 0, err)
        outcomes.append(json.loads(out.strip().splitlines()[-1]))
    return outcomes
