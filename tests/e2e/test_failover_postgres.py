"""A PostgreSQL failover under a burst of notifications (real twistd nodes, loopback).

The ledger is a primary with a synchronous streaming standby (tests.support.pg_replica),
given to ymds as one libpq multi-host URL
(``postgresql://h1,h2/ymds?target_session_attrs=read-write``).  A third of the way through
a burst of 500 notifications (1,000 with ``YMDS_LONG=1``) the primary crashes
(``pg_ctl stop -m immediate``) and the standby is promoted.  The billing nodes' pools drop
their dead connections and reconnect to whichever host takes writes; a job whose commit
outcome was lost with the connection is run again by the queue, and the ledger's
idempotency (one row per operation) makes that exact.  The audit is the fault suite's:
one ledger row per payment, every invoice paid, every user told once, nothing pending,
no stray keys.
"""
from __future__ import annotations

import time

from twisted.internet import threads
from twisted.trial import unittest

from tests.e2e import test_faults  # not the class itself: trial would run its tests here too
from tests.e2e.harness import LONG, Cluster, LedgerReader, as_deferred, record
from tests.support.pg_replica import PostgresPair

BURST = 1000 if LONG else 500
CHATS = 400_000


class PostgresFailover(unittest.TestCase):
    timeout = 900 if LONG else 400

    invoices = test_faults.FaultTests.invoices
    bodies = test_faults.FaultTests.bodies
    burst = test_faults.FaultTests.burst
    settle = test_faults.FaultTests.settle
    audit = test_faults.FaultTests.audit
    payments_reach = test_faults.FaultTests.payments_reach

    @as_deferred
    async def test_primary_crashes_and_the_standby_is_promoted(self):
        pair = await threads.deferToThread(lambda: PostgresPair().start())
        self.addCleanup(pair.cleanup)
        cluster = Cluster(self, ledger="sqlite", telegram=False)
        cluster.ledger_url = pair.url  # every node (and the audit) uses the multi-host URL
        cluster.ledger = LedgerReader(pair.url)
        billing = [cluster.node("billing2", "billing"), cluster.node("billing3", "billing")]
        web = cluster.node("web", "web")
        invoices = await self.invoices(cluster, BURST, first_chat=CHATS)
        seen: dict = {}

        async def fail_over(sender):
            await self.payments_reach(cluster, BURST // 3)
            await threads.deferToThread(pair.crash_primary)
            crashed_at = time.monotonic()
            await threads.deferToThread(pair.promote)
            seen["promoted_after_s"] = round(time.monotonic() - crashed_at, 2)
            at_promotion = cluster.ledger.payments()
            await self.payments_reach(cluster, at_promotion + 1, timeout=120)
            seen["first_payment_after_s"] = round(time.monotonic() - crashed_at, 2)

        sender = await self.burst(cluster, web, list(self.bodies(invoices).values()), fail_over)
        await self.settle(cluster, BURST, timeout=300)
        self.assertEqual(sender.answers[200], BURST)
        self.assertTrue(all(b.alive() for b in billing))
        self.assertEqual(pair.standby.sql("SELECT pg_is_in_recovery()"), [(False,)])
        record("PostgreSQL primary crashed, standby promoted (multi-host ledger.url)", notifications=BURST,
               answers=dict(sender.answers), failed_attempts=sum(b.count("attempt") for b in billing), **seen,
               **self.audit(cluster, invoices, database_crashed=True))
