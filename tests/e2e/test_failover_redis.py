"""A Redis failover under a burst of notifications (real twistd nodes, Sentinel, loopback).

Layout: a web node and two billing nodes on ``redis+sentinel://`` (tests.support.sentinel:
a master, two replicas, three sentinels) and a PostgreSQL ledger.  YooMoney's retrying
sender (tests.support.notify_sender) delivers 1,000 notifications (5,000 with
``YMDS_LONG=1``).  A third of the way through, the master's links to its replicas are cut
(the replicas SIGSTOPped, their connections killed: a partition) and the billing workers fall
behind (SIGSTOPped: a backlog) for ``STALL`` seconds, then the master is SIGKILLed, the
replicas resume, Sentinel promotes one and points the other at it (with one replica, ``min_replicas = 1`` refuses every
notification until the dead master comes back as a replica: run two).

- ``min_replicas = 1``: every notification answered 200 is in the ledger exactly once,
  every other one was delivered again and applied once, every user is told once (the bot
  queue holds one confirmation and one invite per chat), nothing is pending and no key is
  stray.  The notifications answered while the replicas stalled were 503s.
- ``min_replicas = 0``: the same fault loses payments — YooMoney was answered 200 for jobs
  only the dead master held, and will never send them again.  This is the window that
  ``min_replicas = 1`` closes (docs/SCALING.md).
"""
from __future__ import annotations

import os
import signal
import time

from twisted.internet import reactor, task, threads
from twisted.trial import unittest

from tests.e2e.harness import LONG, Cluster, as_deferred, record, wait_until
from tests.e2e import test_faults  # not the class itself: trial would run its tests here too
from tests.support.sentinel import SentinelGroup

BURST = 5000 if LONG else 1000
STALL = 3.0  # seconds the replica and the billing workers stand still before the master dies
CHATS = 300_000


class RedisFailover(unittest.TestCase):
    timeout = 900 if LONG else 400

    # the burst, the audit and the invoice helpers are those of the fault suite
    invoices = test_faults.FaultTests.invoices
    bodies = test_faults.FaultTests.bodies
    burst = test_faults.FaultTests.burst
    audit = test_faults.FaultTests.audit

    def sentinel_cluster(self, min_replicas: int) -> tuple:
        group = SentinelGroup(replicas=2).start()
        self.addCleanup(group.cleanup)
        cluster = Cluster(self, ledger="pg", telegram=False)
        cluster.redis = group  # assertions (cluster.r, queue_state, stray_keys) read the current master
        redis = {"url": group.url, "min_replicas": min_replicas, "replica_timeout": 1}
        billing = [cluster.node(f"billing{i}", "billing", redis=redis) for i in (2, 3)]
        web = cluster.node("web", "web", redis=redis)
        return group, cluster, web, billing

    async def failover_burst(self, min_replicas: int) -> dict:
        group, cluster, web, billing = self.sentinel_cluster(min_replicas)
        invoices = await self.invoices(cluster, BURST, first_chat=CHATS)
        bodies = self.bodies(invoices)
        seen: dict = {}

        async def fail_over(sender):
            await wait_until(lambda: sender.answers[200] >= BURST // 3, what="a third of the burst accepted")
            for b in billing:
                os.kill(b.pid, signal.SIGSTOP)
            replicas = await threads.deferToThread(group.stall_replicas)
            # the fault's length, not a wait for a result; "late" leaves out answers that were
            # on their way when the link was cut (confirmed by the replica before)
            start = dict(sender.answers)
            await task.deferLater(reactor, 0.5)
            late = dict(sender.answers)
            await task.deferLater(reactor, STALL - 0.5)
            seen["during_stall"] = {k: sender.answers[k] - start.get(k, 0) for k in sender.answers}
            seen["late_in_stall"] = {k: sender.answers[k] - late.get(k, 0) for k in sender.answers}
            old = await threads.deferToThread(group.kill_master)
            killed_at, ok_at_kill = time.monotonic(), sender.answers[200]
            for replica in replicas:
                group.resume(replica)
            for b in billing:
                os.kill(b.pid, signal.SIGCONT)
            refused_at_kill = sender.answers[503] + sender.answers["error"]
            await threads.deferToThread(group.wait_for_promotion, old)
            seen["promoted_after"] = round(time.monotonic() - killed_at, 2)
            if ok_at_kill < BURST:  # (with min_replicas = 0 the whole burst may be answered already)
                await wait_until(lambda: sender.answers[200] > ok_at_kill, timeout=60, what="a 200 after the failover")
                seen["first_200_after"] = round(time.monotonic() - killed_at, 2)
            seen["refused_until_then"] = sender.answers[503] + sender.answers["error"] - refused_at_kill

        sender = await self.burst(cluster, web, list(bodies.values()), fail_over)
        self.assertEqual(sender.answers[200], BURST, "every notification was answered 200 once in the end")
        return {"group": group, "cluster": cluster, "invoices": invoices, "bodies": bodies, "sender": sender,
                **seen}

    async def settled(self, cluster: Cluster, invoices: dict) -> None:
        """Billing is done with whatever the surviving Redis holds."""
        await wait_until(lambda: cluster.drained("billing"), timeout=180, what="the billing queue drained")
        # a payment whose job reached billing is applied by now; give stragglers a moment
        last = [-1, time.monotonic()]

        def stable():
            n = cluster.ledger.payments()
            if n != last[0]:
                last[:] = [n, time.monotonic()]
            return n == len(invoices) or time.monotonic() - last[1] > 5
        await wait_until(stable, timeout=120, what="the ledger stops growing")

    @as_deferred
    async def test_min_replicas_1_loses_nothing(self):
        run = await self.failover_burst(min_replicas=1)
        cluster, invoices, sender = run["cluster"], run["invoices"], run["sender"]
        await self.settled(cluster, invoices)
        # while the replica stood still nothing was confirmed, so nothing was answered 200
        self.assertEqual(run["late_in_stall"].get(200, 0), 0, run["late_in_stall"])
        self.assertGreater(run["during_stall"].get(503, 0), 0, run["during_stall"])
        counts = self.audit(cluster, invoices)
        record("Redis master killed -9 mid-burst, Sentinel failover, min_replicas = 1",
               notifications=BURST, answers=dict(sender.answers), stall_seconds=STALL,
               during_stall=run["during_stall"], promoted_after_s=run["promoted_after"],
               first_200_after_s=run.get("first_200_after"), refused_meanwhile=run["refused_until_then"], **counts)

    @as_deferred
    async def test_min_replicas_0_shows_the_window(self):
        run = await self.failover_burst(min_replicas=0)
        cluster, invoices, sender, bodies = run["cluster"], run["invoices"], run["sender"], run["bodies"]
        await self.settled(cluster, invoices)
        self.assertGreater(run["during_stall"].get(200, 0), 0, "the master alone answered 200 meanwhile")
        rows = cluster.ledger.payment_rows()
        applied = {r[4] for r in rows}
        self.assertEqual(len(rows), len(applied), "nothing applied twice, even so")
        lost = [chat for chat in invoices if chat not in applied]
        # each lost payment had been answered 200: YooMoney will not deliver it again
        self.assertGreater(len(lost), 0, "the 200s of the stall died with the master")
        self.assertTrue(all(sender.delivered[bodies[chat]] == 1 for chat in lost))
        self.assertLessEqual(len(lost), run["during_stall"].get(200, 0) + 50,
                             "only what the master alone held (plus jobs in flight) is lost")
        record("Redis master killed -9 mid-burst, Sentinel failover, min_replicas = 0",
               notifications=BURST, answers=dict(sender.answers), stall_seconds=STALL,
               during_stall=run["during_stall"], promoted_after_s=run["promoted_after"],
               first_200_after_s=run.get("first_200_after"), refused_meanwhile=run["refused_until_then"],
               payments=len(rows), lost_after_200=len(lost))
