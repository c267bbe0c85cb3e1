"""The consumer side: a Worker service runs one queue's jobs through registered handlers.

Guarantees (DESIGN.md section 7):

- at-least-once: an entry is acknowledged (XACK + XDEL, and its RPC reply pushed, in one
  script call) only after its handler's Deferred succeeded;
- a handler that fails is retried with exponential backoff and jitter through the delayed
  set; after ``max_attempts`` (or at once for PermanentJobError) it goes to the dead stream;
- entries left by a consumer that died are taken over after ``visibility_timeout``; a
  handler still working keeps its lease; entries delivered ``max_deliveries`` times are
  dead-lettered;
- graceful stop: no new reads, in-flight jobs get ``stop_timeout`` to finish, unfinished
  ones stay pending for another worker to reclaim.

``reactor`` does the IO and IO timeouts; ``clock`` (default: reactor) drives the promoter,
the backoff, the reclaim and lease loops, so a test can step them with a task.Clock.
"""
from __future__ import annotations

import inspect
import os
import random
import socket
from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from ymds.queue import codec, scripts
from ymds.queue.errors import PermanentJobError
from ymds.queue.keys import GROUP, QueueKeys, check_name
from ymds.queue.redis import RedisConnection, RedisPool, RedisTime, ResponseError, is_transient, parse_redis_url
from ymds.queue.promoter import DelayedJobPromoter
from ymds.queue.stats import QueueStats
from ymds.util.clock import sleep, wait_until

log = Logger()

MAX_ERROR_TEXT = 2000


def equal_jitter(delay: float) -> float:
    """Half the delay fixed, half random: retries of many jobs spread out, none come early."""
    return delay / 2 + random.uniform(0, delay / 2)


class _Job:
    __slots__ = ("entry_id", "job_id", "task", "args", "attempt", "reply", "corr", "text", "started",
                 "deferred")

    def __init__(self, entry_id, job_id, task, args, attempt, reply, corr, text, started):
        self.entry_id = entry_id
        self.job_id = job_id
        self.task = task
        self.args = args
        self.attempt = attempt
        self.reply = reply
        self.corr = corr
        self.text = text
        self.started = started
        self.deferred = None


class Worker(Service):
    """One named consumer of ``queue_name``'s consumer group."""

    def __init__(self, reactor, redis_config, queue_config, queue_name: str, registry,
                 consumer_name: str | None = None, *, clock=None, stats: QueueStats | None = None,
                 on_dead: Callable[[str, dict], Any] | None = None,
                 jitter: Callable[[float], float] = equal_jitter,
                 command_timeout: float = 5.0, block: float = 1.0, promote_interval: float = 1.0,
                 reclaim_interval: float | None = None, lease_interval: float | None = None,
                 reply_ttl: float = 60.0, pool_size: int = 1, job_timeout: float | None = 300.0):
        self.reactor = reactor
        self.clock = clock or reactor
        self.address = parse_redis_url(redis_config.url)
        self.keys = QueueKeys(redis_config.prefix, check_name("queue", queue_name))
        self.queue = queue_name
        self.config = queue_config
        self.registry = registry
        self.consumer = consumer_name or f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self.name = f"worker:{queue_name}"
        self.stats = stats or QueueStats()
        self.on_dead = on_dead
        self.jitter = jitter
        self.command_timeout = command_timeout
        self.block = block
        self.promote_interval = promote_interval
        vt = queue_config.visibility_timeout
        self.reclaim_interval = reclaim_interval or max(0.05, vt / 2)
        self.lease_interval = lease_interval or max(0.05, vt / 3)
        self.reply_ttl_ms = int(reply_ttl * 1000)
        self.job_timeout = job_timeout
        # a consumer idle this long with nothing pending died without leaving the group
        self.forget_consumers_after = max(3600.0, 10 * vt)
        self.time = RedisTime(self.clock)
        self._pool_size = pool_size
        self._pool: RedisPool | None = None
        self._reader_conn: RedisConnection | None = None
        self._inflight: dict[str, _Job] = {}
        self._acks: list = []
        self._ack_scheduled = False
        self._ack_sending = False
        self._slot_waiter: defer.Deferred | None = None
        self._idle_waiters: list[defer.Deferred] = []
        self._reader: defer.Deferred | None = None
        self.promoter: DelayedJobPromoter | None = None
        self._reclaim_call = None
        self._lease_call = None
        self._reading = False
        self._closed = False
        self._dispatching = False

    @property
    def _redis(self) -> RedisPool:
        assert self._pool is not None, "the worker has not been started"
        return self._pool

    # --- service ------------------------------------------------------------------------

    def startService(self):
        super().startService()
        self._reading = True
        self._closed = False
        self._pool = RedisPool(self.reactor, self.address, self._pool_size, f"{self.name}:", self.command_timeout)
        self._reader_conn = RedisConnection(self.reactor, self.address, f"{self.name}:read", self.command_timeout)
        self._pool.start()
        self._reader_conn.start()
        self._reader = defer.Deferred.fromCoroutine(self._read_loop())
        self._reader.addErrback(lambda f: log.failure("worker {queue} read loop died", f, queue=self.queue))
        self.promoter = DelayedJobPromoter(self.clock, self._pool, self.time, self.keys, self.queue,
                                           self.promote_interval)
        self.promoter.start()
        self._reclaim_call = self.clock.callLater(self.reclaim_interval, self._reclaim)
        self._lease_call = self.clock.callLater(self.lease_interval, self._extend_leases)
        log.info("worker {queue} started as consumer {consumer}", queue=self.queue, consumer=self.consumer)

    def stopService(self):
        super().stopService()
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        self._reading = False
        if self.promoter is not None:
            self.promoter.stop()
        if self._reclaim_call is not None and self._reclaim_call.active():
            self._reclaim_call.cancel()
        self._reclaim_call = None
        self._wake_slot_waiter()
        deadline = self.reactor.seconds() + self.config.stop_timeout
        # the read in progress returns within ``block``; its entries are ours and are run
        if self._reader is not None:
            await wait_until(self.reactor, self._reader, deadline)
        if self._inflight:
            waiter: defer.Deferred[None] = defer.Deferred()
            self._idle_waiters.append(waiter)
            await wait_until(self.reactor, waiter, deadline)
        left = len(self._inflight)
        if self._lease_call is not None and self._lease_call.active():
            self._lease_call.cancel()
        self._lease_call = None
        if left:
            log.warn("worker {queue} stopping with {left} unfinished jobs; they stay pending for reclaim",
                     queue=self.queue, left=left)
        else:
            try:
                await scripts.LEAVE.run(self._pool, [self.keys.stream], [GROUP, self.consumer])
            except Exception as e:
                log.warn("worker {queue}: could not leave the consumer group: {error}", queue=self.queue, error=str(e))
        self._closed = True
        assert self._reader_conn is not None and self._pool is not None  # made by startService
        await defer.DeferredList([self._reader_conn.close(), self._pool.close()], consumeErrors=True)
        # handlers still running cannot be acknowledged any more: stop them
        for rec in list(self._inflight.values()):
            if rec.deferred is not None and not rec.deferred.called:
                rec.deferred.cancel()
        log.info("worker {queue} stopped", queue=self.queue)

    # --- reading ------------------------------------------------------------------------

    async def _ensure_group(self) -> None:
        try:
            await self._redis.execute("XGROUP", "CREATE", self.keys.stream, GROUP, "0", "MKSTREAM")
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    async def _sync_time(self) -> None:
        try:
            await self.time.sync(self._pool)
        except Exception as e:
            log.warn("worker {queue}: could not read Redis's clock: {error}", queue=self.queue, error=str(e))

    async def _sleep(self, seconds: float) -> None:
        await sleep(self.reactor, seconds)

    async def _read_loop(self) -> None:
        reader = self._reader_conn
        assert reader is not None  # made by startService, before this loop
        delay = 0.05
        history: str | None = "0"  # first our own pending entries (a restart under a fixed name), then new ones
        group_ready = False
        await self._sync_time()
        while self._reading:
            try:
                if not group_ready:
                    await self._ensure_group()
                    group_ready = True
                free = self.config.concurrency - len(self._inflight)
                if free <= 0:
                    await self._wait_for_slot()
                    continue
                count = min(self.config.batch, free)
                if history is not None:
                    reply = await self._redis.execute(
                        "XREADGROUP", "GROUP", GROUP, self.consumer, "COUNT", count,
                        "STREAMS", self.keys.stream, history)
                else:
                    reply = await reader.execute(
                        "XREADGROUP", "GROUP", GROUP, self.consumer, "COUNT", count,
                        "BLOCK", int(self.block * 1000), "STREAMS", self.keys.stream, ">",
                        timeout=self.block + self.command_timeout)
            except Exception as e:
                if not self._reading:
                    break
                if isinstance(e, ResponseError) and "NOGROUP" in str(e):
                    group_ready = False  # the stream vanished (Redis lost its data): recreate
                    continue
                if not is_transient(e):
                    log.error("worker {queue} read failed: {error}", queue=self.queue, error=str(e))
                # entries Redis delivered to us on the lost connection are pending under our
                # name: read our history again instead of waiting for the visibility timeout
                history = "0"
                await self._sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05
            entries = reply[0][1] if reply else []
            if history is not None:
                if not entries:
                    history = None
                    continue
                history = entries[-1][0]
            self._dispatching = True
            try:
                for entry_id, fields in entries:
                    self._dispatch(entry_id, fields)
            finally:
                self._dispatching = False
            # handlers that finished at once are acknowledged now, in one script call
            if self._acks and not self._ack_sending:
                self._flush_acks()

    def _wait_for_slot(self) -> defer.Deferred:
        self._slot_waiter = defer.Deferred()
        return self._slot_waiter

    def _wake_slot_waiter(self) -> None:
        w, self._slot_waiter = self._slot_waiter, None
        if w is not None:
            w.callback(None)

    # --- running a job ------------------------------------------------------------------

    def _dispatch(self, entry_id: str, fields) -> None:
        if entry_id in self._inflight:
            return  # our own entry came back through reclaim while its handler still runs
        text, attempt = None, 1
        if fields:
            for i in range(0, len(fields) - 1, 2):
                if fields[i] == "j":
                    text = fields[i + 1]
                elif fields[i] == "n":
                    attempt = int(fields[i + 1]) if str(fields[i + 1]).isdigit() else 1
        if not fields:
            # an entry deleted while pending: nothing to run, just clear it from the group
            self._redis.execute("XACK", self.keys.stream, GROUP, entry_id).addErrback(lambda f: None)
            return
        started = self.reactor.seconds()
        try:
            if text is None:
                raise codec.CodecError("entry has no job field")
            job = codec.loads(text)
            if not isinstance(job, dict) or not isinstance(job.get("t"), str):
                raise codec.CodecError("job is not an object with a task name")
            rec = _Job(entry_id, str(job.get("i", entry_id)), job["t"], job.get("a"), attempt,
                       job.get("r") or "", job.get("c"), text, started)
        except Exception as e:
            rec = _Job(entry_id, entry_id, "", None, attempt, "", None, text or "", started)
            self._inflight[entry_id] = rec
            self._finish_failed(rec, "dead", "malformed", type(e).__name__, str(e))
            return
        self._inflight[entry_id] = rec
        self.stats.in_flight[self.queue] = len(self._inflight)
        timeout_ms = job.get("d")
        if rec.reply and isinstance(timeout_ms, int) and \
                int(entry_id.split("-", 1)[0]) + timeout_ms < self.time.now() * 1000:
            # the caller gave up already: running it now would only answer nobody
            self.stats.incr(self.queue, "expired")
            self._finish_failed(rec, "drop", "expired", "", "")
            return
        handler = self.registry.lookup(rec.task)
        if handler is None:
            self.stats.incr(self.queue, "failed")
            self._finish_failed(rec, "dead", "unknown_task", "UnknownTask", f"no handler for task {rec.task!r}")
            return
        try:
            outcome = handler(rec.args)
            if inspect.iscoroutine(outcome):
                d = defer.Deferred.fromCoroutine(outcome)
            elif isinstance(outcome, defer.Deferred):
                d = outcome
            else:
                d = defer.succeed(outcome)
        except Exception:
            d = defer.fail()
        if not d.called and self.job_timeout:
            # a handler that hangs would hold its slot and lease for ever: cancel it, retry later
            d.addTimeout(self.job_timeout, self.reactor)
        if not d.called:
            rec.deferred = d
        d.addCallbacks(self._succeeded, self._failed, callbackArgs=(rec,), errbackArgs=(rec,))

    def _succeeded(self, result, rec: _Job) -> None:
        if self._closed:
            self._release(rec.entry_id)  # finished after stop: stays pending for reclaim
            return None
        self.stats.observe(rec.task, self.reactor.seconds() - rec.started)
        body = ""
        if rec.reply:
            try:
                body = codec.dumps({"c": rec.corr, "r": result})
            except Exception as e:
                return self._failed(Failure(TypeError(f"result is not JSON-encodable: {e}")), rec)
        self._acks.append((rec.entry_id, rec.reply, body))
        if not self._ack_scheduled and not self._ack_sending and not self._dispatching:
            self._ack_scheduled = True
            self.reactor.callLater(0, self._flush_acks)
        return None

    def _failed(self, failure: Failure, rec: _Job) -> None:
        if self._closed:
            # cancelled by stop (or finished after it): the entry stays pending for reclaim
            self._release(rec.entry_id)
            return None
        self.stats.observe(rec.task, self.reactor.seconds() - rec.started)
        self.stats.incr(self.queue, "failed")
        error_type = failure.type.__name__ if failure.type else "Error"
        message = str(failure.value)[:MAX_ERROR_TEXT]
        permanent = failure.check(PermanentJobError) is not None
        if rec.reply:
            action, reason = "drop", "rpc_error"  # the caller gets the error; it decides
        elif permanent:
            action, reason = "dead", "permanent"
        elif rec.attempt >= self.config.max_attempts:
            action, reason = "dead", "attempts_exhausted"
        else:
            action, reason = "retry", ""
        log.warn("job {task} ({job_id}) attempt {attempt} failed: {error_type}: {message}; {action}",
                 task=rec.task, job_id=rec.job_id, attempt=rec.attempt, error_type=error_type,
                 message=message[:200], action=action)
        self._finish_failed(rec, action, reason, error_type, message)
        return None

    def backoff(self, attempt: int) -> float:
        """Seconds before retry number ``attempt`` (1 = after the first failure)."""
        c = self.config
        delay = min(c.retry_max, c.retry_base * (2 ** min(attempt - 1, 60)))
        return max(0.0, min(c.retry_max, self.jitter(delay)))

    def _finish_failed(self, rec: _Job, action: str, reason: str, error_type: str, message: str) -> None:
        due = ""
        due_seconds: float | None = None
        if action == "retry":
            due_seconds = self.time.now() + self.backoff(rec.attempt)
            due = str(int(due_seconds * 1000))
        reply_body = ""
        if rec.reply and reason in ("rpc_error", "unknown_task", "malformed"):
            reply_body = codec.dumps({"c": rec.corr, "t": rec.task, "e": [error_type, message]})
        error = f"{error_type}: {message}" if error_type else reason
        args = [GROUP, rec.entry_id, action, rec.attempt, rec.text, due, rec.task, error, reason,
                int(self.time.now() * 1000), rec.reply if reply_body else "", reply_body,
                self.reply_ttl_ms]
        d = defer.Deferred.fromCoroutine(self._run_until_done(
            scripts.FAIL, [self.keys.stream, self.keys.delayed, self.keys.dead], args))

        def done(result):
            self._release(rec.entry_id)
            if result != 1:
                return  # another consumer holds the entry now: it decides
            if action == "retry":
                self.stats.incr(self.queue, "retried")
                if self.promoter is not None and due_seconds is not None:
                    self.promoter.wake_at(due_seconds)
            elif action == "dead":
                self.stats.incr(self.queue, "dead")
                self._report_dead({"queue": self.queue, "task": rec.task, "job_id": rec.job_id,
                                   "args": rec.args, "error": error, "attempts": rec.attempt,
                                   "reason": reason})

        def lost(failure):
            self._release(rec.entry_id)
            log.warn("worker {queue}: could not record the failure of {entry}: {error}; "
                     "it stays pending for reclaim", queue=self.queue, entry=rec.entry_id,
                     error=failure.getErrorMessage())

        d.addCallbacks(done, lost)

    async def _run_until_done(self, script, keys, args):
        """Run an idempotent script, retrying transient errors while the worker runs
        (and, when stopping, until the stop deadline)."""
        delay = 0.05
        while True:
            try:
                return await script.run(self._pool, keys, args)
            except Exception as e:
                if not is_transient(e) or self._closed:
                    raise
                await self._sleep(delay)
                delay = min(delay * 2, 1.0)

    def _flush_acks(self) -> None:
        self._ack_scheduled = False
        if self._ack_sending or not self._acks:
            return
        batch, self._acks = self._acks[:1000], self._acks[1000:]
        self._ack_sending = True
        args = [GROUP, self.reply_ttl_ms]
        for entry_id, reply, body in batch:
            args += (entry_id, reply, body)
        d = defer.Deferred.fromCoroutine(self._run_until_done(scripts.ACK, [self.keys.stream], args))

        def done(result):
            self.stats.incr(self.queue, "acked", len(batch))
            return result

        def lost(failure):
            log.warn("worker {queue}: acknowledging {n} jobs failed: {error}; they stay pending "
                     "for reclaim", queue=self.queue, n=len(batch), error=failure.getErrorMessage())

        def next_batch(_):
            self._ack_sending = False
            for entry_id, _, _ in batch:
                self._release(entry_id, wake=False)
            self._wake_slot_waiter()
            self._check_idle()
            if self._acks:
                self._flush_acks()

        d.addCallbacks(done, lost).addBoth(next_batch)

    def _release(self, entry_id: str, wake: bool = True) -> None:
        self._inflight.pop(entry_id, None)
        self.stats.in_flight[self.queue] = len(self._inflight)
        if wake:
            self._wake_slot_waiter()
            self._check_idle()

    def _check_idle(self) -> None:
        if not self._inflight and self._idle_waiters:
            waiters, self._idle_waiters = self._idle_waiters, []
            for w in waiters:
                w.callback(None)

    def _report_dead(self, info: dict) -> None:
        log.error("job {task} ({job_id}) dead-lettered after {attempts} attempts: {error}",
                  task=info["task"], job_id=info["job_id"], attempts=info["attempts"], error=info["error"][:200])
        if self.on_dead is None:
            return
        try:
            outcome = self.on_dead(self.queue, info)
            if inspect.iscoroutine(outcome):
                outcome = defer.Deferred.fromCoroutine(outcome)
            if isinstance(outcome, defer.Deferred):
                outcome.addErrback(lambda f: log.failure("dead-letter callback failed", f))
        except Exception:
            log.failure("dead-letter callback failed")

    # --- reclaim and leases ---------------------------------------------------------------

    def _reclaim(self) -> None:
        self._reclaim_call = None
        # Reclaimed entries are the oldest jobs of the queue: under steady load the read
        # loop would take every slot that frees up and starve them, so reclaim may go over
        # ``concurrency`` by a bounded reserve (a quarter of it) instead of waiting.
        reserve = max(1, self.config.concurrency // 4)
        free = max(self.config.concurrency - len(self._inflight), 0) + reserve
        if len(self._inflight) >= self.config.concurrency + reserve:
            self._reclaim_call = self.clock.callLater(self.reclaim_interval, self._reclaim)
            return
        free = min(free, self.config.concurrency + reserve - len(self._inflight))
        c = self.config
        d = defer.succeed(None)
        if self.time.stale(self.reactor):
            d = defer.Deferred.fromCoroutine(self._sync_time())
        d.addCallback(lambda _: scripts.RECLAIM.run(self._pool, [self.keys.stream, self.keys.dead],
                                [GROUP, self.consumer, int(c.visibility_timeout * 1000), free,
                                 c.max_deliveries, int(self.time.now() * 1000),
                                 int(self.forget_consumers_after * 1000)]))

        def claimed(result):
            dead, entries = result
            for job_text, deliveries, old_consumer in dead:
                self.stats.incr(self.queue, "dead")
                try:
                    job = codec.loads(job_text)
                except Exception:
                    job = {}
                self._report_dead({"queue": self.queue, "task": job.get("t", ""), "job_id": job.get("i", ""),
                                   "args": job.get("a"), "attempts": int(deliveries), "reason": "max_deliveries",
                                   "error": f"delivered {deliveries} times without being acknowledged "
                                            f"(last consumer {old_consumer})"})
            fresh = [e for e in entries if e[0] not in self._inflight]
            if fresh:
                self.stats.incr(self.queue, "reclaimed", len(fresh))
                log.info("worker {queue} reclaimed {n} jobs idle longer than {vt}s",
                         queue=self.queue, n=len(fresh), vt=c.visibility_timeout)
            for entry_id, fields in entries:
                if self._reading:
                    self._dispatch(entry_id, fields)

        def failed(failure):
            if self.running and not is_transient(failure):
                log.error("worker {queue}: reclaim failed: {error}", queue=self.queue,
                          error=failure.getErrorMessage())

        def again(_):
            if self.running:
                self._reclaim_call = self.clock.callLater(self.reclaim_interval, self._reclaim)

        d.addCallbacks(claimed, failed).addBoth(again)

    def _extend_leases(self) -> None:
        self._lease_call = None
        ids = list(self._inflight)
        d = defer.succeed(0)
        if ids:
            d = scripts.EXTEND.run(self._pool, [self.keys.stream], [GROUP, self.consumer, *ids])
            d.addErrback(lambda f: log.warn("worker {queue}: extending leases failed: {error}",
                                            queue=self.queue, error=f.getErrorMessage()))

        def again(_):
            if self.running or self._inflight:
                self._lease_call = self.clock.callLater(self.lease_interval, self._extend_leases)

        d.addBoth(again)

    # --- introspection --------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._inflight)
