"""The job queue against a real redis-server: enqueue, RPC, retries, dead letters, reclaim."""
from __future__ import annotations

import atexit
import itertools
import time
from decimal import Decimal

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from ymds.config import QueueConfig, RedisConfig
from ymds.queue import JobTimeout, PermanentJobError, RemoteJobError
from ymds.queue.admin import QueueAdmin
from ymds.queue.client import RedisJobQueue
from ymds.queue.registry import TaskRegistry
from ymds.queue.worker import Worker
from tests.support.redis_server import RedisServer

_server: RedisServer | None = None
_prefixes = itertools.count(1)


def shared_server() -> RedisServer:
    """One redis-server for this module's tests; each test uses its own key prefix."""
    global _server
    if _server is None:
        _server = RedisServer().start()
        atexit.register(_server.cleanup)
    return _server


async def wait_until(predicate, timeout: float = 15.0, step: float = 0.005) -> None:
    """Wait (real time, for real Redis IO) until ``predicate()`` is true."""
    waited = 0.0
    while not predicate():
        if waited > timeout:
            raise AssertionError("condition not reached while waiting for Redis IO")
        await task.deferLater(reactor, step)
        waited += step


def scan(server: RedisServer, prefix: str) -> list[str]:
    keys, cursor = [], "0"
    while True:
        cursor, batch = server.command("SCAN", cursor, "MATCH", f"{prefix}:*", "COUNT", "1000")
        keys += batch
        if cursor == "0":
            return sorted(keys)


class QueueTestCase(unittest.TestCase):
    """A fresh prefix, a shared fake clock, and helpers to build clients and workers."""

    server_factory = staticmethod(shared_server)

    def setUp(self):
        self.server = self.server_factory()
        self.prefix = f"t{next(_prefixes)}"
        self.redis = RedisConfig(url=self.server.url, prefix=self.prefix)
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)  # realistic epoch so RPC deadlines mean something
        self.registry = TaskRegistry()
        self.dead: list[dict] = []

    def client(self, **kw) -> RedisJobQueue:
        q = RedisJobQueue(reactor, self.redis, clock=self.clock, **kw)
        q.startService()
        self.addCleanup(q.stopService)
        return q

    def worker(self, queue="billing", start=True, consumer=None, **config) -> Worker:
        qc = QueueConfig(**{"concurrency": 8, "batch": 10, "max_attempts": 3, "retry_base": 1.0,
                            "retry_max": 60.0, "stop_timeout": 5.0, **config})
        w = Worker(reactor, self.redis, qc, queue, self.registry, consumer, clock=self.clock,
                   jitter=lambda d: d, block=0.2, on_dead=lambda q, info: self.dead.append(info))
        if start:
            w.startService()
            self.addCleanup(lambda: w.running and w.stopService())
        return w

    def cmd(self, *args):
        return self.server.command(*args)


class EnqueueAndRun(QueueTestCase):
    async def test_happy_path(self):
        """Jobs run with their arguments (Decimal intact); the stream is empty afterwards."""
        seen = []

        async def charge(args):
            seen.append(args)

        self.registry.register("charge", charge)
        q = self.client()
        w = self.worker()
        ids = [await q.enqueue("billing", "charge", {"n": i, "amount": Decimal("199.00")}) for i in range(5)]
        self.assertEqual(len(set(ids)), 5)
        await wait_until(lambda: len(seen) == 5 and q.stats.counters["enqueued"] == 5)
        self.assertEqual(sorted(a["n"] for a in seen), list(range(5)))
        self.assertEqual({a["amount"] for a in seen}, {Decimal("199.00")})
        self.assertIsInstance(seen[0]["amount"], Decimal)
        await wait_until(lambda: self.cmd("XLEN", f"{self.prefix}:q:billing") == 0)
        await wait_until(lambda: w.stats.snapshot()["in_flight"] == 0)
        detail = w.stats.detail()
        self.assertEqual(detail["durations"]["charge"]["count"], 5)
        self.assertEqual(detail["durations"]["charge"]["buckets"][float("inf")], 5)
        self.assertEqual(w.stats.snapshot()["acked"], 5)
        self.assertEqual(q.stats.snapshot()["enqueued"], 5)

    async def test_idempotency_key(self):
        """A second enqueue with the same key is refused (None) and the job runs once."""
        runs = []

        async def notify(args):
            runs.append(args)

        self.registry.register("notify", notify)
        q = self.client()
        first = await q.enqueue("bot", "notify", {"chat_id": 1}, key="notify:op-1")
        second = await q.enqueue("bot", "notify", {"chat_id": 1}, key="notify:op-1")
        other = await q.enqueue("bot", "notify", {"chat_id": 2}, key="notify:op-2")
        self.assertIsNotNone(first)
        self.assertIsNone(second)
        self.assertIsNotNone(other)
        ttl = self.cmd("TTL", f"{self.prefix}:q:bot:key:notify:op-1")
        self.assertTrue(0 < ttl <= 7 * 86400)
        self.worker("bot")
        await wait_until(lambda: len(runs) == 2)
        self.assertEqual(sorted(r["chat_id"] for r in runs), [1, 2])

    async def test_same_key_in_one_batch(self):
        """Coalesced enqueues with one key still add a single job."""
        q = self.client()
        results = await defer.gatherResults(
            [q.enqueue("bot", "notify", {"i": i}, key="same") for i in range(20)])
        self.assertEqual(sum(r is not None for r in results), 1)
        self.assertEqual(self.cmd("XLEN", f"{self.prefix}:q:bot"), 1)

    async def test_delay_uses_the_delayed_set(self):
        """enqueue(delay=) runs the job only once the clock reaches its time."""
        runs = []

        async def remind(args):
            runs.append(self.clock.seconds())

        self.registry.register("remind", remind)
        q = self.client()
        start = self.clock.seconds()
        await q.enqueue("bot", "remind", {}, delay=30)
        self.assertEqual(self.cmd("ZCARD", f"{self.prefix}:q:bot:delayed"), 1)
        w = self.worker("bot")
        await wait_until(lambda: w.time.synced)  # both now read Redis's clock through self.clock
        self.clock.advance(0)
        self.clock.advance(29)
        await wait_until(lambda: not w.promoter.busy)
        self.assertEqual(runs, [])
        self.assertEqual(self.cmd("ZCARD", f"{self.prefix}:q:bot:delayed"), 1)
        self.clock.advance(1)
        await wait_until(lambda: len(runs) == 1)
        self.assertEqual(runs, [start + 30])
        self.assertEqual(self.cmd("ZCARD", f"{self.prefix}:q:bot:delayed"), 0)

    def test_bad_input_refused(self):
        """Names, keys and arguments that cannot travel are refused before Redis."""
        q = RedisJobQueue(reactor, self.redis, clock=self.clock)
        self.failureResultOf(q.enqueue("bad queue", "t", {}), ValueError)
        self.failureResultOf(q.enqueue("billing", "", {}), ValueError)
        self.failureResultOf(q.enqueue("billing", "t", {}, key=""), ValueError)
        self.failureResultOf(q.enqueue("billing", "t", {}, key="k" * 201), ValueError)
        self.failureResultOf(q.enqueue("billing", "t", {"x": object()}), TypeError)
        self.failureResultOf(q.enqueue("billing", "t", {"x": float("nan")}), ValueError)
        self.failureResultOf(q.call("billing", "t", {"x": Decimal("NaN")}), ValueError)


class RPC(QueueTestCase):
    async def test_result(self):
        """call() fires with the handler's return value, Decimals included."""
        async def create_invoice(args):
            return {"amount": args["amount"] * 2, "label": "L1", "items": [Decimal("0.01")]}

        self.registry.register("create_invoice", create_invoice)
        q = self.client()
        self.worker()
        result = await q.call("billing", "create_invoice", {"amount": Decimal("99.50")}, timeout=10)
        self.assertEqual(result, {"amount": Decimal("199.00"), "label": "L1", "items": [Decimal("0.01")]})
        self.assertIsInstance(result["amount"], Decimal)

    async def test_many_in_flight(self):
        """Concurrent calls each get their own reply."""
        async def echo(args):
            return args["i"]

        self.registry.register("echo", echo)
        q = self.client()
        self.worker()
        results = await defer.gatherResults([q.call("billing", "echo", {"i": i}) for i in range(300)])
        self.assertEqual(results, list(range(300)))

    async def test_remote_error(self):
        """A handler's exception comes back as RemoteJobError(task, type, message), not retried."""
        calls = []

        async def boom(args):
            calls.append(1)
            raise KeyError("no such plan")

        self.registry.register("boom", boom)
        q = self.client()
        w = self.worker()
        with self.assertRaises(RemoteJobError) as caught:
            await q.call("billing", "boom", {}, timeout=10)
        self.assertEqual(caught.exception.task, "boom")
        self.assertEqual(caught.exception.error_type, "KeyError")
        self.assertIn("no such plan", caught.exception.message)
        self.assertEqual(calls, [1])
        await wait_until(lambda: w.in_flight == 0)
        self.assertEqual(self.cmd("ZCARD", f"{self.prefix}:q:billing:delayed"), 0)
        self.assertEqual(self.cmd("XLEN", f"{self.prefix}:q:billing:dead"), 0)

    async def test_unknown_task(self):
        """Calling a task nobody registered fails clearly (and is dead-lettered)."""
        q = self.client()
        self.worker()
        with self.assertRaises(RemoteJobError) as caught:
            await q.call("billing", "nope", {}, timeout=10)
        self.assertEqual(caught.exception.error_type, "UnknownTask")

    async def test_timeout(self):
        """No worker: JobTimeout names the queue, task and timeout; a late reply is ignored."""
        q = self.client()
        with self.assertRaises(JobTimeout) as caught:
            await q.call("billing", "slow", {}, timeout=0.2)
        self.assertIn("billing.slow", str(caught.exception))
        self.assertEqual(q.stats.counters["call_timeouts"], 1)
        await wait_until(lambda: self.cmd("XLEN", f"{self.prefix}:q:billing") == 1)
        # the job is still queued; a worker that reads it a minute later (by Redis's clock,
        # which the worker sees through self.clock) knows the caller gave up and drops it
        ran = []

        async def slow(args):
            ran.append(1)

        self.registry.register("slow", slow)
        w = self.worker(start=False)
        w.time.offset = time.time() - self.clock.seconds()
        w.time.synced, w.time.tolerance = True, 3600.0
        self.clock.advance(60)
        w.startService()
        self.addCleanup(lambda: w.running and w.stopService())
        await wait_until(lambda: w.stats.counters["expired"] == 1)
        self.assertEqual(ran, [])
        await wait_until(lambda: w.in_flight == 0)
        self.assertEqual(self.cmd("XLEN", f"{self.prefix}:q:billing"), 0)

    async def test_handler_slower_than_timeout(self):
        """The caller times out; the handler's late reply expires in Redis, harmlessly."""
        gate = defer.Deferred()

        async def slow(args):
            await gate
            return "late"

        self.registry.register("slow", slow)
        q = self.client(reply_ttl=60)
        w = self.worker()
        with self.assertRaises(JobTimeout):
            await q.call("billing", "slow", {}, timeout=0.3)
        gate.callback(None)
        await wait_until(lambda: w.in_flight == 0)
        # the orphan reply is dropped, never mistaken for the answer to a later call
        self.registry.register("fast", lambda args: defer.succeed("fresh"))
        self.assertEqual(await q.call("billing", "fast", {}), "fresh")
        self.assertIn(self.cmd("PTTL", q.reply_key), (-2,) + tuple(range(1, 60001)))


class RetriesAndDeadLetters(QueueTestCase):
    async def test_backoff_then_dead_letter_then_replay(self):
        """Failures retry at base*2^n (jitter off), the last goes to :dead with its error;
        replay puts it back and removes it from the dead stream."""
        attempts = []
        fail = [True]

        async def flaky(args):
            attempts.append(self.clock.seconds() - t0)
            if fail[0]:
                raise RuntimeError(f"wallet API down ({len(attempts)})")
            return None

        self.registry.register("flaky", flaky)
        q = self.client()
        w = self.worker(max_attempts=3, retry_base=2.0)
        t0 = self.clock.seconds()
        await q.enqueue("billing", "flaky", {"amount": Decimal("5.00")})
        await wait_until(lambda: len(attempts) == 1 and w.stats.counters["retried"] == 1)
        self.assertEqual(attempts, [0])
        self.clock.advance(1.999)
        await wait_until(lambda: not w.promoter.busy)
        self.assertEqual(len(attempts), 1)  # not early
        self.clock.advance(0.001)
        await wait_until(lambda: len(attempts) == 2 and w.stats.counters["retried"] == 2)
        self.assertEqual(attempts, [0, 2.0])
        self.clock.advance(3.999)
        await wait_until(lambda: not w.promoter.busy)
        self.assertEqual(len(attempts), 2)
        self.clock.advance(0.001)
        await wait_until(lambda: len(self.dead) == 1)
        self.assertEqual(attempts, [0, 2.0, 6.0])  # 2 s then 4 s later
        info = self.dead[0]
        self.assertEqual((info["task"], info["attempts"], info["reason"]), ("flaky", 3, "attempts_exhausted"))
        self.assertIn("wallet API down (3)", info["error"])
        self.assertEqual(info["args"], {"amount": Decimal("5.00")})

        admin = QueueAdmin(reactor, self.redis)
        self.addCleanup(admin.close)
        letters = await admin.list_dead("billing")
        self.assertEqual(len(letters), 1)
        self.assertEqual(letters[0]["task"], "flaky")
        self.assertEqual(letters[0]["attempts"], 3)
        self.assertEqual(letters[0]["args"], {"amount": Decimal("5.00")})
        self.assertIn("RuntimeError: wallet API down (3)", letters[0]["error"])
        fail[0] = False
        self.assertEqual(await admin.replay("billing", letters[0]["id"]), 1)
        await wait_until(lambda: len(attempts) == 4 and w.in_flight == 0)
        self.assertEqual(await admin.list_dead("billing"), [])
        self.assertEqual(w.stats.counters["dead"], 1)

    async def test_permanent_error_skips_retries(self):
        async def refuse(args):
            raise PermanentJobError("amount below minimum")

        self.registry.register("refuse", refuse)
        q = self.client()
        w = self.worker(max_attempts=5)
        await q.enqueue("billing", "refuse", {})
        await wait_until(lambda: len(self.dead) == 1)
        self.assertEqual((self.dead[0]["attempts"], self.dead[0]["reason"]), (1, "permanent"))
        self.assertEqual(w.stats.counters["retried"], 0)
        self.assertEqual(self.cmd("ZCARD", f"{self.prefix}:q:billing:delayed"), 0)

    async def test_replay_all(self):
        async def refuse(args):
            raise PermanentJobError("no")

        self.registry.register("refuse", refuse)
        q = self.client()
        w = self.worker()
        for i in range(4):
            await q.enqueue("billing", "refuse", {"i": i})
        await wait_until(lambda: len(self.dead) == 4)
        admin = QueueAdmin(reactor, self.redis)
        self.addCleanup(admin.close)
        await w.stopService()
        self.assertEqual(await admin.replay("billing"), 4)
        self.assertEqual(self.cmd("XLEN", f"{self.prefix}:q:billing:dead"), 0)
        self.assertEqual(self.cmd("XLEN", f"{self.prefix}:q:billing"), 4)
        with self.assertRaises(ValueError):
            await admin.replay("billing", "not-an-id")
        self.assertEqual(await admin.replay("billing", "1-0"), 0)

    async def test_malformed_entry_dead_lettered(self):
        """A forged or corrupt stream entry cannot crash the worker: it is dead-lettered."""
        ran = []

        async def ok(args):
            ran.append(args)

        self.registry.register("ok", ok)
        stream = f"{self.prefix}:q:billing"
        self.cmd("XADD", stream, "*", "j", "{not json")
        self.cmd("XADD", stream, "*", "j", '{"t":"ok","a":{"x":{"$dec":"1e999999999999"}}}')
        self.cmd("XADD", stream, "*", "j", '{"t":"ok","a":{"x":{"$dec":"NaN"}}}')
        self.cmd("XADD", stream, "*", "j", "[]")
        self.cmd("XADD", stream, "*", "other", "field")
        q = self.client()
        self.worker()
        await q.enqueue("billing", "ok", {"fine": True})
        await wait_until(lambda: len(ran) == 1 and len(self.dead) == 5)
        self.assertEqual({d["reason"] for d in self.dead}, {"malformed"})
        await wait_until(lambda: self.cmd("XLEN", stream) == 0)


class Reclaim(QueueTestCase):
    def hanging_worker(self, started, gates, **config):
        async def work(args):
            started.append(args["i"])
            gate = defer.Deferred()
            gates.append(gate)
            await gate

        registry = TaskRegistry({"work": work})
        qc = QueueConfig(**{"concurrency": 10, "batch": 10, "visibility_timeout": 0.3,
                            "stop_timeout": 0.0, **config})
        w = Worker(reactor, self.redis, qc, "billing", registry, "doomed", clock=task.Clock(), block=0.2)
        w.startService()
        return w

    async def test_dead_consumer_jobs_run_once_more(self):
        """A consumer that dies holding jobs: another reclaims them, each completes exactly once."""
        started, gates = [], []
        doomed = self.hanging_worker(started, gates)
        q = self.client()
        for i in range(6):
            await q.enqueue("billing", "work", {"i": i})
        await wait_until(lambda: len(started) == 6)
        await doomed.stopService()  # stop_timeout 0: dies holding all six, nothing acked
        self.assertEqual(int(self.cmd("XPENDING", f"{self.prefix}:q:billing", "workers")[0]), 6)
        done = []

        async def work(args):
            done.append(args["i"])

        self.registry.register("work", work)
        rescuer = self.worker(visibility_timeout=0.3)
        self.assertEqual(done, [])  # nothing new to read; the six are someone else's
        # idle time is measured by Redis in real time: step the reclaim loop until it is past
        for _ in range(400):
            self.clock.advance(rescuer.reclaim_interval)
            await task.deferLater(reactor, 0.01)
            if len(done) >= 6 and rescuer.in_flight == 0:
                break
        self.assertEqual(sorted(done), list(range(6)))
        self.assertEqual(rescuer.stats.counters["reclaimed"], 6)
        await wait_until(lambda: self.cmd("XLEN", f"{self.prefix}:q:billing") == 0)
        # the dead consumer's handlers finishing late must not run or answer anything twice
        for gate in gates:
            gate.callback(None)
        for _ in range(5):
            self.clock.advance(rescuer.reclaim_interval)
            await task.deferLater(reactor, 0.05)
        self.assertEqual(sorted(done), list(range(6)))

    async def test_reclaim_is_not_starved_by_a_busy_worker(self):
        """A rescuer whose every slot is taken still picks up the dead consumer's (older) jobs."""
        started, gates = [], []
        doomed = self.hanging_worker(started, gates)
        q = self.client()
        for i in range(3):
            await q.enqueue("billing", "work", {"i": i})
        await wait_until(lambda: len(started) == 3)
        await doomed.stopService()
        # The dead consumer's last blocking XREADGROUP may still be parked in Redis (its
        # socket closing): until Redis drops it, it could take a job enqueued below.
        await wait_until(lambda: "blocked_clients:0" in self.cmd("INFO", "clients"))
        busy_gate = defer.Deferred()
        done = []

        async def work(args):
            if args.get("busy"):
                await busy_gate
            done.append(args["i"])

        self.registry.register("work", work)
        rescuer = self.worker(visibility_timeout=0.3, concurrency=4)
        for i in range(10, 14):  # fill all four slots with jobs that wait
            await q.enqueue("billing", "work", {"i": i, "busy": True})
        await wait_until(lambda: rescuer.in_flight == 4)
        for _ in range(400):
            self.clock.advance(rescuer.reclaim_interval)
            await task.deferLater(reactor, 0.01)
            if len(done) >= 3:
                break
        self.assertEqual(sorted(done), [0, 1, 2])  # the old jobs ran while the slots were busy
        busy_gate.callback(None)
        await wait_until(lambda: len(done) == 7)
        for gate in gates:
            gate.callback(None)

    async def test_max_deliveries_dead_letter(self):
        """An entry delivered max_deliveries times without an ack goes to the dead stream."""
        started, gates = [], []
        doomed = self.hanging_worker(started, gates)
        q = self.client()
        await q.enqueue("billing", "work", {"i": 1})
        await wait_until(lambda: len(started) == 1)
        await doomed.stopService()
        rescuer = self.worker(visibility_timeout=0.3, max_deliveries=1)
        for _ in range(400):
            self.clock.advance(rescuer.reclaim_interval)
            await task.deferLater(reactor, 0.01)
            if self.dead:
                break
        self.assertEqual(len(self.dead), 1)
        self.assertEqual((self.dead[0]["reason"], self.dead[0]["task"]), ("max_deliveries", "work"))
        admin = QueueAdmin(reactor, self.redis)
        self.addCleanup(admin.close)
        letters = await admin.list_dead("billing")
        self.assertEqual(letters[0]["reason"], "max_deliveries")
        self.assertEqual(letters[0]["args"], {"i": 1})
        for gate in gates:
            gate.callback(None)

    async def test_working_handler_keeps_its_lease(self):
        """A handler still at work extends its lease: another worker does not take the job."""
        gate = defer.Deferred()
        runs = []

        async def long_job(args):
            runs.append("a")
            await gate

        registry = TaskRegistry({"long": long_job})
        a_clock = task.Clock()
        qc = QueueConfig(concurrency=2, batch=2, visibility_timeout=1.0, stop_timeout=5.0)
        a = Worker(reactor, self.redis, qc, "billing", registry, "a", clock=a_clock, block=0.2)
        a.startService()
        self.addCleanup(lambda: a.running and a.stopService())

        async def steal(args):
            runs.append("b")

        self.registry.register("long", steal)
        q = self.client()
        await q.enqueue("billing", "long", {})
        await wait_until(lambda: runs == ["a"])
        b = self.worker(visibility_timeout=1.0)
        for _ in range(250):  # 2.5 s or more of real time: several visibility timeouts
            a_clock.advance(a.lease_interval)
            self.clock.advance(b.reclaim_interval)
            await task.deferLater(reactor, 0.01)
        self.assertEqual(runs, ["a"])
        gate.callback(None)
        await wait_until(lambda: a.in_flight == 0)
        self.assertEqual(a.stats.counters["acked"], 1)
        self.assertEqual(b.stats.counters["reclaimed"], 0)

    async def test_graceful_stop(self):
        """Stop: in-flight jobs that finish within stop_timeout are acked, the rest stay pending."""
        quick_gate, stuck_gate = defer.Deferred(), defer.Deferred()
        started = []

        async def job(args):
            started.append(args["k"])
            await (quick_gate if args["k"] == "quick" else stuck_gate)

        self.registry.register("job", job)
        q = self.client()
        w = self.worker(stop_timeout=0.5)
        await q.enqueue("billing", "job", {"k": "quick"})
        await q.enqueue("billing", "job", {"k": "stuck"})
        await wait_until(lambda: len(started) == 2)
        stopping = w.stopService()
        reactor.callLater(0.05, quick_gate.callback, None)
        await stopping
        self.assertEqual(w.stats.counters["acked"], 1)
        pending = self.cmd("XPENDING", f"{self.prefix}:q:billing", "workers")
        self.assertEqual(int(pending[0]), 1)
        self.assertEqual(pending[3][0][0], w.consumer)
        stuck_gate.callback(None)


class Cleanliness(QueueTestCase):
    async def test_no_leftovers(self):
        """After N jobs and calls: no pending entries, no stream entries, no stray keys."""
        async def noop(args):
            return args

        self.registry.register("noop", noop)
        q = self.client()
        w = self.worker(concurrency=32, batch=50)
        await defer.gatherResults([q.enqueue("billing", "noop", {"i": i}) for i in range(500)])
        await defer.gatherResults([q.call("billing", "noop", {"i": i}) for i in range(100)])
        await wait_until(lambda: w.stats.counters["acked"] == 600)
        await w.stopService()
        stream = f"{self.prefix}:q:billing"
        self.assertEqual(self.cmd("XLEN", stream), 0)
        self.assertEqual(int(self.cmd("XPENDING", stream, "workers")[0]), 0)
        self.assertEqual(scan(self.server, self.prefix), [stream])
        # the stopped worker left the group; only the stream and its group remain
        self.assertEqual(self.cmd("XINFO", "CONSUMERS", stream, "workers"), [])

    async def test_gauges(self):
        """snapshot(): depth, pending, delayed, dead and the age of the oldest entry."""
        q = self.client()
        self.assertEqual((await q.snapshot("billing"))["depth"], 0)
        await q.enqueue("billing", "x", {})
        await q.enqueue("billing", "x", {}, delay=60)
        snap = await q.snapshot("billing")
        self.assertEqual((snap["depth"], snap["pending"], snap["delayed"], snap["dead"]), (1, 0, 1, 0))
        self.assertEqual(await q.depth("billing"), 1)
        self.assertEqual(await q.dead_count("billing"), 0)
        age = await q.oldest_pending_age("billing")
        self.assertGreaterEqual(age, 0.0)
        self.assertEqual(q.stats.snapshot()["enqueued"], 2)
        self.assertEqual(q.stats.detail()["by_queue"]["billing"]["enqueued"], 2)


class Recovery(QueueTestCase):
    async def test_restart_under_same_name_resumes_own_pending(self):
        """A worker restarted under its fixed consumer name runs the entries it held at once,
        without waiting for the visibility timeout."""
        started = []

        async def stuck(args):
            started.append(args["i"])
            await defer.Deferred()

        first = Worker(reactor, self.redis, QueueConfig(stop_timeout=0.0), "billing",
                       TaskRegistry({"job": stuck}), "billing-1", clock=task.Clock(), block=0.2)
        first.startService()
        q = self.client()
        for i in range(3):
            await q.enqueue("billing", "job", {"i": i})
        await wait_until(lambda: len(started) == 3)
        await first.stopService()
        done = []

        async def job(args):
            done.append(args["i"])

        self.registry.register("job", job)
        self.worker(consumer="billing-1", visibility_timeout=3600.0)
        await wait_until(lambda: len(done) == 3)
        self.assertEqual(sorted(done), [0, 1, 2])

    async def test_hanging_handler_times_out_and_retries(self):
        attempts = []

        async def hang_once(args):
            attempts.append(1)
            if len(attempts) == 1:
                await defer.Deferred()  # never fires

        self.registry.register("job", hang_once)
        q = self.client()
        w = self.worker()
        w.job_timeout = 0.2
        await q.enqueue("billing", "job", {})
        await wait_until(lambda: w.stats.counters["retried"] == 1)
        self.clock.advance(1.0)  # retry_base 1 s, jitter off
        await wait_until(lambda: len(attempts) == 2 and w.in_flight == 0)
        self.assertEqual(w.stats.counters["acked"], 1)

    def test_interfaces(self):
        from zope.interface.verify import verifyObject
        from ymds.queue.interfaces import IJobQueue, IQueueStats, ITaskRegistry
        q = RedisJobQueue(reactor, self.redis)
        self.assertTrue(verifyObject(IJobQueue, q))
        self.assertTrue(verifyObject(ITaskRegistry, self.registry))
        self.assertTrue(verifyObject(IQueueStats, q.stats))

    def test_oversized_job_refused(self):
        q = RedisJobQueue(reactor, self.redis, max_job_bytes=1000)
        self.failureResultOf(q.enqueue("billing", "t", {"body": "x" * 2000}), ValueError)

    def test_registry(self):
        async def h(args):
            return None

        r = TaskRegistry({"a": h})
        self.assertIs(r.lookup("a"), h)
        self.assertIsNone(r.lookup("b"))
        self.assertRaises(ValueError, r.register, "a", h)
        self.assertRaises(ValueError, r.register, "", h)
        self.assertRaises(TypeError, r.register, "c", 5)


class DroppedConnections(QueueTestCase):
    @staticmethod
    def drop(connection):
        protocol = connection._protocol
        if protocol is not None:
            protocol.transport.abortConnection()

    async def test_worker_connections_cut_while_holding_jobs(self):
        """The worker's connections are cut while its handlers run: it reconnects, the
        handlers' acks go through afterwards, and every job completes exactly once."""
        gates, done = [], []

        async def job(args):
            gate = defer.Deferred()
            gates.append(gate)
            await gate
            done.append(args["i"])

        self.registry.register("job", job)
        q = self.client()
        w = self.worker()
        for i in range(3):
            await q.enqueue("billing", "job", {"i": i})
        await wait_until(lambda: len(gates) == 3)
        self.drop(w._reader_conn)
        for conn in w._pool._connections:
            self.drop(conn)
        for gate in gates:
            gate.callback(None)
        await wait_until(lambda: w.stats.counters["acked"] == 3)
        await q.enqueue("billing", "job", {"i": 3})
        await wait_until(lambda: len(gates) == 4)
        gates[3].callback(None)
        await wait_until(lambda: w.stats.counters["acked"] == 4)
        self.assertEqual(sorted(done), [0, 1, 2, 3])
        stream = f"{self.prefix}:q:billing"
        self.assertEqual(self.cmd("XLEN", stream), 0)
        self.assertEqual(int(self.cmd("XPENDING", stream, "workers")[0]), 0)
        self.flushLoggedErrors()

    async def test_reply_connection_cut_during_a_call(self):
        """The caller's reply connection is cut while a call waits: the reply still arrives."""
        gate = defer.Deferred()

        async def slow(args):
            await gate
            return {"sum": Decimal("10.00")}

        self.registry.register("slow", slow)
        q = self.client()
        w = self.worker()
        pending = q.call("billing", "slow", {}, timeout=10)
        await wait_until(lambda: w.in_flight == 1 and q._reply_conn is not None and q._reply_conn.connected)
        self.drop(q._reply_conn)
        gate.callback(None)
        self.assertEqual(await pending, {"sum": Decimal("10.00")})
        self.flushLoggedErrors()


class ClientStop(QueueTestCase):
    async def test_stop_sends_accepted_enqueues_and_fails_calls(self):
        """Stopping the client: every enqueue it accepted reaches Redis; waiting calls fail
        with QueueStopped; later use is refused."""
        from ymds.queue import QueueStopped
        q = RedisJobQueue(reactor, self.redis, clock=self.clock)
        q.startService()
        accepted = [q.enqueue("billing", "t", {"i": i}) for i in range(1200)]
        call = q.call("billing", "t", {}, timeout=30)
        await q.stopService()
        self.assertTrue(all(await defer.gatherResults(accepted)))
        self.assertEqual(self.cmd("XLEN", f"{self.prefix}:q:billing"), 1201)
        with self.assertRaises(QueueStopped):
            await call
        with self.assertRaises(QueueStopped):
            await q.enqueue("billing", "t", {})


class GroupHygiene(QueueTestCase):
    async def test_long_dead_consumers_are_forgotten(self):
        """Consumers of crashed processes that hold nothing leave the group in time;
        one that still holds entries stays until they are reclaimed."""
        stream = f"{self.prefix}:q:billing"
        self.cmd("XGROUP", "CREATE", stream, "workers", "0", "MKSTREAM")
        self.cmd("XGROUP", "CREATECONSUMER", stream, "workers", "crashed-empty")
        self.cmd("XADD", stream, "*", "j", '{"t":"held","a":{}}')
        self.cmd("XREADGROUP", "GROUP", "workers", "crashed-holding", "COUNT", "1", "STREAMS", stream, ">")
        w = self.worker(visibility_timeout=3600.0)
        w.forget_consumers_after = 0.05
        await task.deferLater(reactor, 0.1)  # Redis measures the consumers' idle time itself
        self.clock.advance(w.reclaim_interval)
        names = lambda: {dict(zip(c[::2], c[1::2]))["name"] for c in self.cmd("XINFO", "CONSUMERS", stream, "workers")}
        await wait_until(lambda: "crashed-empty" not in names())
        self.assertIn("crashed-holding", names())
        self.assertIn(w.consumer, names())
