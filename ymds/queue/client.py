"""The producer side of the queue: enqueue and RPC calls (IJobQueue).

Enqueues made while an earlier enqueue to the same queue is on its way to Redis are
coalesced into one script call (one round trip for many jobs); each caller's Deferred
still fires only after Redis has replied, i.e. once its job is in Redis.

RPC: every call is a job naming this process's reply list and a correlation id; one
dedicated connection pops that list (BLMPOP, or BLPOP on Redis < 7) for all pending calls.
"""
from __future__ import annotations

import itertools
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from ymds.queue import codec, scripts
from ymds.queue.errors import JobTimeout, QueueError, QueueStopped, RedisUnavailable, remote_failure
from ymds.queue.interfaces import IJobQueue
from ymds.queue.keys import GROUP, QueueKeys, check_name, reply_list
from ymds.queue.redis import RedisConnection, RedisPool, RedisTime, ResponseError, is_transient, parse_redis_url, process_token
from ymds.queue.stats import QueueStats
from ymds.util.clock import sleep

log = Logger()

MAX_KEY_LENGTH = 200


class ReplicasBehind(QueueError):
    """The job is on the master but fewer than ``redis.min_replicas`` replicas confirmed it in
    ``redis.replica_timeout``: the caller must not report success (a failover could lose it).
    Not retried here: an HTTP caller answers 503 so that the sender delivers again."""


class _Pending:
    """Jobs waiting for (or riding in) one enqueue script call."""

    __slots__ = ("items", "deadline")

    def __init__(self, deadline: float):
        self.items: list = []  # (redis_key|"", job_id, job_json, due_ms|"", deferred)
        self.deadline = deadline


@implementer(IJobQueue)
class RedisJobQueue(Service):
    """``RedisJobQueue(reactor, redis_config)``; add it to a MultiService or just use it.

    ``reactor`` does the IO and the command/RPC timeouts; ``clock`` (default: reactor),
    corrected to Redis's TIME, dates delayed jobs, so tests can share a task.Clock with a Worker.
    """

    def __init__(self, reactor, redis_config, *, clock=None, stats: QueueStats | None = None,
                 pool_size: int = 1, command_timeout: float = 5.0, enqueue_timeout: float = 30.0,
                 key_ttl: int = 7 * 86400, reply_ttl: float = 60.0, max_batch: int = 500,
                 reply_block: float = 1.0, max_job_bytes: int = 1_000_000):
        self.reactor = reactor
        self.clock = clock or reactor
        self.address = parse_redis_url(redis_config.url)
        self.prefix = redis_config.prefix
        self.min_replicas = int(getattr(redis_config, "min_replicas", 0))
        self.replica_timeout = float(getattr(redis_config, "replica_timeout", 1.0))
        self.stats = stats or QueueStats()
        self.command_timeout = command_timeout
        self.enqueue_timeout = enqueue_timeout
        self.key_ttl = int(key_ttl)
        self.reply_ttl = reply_ttl
        self.max_batch = max_batch
        self.reply_block = reply_block
        self.max_job_bytes = max_job_bytes
        self._pool_size = pool_size
        self._pool: RedisPool | None = None
        self._reply_conn: RedisConnection | None = None
        self._token = process_token()
        self._ids = itertools.count(1)
        self.reply_key = reply_list(self.prefix, self._token)
        self._waiting: dict[str, _Pending] = {}
        self._sending: set[str] = set()
        self._outstanding: set[defer.Deferred] = set()
        self._calls: dict[str, tuple] = {}
        self._reader: defer.Deferred | None = None
        self._blmpop = True
        self._closed = False
        self._keys: dict[str, QueueKeys] = {}
        self.time = RedisTime(self.clock)

    # --- connections ------------------------------------------------------------------

    @property
    def pool(self) -> RedisPool:
        if self._pool is None:
            self._pool = RedisPool(self.reactor, self.address, self._pool_size, "client",
                                   self.command_timeout)
        return self._pool

    def keys(self, queue: str) -> QueueKeys:
        k = self._keys.get(queue)
        if k is None:
            k = self._keys[queue] = QueueKeys(self.prefix, check_name("queue", queue))
        return k

    def startService(self):
        super().startService()
        self._closed = False
        self.pool.start()

    def stopService(self):
        super().stopService()
        return defer.Deferred.fromCoroutine(self.close())

    async def close(self) -> None:
        """Fail waiting calls, let enqueues already sent finish, close the connections."""
        self._closed = True
        for corr in list(self._calls):
            self._finish_call(corr, failure=QueueStopped("the job queue client was stopped"))
        # enqueues already accepted are sent, including those coalesced behind a batch in flight
        while self._outstanding:
            await defer.DeferredList(list(self._outstanding), consumeErrors=True)
        closing = []
        if self._reply_conn is not None:
            closing.append(self._reply_conn.close())
        if self._pool is not None:
            closing.append(self._pool.close())
            self._pool = None
        self._reply_conn = None
        await defer.DeferredList(closing, consumeErrors=True)

    # --- enqueue ------------------------------------------------------------------------

    def _encode(self, job: dict) -> str:
        text = codec.dumps(job)
        if len(text) > self.max_job_bytes:
            raise ValueError(f"job {job['t']} is {len(text)} bytes, above the {self.max_job_bytes} byte limit")
        return text

    def _new_id(self) -> str:
        return f"{self._token}.{next(self._ids):x}"

    def enqueue(self, queue: str, task: str, args: Any, key: str | None = None,
                delay: float | None = None) -> defer.Deferred:
        """Fires with the job id once the job is in Redis, or None if ``key`` was used."""
        try:
            keys = self.keys(queue)
            check_name("task", task)
            job_id = self._new_id()
            text = self._encode({"i": job_id, "t": task, "a": args})
            rkey = ""
            if key is not None:
                if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
                    raise ValueError(f"bad idempotency key {str(key)[:40]!r}: 1-{MAX_KEY_LENGTH} characters")
                rkey = keys.idempotency(key)
            delay = float(delay) if delay is not None else 0.0
            if delay != delay or delay > 10 * 365 * 86400:
                raise ValueError(f"bad delay {delay!r}")
        except Exception:
            return defer.fail()
        if delay <= 0:
            return self._submit(queue, rkey, job_id, text, "")
        return defer.Deferred.fromCoroutine(self._submit_delayed(queue, rkey, job_id, text, delay))

    async def _submit_delayed(self, queue, rkey, job_id, text, delay):
        if self.time.stale(self.reactor):
            await self.time.sync(self.pool)  # due times are on Redis's clock (see RedisTime)
        due = str(int((self.time.now() + delay) * 1000))
        return await self._submit(queue, rkey, job_id, text, due)

    def _submit(self, queue, rkey, job_id, text, due) -> defer.Deferred:
        if self._closed:
            return defer.fail(QueueStopped("the job queue client was stopped"))
        d = defer.Deferred()
        pending = self._waiting.get(queue)
        if pending is None:
            pending = self._waiting[queue] = _Pending(self.reactor.seconds() + self.enqueue_timeout)
        pending.items.append((rkey, job_id, text, due, d))
        if queue not in self._sending:
            self._flush(queue)
        return d

    def _flush(self, queue: str) -> None:
        pending = self._waiting.pop(queue, None)
        if pending is None or not pending.items:
            self._sending.discard(queue)
            return
        self._sending.add(queue)
        items = pending.items
        chunks = [items[i:i + self.max_batch] for i in range(0, len(items), self.max_batch)]
        sent = [self._send_chunk(queue, chunk, pending.deadline) for chunk in chunks]
        done = defer.DeferredList(sent, consumeErrors=True)
        done.addCallback(lambda _: self._flush(queue))

    def _send_chunk(self, queue, chunk, deadline) -> defer.Deferred:
        keys = self.keys(queue)
        args = [self.key_ttl]
        for rkey, job_id, text, due, _ in chunk:
            args += (rkey, job_id, text, due)
        d = defer.Deferred.fromCoroutine(self._run_enqueue(keys, args, deadline))
        self._outstanding.add(d)

        def settle(result):
            self._outstanding.discard(d)
            if isinstance(result, list):
                added = 0
                for (rkey, job_id, _, _, waiter), outcome in zip(chunk, result):
                    if outcome == 1 or outcome == "1":
                        added += 1
                        waiter.callback(job_id)
                    elif outcome == job_id:
                        # our own earlier attempt got through before its reply was lost
                        waiter.callback(job_id)
                    else:
                        waiter.callback(None)
                if added:
                    self.stats.incr(queue, "enqueued", added)
            else:
                for item in chunk:
                    item[4].errback(result)
            return None

        return d.addBoth(settle)

    async def _run_enqueue(self, keys: QueueKeys, args, deadline: float):
        delay = 0.05
        while True:
            try:
                if not self.min_replicas:
                    return await scripts.ENQUEUE.run(self.pool, [keys.stream, keys.delayed], args)
                return await self._enqueue_replicated(keys, args)
            except Exception as e:
                # a lost reply leaves the outcome unknown: sending again may add the job
                # twice (at-least-once); an idempotency key makes the retry exact
                if not is_transient(e) or self.reactor.seconds() + delay > deadline:
                    raise
                log.warn("enqueue to {queue}: {error}; retrying", queue=keys.queue, error=str(e))
                await sleep(self.reactor, delay)
                delay = min(delay * 2, 1.0)

    async def _enqueue_replicated(self, keys: QueueKeys, args) -> Any:
        """The enqueue script, then WAIT on the same server connection for min_replicas."""
        conn = self.pool.connection()
        generation = conn.generation
        result = await scripts.ENQUEUE.run(conn, [keys.stream, keys.delayed], args)
        if conn.generation != generation:
            raise RedisUnavailable("the Redis connection changed before WAIT; enqueueing again")
        # WAIT counts replicas that have this connection's last write.  PUBLISH (replicated,
        # no key) moves that mark to the master's latest offset, so WAIT also covers a job
        # an earlier attempt wrote through another connection (the script then writes
        # nothing: an idempotency-key hit).  Both are pipelined on the same connection.
        conn.execute("PUBLISH", f"{self.prefix}:replicated", "").addErrback(lambda _: None)  # WAIT fails too
        waited = conn.execute("WAIT", self.min_replicas, max(1, int(self.replica_timeout * 1000)),
                              timeout=self.replica_timeout + self.command_timeout)
        acked = int(await waited)
        if conn.generation != generation:  # PUBLISH and WAIT went to a new connection
            raise RedisUnavailable("the Redis connection changed during WAIT; enqueueing again")
        if acked < self.min_replicas:
            self.stats.incr(keys.queue, "replicas_behind")
            raise ReplicasBehind(f"{acked} of {self.min_replicas} Redis replica(s) confirmed the job "
                                 f"within {self.replica_timeout:g}s")
        return result

    # --- RPC ----------------------------------------------------------------------------

    def call(self, queue: str, task: str, args: Any, timeout: float = 10.0) -> defer.Deferred:
        """Fires with the handler's result; fails with RemoteJobError or JobTimeout."""
        try:
            self.keys(queue)
            check_name("task", task)
            corr = self._new_id()
            # d: how long the caller waits; a worker that sees the entry (dated by Redis)
            # older than that skips it instead of answering nobody
            text = self._encode({"i": corr, "t": task, "a": args, "r": self.reply_key, "c": corr,
                                 "d": int(timeout * 1000)})
        except Exception:
            return defer.fail()
        if self._closed:
            return defer.fail(QueueStopped("the job queue client was stopped"))

        def cancel(_):
            self._calls.pop(corr, None)
            if timer.active():
                timer.cancel()

        result = defer.Deferred(cancel)
        timer = self.reactor.callLater(timeout, self._timed_out, corr)
        self._calls[corr] = (result, timer, queue, task, timeout)
        self.stats.incr(queue, "calls")
        self._ensure_reader()

        def not_enqueued(failure):
            self._finish_call(corr, failure=failure)

        self._submit(queue, "", corr, text, "").addErrback(not_enqueued)
        return result

    def _timed_out(self, corr: str) -> None:
        entry = self._calls.get(corr)
        if entry is not None:
            _, _, queue, task, timeout = entry
            self.stats.incr(queue, "call_timeouts")
            self._finish_call(corr, failure=JobTimeout(queue, task, timeout))

    def _finish_call(self, corr: str, result=None, failure=None) -> None:
        entry = self._calls.pop(corr, None)
        if entry is None:
            return  # timed out or cancelled already: a late reply is dropped
        d, timer = entry[0], entry[1]
        if timer.active():
            timer.cancel()
        if failure is not None:
            d.errback(failure)
        else:
            d.callback(result)

    def _ensure_reader(self) -> None:
        if self._reader is None:
            if self._reply_conn is None:
                self._reply_conn = RedisConnection(self.reactor, self.address, "replies",
                                                   self.command_timeout)
            self._reader = defer.Deferred.fromCoroutine(self._read_replies())

    async def _read_replies(self) -> None:
        delay = 0.05
        try:
            while self._calls and not self._closed:
                conn = self._reply_conn
                if self._blmpop:
                    command = ("BLMPOP", self.reply_block, 1, self.reply_key, "LEFT", "COUNT", 1000)
                else:
                    command = ("BLPOP", self.reply_key, self.reply_block)
                try:
                    reply = await conn.execute(*command, timeout=self.reply_block + self.command_timeout)
                except ResponseError as e:
                    if self._blmpop and "unknown command" in str(e).lower():
                        self._blmpop = False  # Redis < 7
                        continue
                    raise
                except Exception as e:
                    if self._closed:
                        break
                    if not is_transient(e):
                        log.failure("reading RPC replies")
                    await sleep(self.reactor, delay)
                    delay = min(delay * 2, 1.0)
                    continue
                delay = 0.05
                if reply is None:
                    continue
                values = reply[1] if self._blmpop else [reply[1]]
                for text in values:
                    self._deliver(text)
        finally:
            self._reader = None
        if self._calls and not self._closed:
            self._ensure_reader()

    def _deliver(self, text: str) -> None:
        try:
            reply = codec.loads(text)
            corr = reply["c"]
        except Exception as e:
            log.warn("dropping a malformed RPC reply: {error}", error=str(e))
            return
        self.stats.counters["replies"] += 1
        if "e" in reply:
            entry = self._calls.get(corr)
            task = entry[3] if entry else reply.get("t", "?")
            error_type, message = (list(reply["e"]) + ["", ""])[:2]
            self._finish_call(corr, failure=remote_failure(task, str(error_type), str(message)))
        else:
            self._finish_call(corr, result=reply.get("r"))

    # --- gauges for /metrics ------------------------------------------------------------

    async def snapshot(self, queue: str) -> dict:
        """depth (entries in the stream), pending (delivered, not acked), delayed, dead,
        oldest_pending_age (seconds since the oldest entry still in the stream was added)."""
        keys = self.keys(queue)
        pool = self.pool
        xlen, zcard, dead, first, summary = await defer.gatherResults([
            pool.execute("XLEN", keys.stream),
            pool.execute("ZCARD", keys.delayed),
            pool.execute("XLEN", keys.dead),
            pool.execute("XRANGE", keys.stream, "-", "+", "COUNT", 1),
            pool.execute("XPENDING", keys.stream, GROUP),
        ], consumeErrors=True).addErrback(self._nogroup_snapshot, keys)
        age = 0.0
        if first:
            first_ms = int(first[0][0].split("-")[0])
            age = max(0.0, self.reactor.seconds() - first_ms / 1000.0)
        pending = int(summary[0]) if summary else 0
        return {"depth": int(xlen), "pending": pending, "delayed": int(zcard), "dead": int(dead),
                "oldest_pending_age": age}

    def _nogroup_snapshot(self, failure, keys):
        # no consumer group yet (no worker ever ran): count without XPENDING
        failure.trap(defer.FirstError)
        if "NOGROUP" not in str(failure.value.subFailure.value):
            return failure.value.subFailure
        pool = self.pool
        return defer.gatherResults([
            pool.execute("XLEN", keys.stream), pool.execute("ZCARD", keys.delayed),
            pool.execute("XLEN", keys.dead), pool.execute("XRANGE", keys.stream, "-", "+", "COUNT", 1),
        ]).addCallback(lambda r: r + [None])

    async def depth(self, queue: str) -> int:
        return int(await self.pool.execute("XLEN", self.keys(queue).stream))

    async def dead_count(self, queue: str) -> int:
        return int(await self.pool.execute("XLEN", self.keys(queue).dead))

    async def oldest_pending_age(self, queue: str) -> float:
        return (await self.snapshot(queue))["oldest_pending_age"]
