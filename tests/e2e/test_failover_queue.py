"""The job queue across a Redis failover (real master, replica and sentinels on loopback).

- ``redis.min_replicas``: an enqueue succeeds only once WAIT shows a replica holds the job;
  with the replica gone it fails with ReplicasBehind after ``replica_timeout`` (the web node
  answers 503), and an idempotency-key hit is confirmed too (the job an earlier attempt wrote).
- Sentinel discovery on the injected reactor: a dead sentinel does not stop it, the
  majority answer wins over a stale sentinel, a silent one costs at most the timeout.
- After the master is SIGKILLed, a client and a worker find the promoted replica through
  Sentinel: an enqueue made while the master is dead waits and succeeds, an RPC call works
  again within seconds, and nothing hangs.
"""
from __future__ import annotations

import time

from twisted.internet import reactor, task, threads
from twisted.trial import unittest

from ymds.config import QueueConfig, RedisConfig
from ymds.queue.client import RedisJobQueue, ReplicasBehind
from ymds.queue.registry import TaskRegistry
from ymds.queue.sentinel import MasterNotFound, discover_master
from ymds.queue.worker import Worker
from tests.support.processes import wait_for_state
from tests.support.redis_server import free_port
from tests.support.sentinel import SentinelGroup


async def wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await task.deferLater(reactor, 0.05)


class MinReplicas(unittest.TestCase):
    timeout = 120

    def setUp(self):
        self.group = SentinelGroup(sentinels=0).start()
        self.addCleanup(self.group.cleanup)
        self.master, self.replica = self.group.servers

    def queue(self, min_replicas: int, replica_timeout: float = 5.0) -> RedisJobQueue:
        cfg = RedisConfig(url=f"redis://127.0.0.1:{self.master.port}/0", prefix="t",
                          min_replicas=min_replicas, replica_timeout=replica_timeout)
        q = RedisJobQueue(reactor, cfg)
        q.startService()
        self.addCleanup(q.stopService)
        return q

    def replica_has(self, key: str) -> int:
        from tests.support.resp import command
        return command(self.replica.port, "XLEN", key)

    async def test_enqueue_waits_for_the_replica(self):
        q = self.queue(1)
        ids = [await q.enqueue("billing", "job", {"i": i}, key=f"k{i}") for i in range(20)]
        self.assertTrue(all(ids))
        # WAIT returned: the replica has every job now, not eventually
        self.assertEqual(self.replica_has("t:q:billing"), 20)

    async def test_no_replica_fails_and_a_retry_is_confirmed(self):
        q = self.queue(1, replica_timeout=0.3)
        self.replica.kill()
        await threads.deferToThread(
            wait_for_state, lambda: self.group.replicas_in_sync(self.master.port) == 0, 10, "replica gone")
        started = reactor.seconds()
        with self.assertRaises(ReplicasBehind):
            await q.enqueue("billing", "job", {"n": 1}, key="op-1")
        self.assertLess(reactor.seconds() - started, 5, "fails after replica_timeout, no hang")
        self.assertEqual(q.stats.counters.get("replicas_behind"), 1)
        # the job is on the master (a later delivery finds its key) but was not confirmed
        self.assertEqual(self.group.command("XLEN", "t:q:billing"), 1)
        # min_replicas = 0 is the master's word: it succeeds without a replica
        self.assertTrue(await self.queue(0).enqueue("billing", "job", {"n": 2}))
        self.replica.start()
        await threads.deferToThread(self.group.wait_replicated, self.master.port, 1)
        # the sender delivers again, here to another web node (another connection, which never
        # wrote the job): the key hit is confirmed (and not added twice) once the replica has it
        self.assertIsNone(await self.queue(1).enqueue("billing", "job", {"n": 1}, key="op-1"))
        self.assertEqual(self.replica_has("t:q:billing"), 2)


class SentinelFailover(unittest.TestCase):
    timeout = 180

    def setUp(self):
        self.group = SentinelGroup().start()
        self.addCleanup(self.group.cleanup)

    async def test_discovery_skips_a_dead_sentinel(self):
        self.group.sentinels[0].kill()
        sentinels = tuple(("127.0.0.1", s.port) for s in self.group.sentinels)
        host, port = await discover_master(reactor, sentinels, "ymds", timeout=2.0)
        self.assertEqual(port, self.group.master_port())
        with self.assertRaises(MasterNotFound):
            await discover_master(reactor, sentinels, "no-such-service", timeout=1.0)
        with self.assertRaises(MasterNotFound):  # nobody listening at all
            await discover_master(reactor, (("127.0.0.1", free_port()),), "ymds", timeout=1.0)

    async def test_client_and_worker_follow_the_promotion(self):
        cfg = RedisConfig(url=self.group.url, prefix="t", min_replicas=0)
        q = RedisJobQueue(reactor, cfg, command_timeout=2.0)
        q.startService()
        self.addCleanup(q.stopService)
        seen: list[int] = []

        async def job(args):
            seen.append(args["i"])
            return args["i"]

        w = Worker(reactor, cfg, QueueConfig(visibility_timeout=3.0, stop_timeout=5.0), "billing",
                   TaskRegistry({"job": job}), "w1", block=0.2, command_timeout=2.0,
                   reclaim_interval=0.5, lease_interval=0.5)
        w.startService()
        self.addCleanup(lambda: w.running and w.stopService())
        self.assertEqual(await q.call("billing", "job", {"i": 0}, timeout=10), 0)

        old = await threads.deferToThread(self.group.kill_master)
        killed_at = reactor.seconds()
        # made while no master answers: waits for the new one (enqueue retries within its deadline)
        during = q.enqueue("billing", "job", {"i": 1}, key="during")
        new = await threads.deferToThread(self.group.wait_for_promotion, old)
        self.assertNotEqual(new, old)
        self.assertTrue(await during)
        self.assertEqual(await q.call("billing", "job", {"i": 2}, timeout=10), 2)
        recovered = reactor.seconds() - killed_at
        self.assertLess(recovered, 20, "the client found the new master within seconds")
        await wait_until(lambda: 1 in seen, what="the job enqueued during the failover handled")
        self.assertEqual(sorted(set(seen)), [0, 1, 2])
        # the old master comes back as a replica: nobody writes to it
        await threads.deferToThread(self.group.restart_as_replica, old)
        self.assertEqual(await q.call("billing", "job", {"i": 3}, timeout=10), 3)


class _CannedSentinel:
    """A TCP server on loopback answering every connection with one canned RESP reply
    (after ``delay`` seconds; None: never answers)."""

    def __init__(self, reply: bytes, delay: float | None = 0.0):
        from twisted.internet.protocol import Factory, Protocol

        canned = self

        class Answer(Protocol):
            def dataReceived(self, data):
                if canned.delay is not None:
                    reactor.callLater(canned.delay, self.transport.write, canned.reply)

        self.reply, self.delay = reply, delay
        self.port = reactor.listenTCP(0, Factory.forProtocol(Answer), interface="127.0.0.1")

    @property
    def address(self):
        return ("127.0.0.1", self.port.getHost().port)


def _address_reply(host: str, port: int) -> bytes:
    p = str(port).encode()
    return b"*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(host), host.encode(), len(p), p)


class SentinelAnswers(unittest.TestCase):
    """ymds.queue.sentinel against canned sentinels: the majority wins, a silent one is bounded."""

    def canned(self, reply: bytes, delay: float | None = 0.0) -> tuple:
        server = _CannedSentinel(reply, delay)
        self.addCleanup(server.port.stopListening)
        return server.address

    def test_parse(self):
        from ymds.queue.sentinel import _parse_address_reply as parse
        self.assertEqual(parse(_address_reply("10.0.0.5", 6380)), (True, ("10.0.0.5", 6380)))
        self.assertEqual(parse(_address_reply("10.0.0.5", 6380)[:-3]), (False, None))  # still arriving
        self.assertEqual(parse(b"*-1\r\n"), (True, None))  # unknown service
        self.assertEqual(parse(b"-ERR unknown command\r\n"), (True, None))
        self.assertEqual(parse(b"*2\r\n$1\r\nh\r\n$3\r\nabc\r\n"), (True, None))  # not a port

    async def test_the_majority_wins_over_a_stale_sentinel(self):
        stale = self.canned(_address_reply("127.0.0.1", 1111))  # answers first, wrongly
        right = [self.canned(_address_reply("127.0.0.1", 2222), delay=0.05) for _ in range(2)]
        self.assertEqual(await discover_master(reactor, (stale, *right), "ymds", timeout=2.0), ("127.0.0.1", 2222))

    async def test_a_silent_sentinel_costs_at_most_the_timeout(self):
        silent = self.canned(b"", delay=None)
        lone = self.canned(_address_reply("127.0.0.1", 3333))
        started = reactor.seconds()
        # one of two answers: no majority until the silent one times out, then the most named
        self.assertEqual(await discover_master(reactor, (silent, lone), "ymds", timeout=0.5), ("127.0.0.1", 3333))
        self.assertLess(reactor.seconds() - started, 2.0)
        with self.assertRaises(MasterNotFound):
            await discover_master(reactor, (silent,), "ymds", timeout=0.3)
