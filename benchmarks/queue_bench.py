"""Job queue benchmark: ymds side by side with RQ and arq, on one redis-server started for the run.

    .venv/bin/python benchmarks/queue_bench.py            # full run (about a minute)
    .venv/bin/python benchmarks/queue_bench.py --quick    # smaller numbers

Three measurements per system, each with its worker in a process of its own:

- end-to-end: N no-op jobs enqueued while one worker drains them; jobs/s from the first
  enqueue to the moment the queue is empty (every job executed and acknowledged);
- sequential RPC: one caller, call -> result, repeated;
- RPC with 100 in flight: 100 callers at once.

ymds runs with every guarantee on (durable enqueue reply, ack after success in one script
with XACK + XDEL + reply push, leases, reclaim, retries).  RQ and arq have no RPC: a call
is enqueue + wait for the result, polling at the system's own poll delay (RQ: 1 ms).
Needs the [bench] extra (rq, arq, redis).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

QUEUE = "bench"
NOOP = "queue_bench.noop"  # RQ imports it by name in its worker


# --- job functions (imported by the RQ and arq workers from this module) -----------------

def noop(*args, **kwargs):
    return None


async def arq_noop(ctx, *args, **kwargs):
    return None


# --- redis-server for the run ---------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    def __init__(self, fsync: str):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="ymds-bench-redis-")
        args = [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--save", "", "--loglevel", "warning"]
        if fsync == "no":
            args += ["--appendonly", "no"]
        else:
            args += ["--appendonly", "yes", "--appendfsync", fsync]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(500):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.01)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def flush(self):
        import redis
        redis.Redis(port=self.port).flushall()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def spawn(role: str, url: str, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, ROOT, os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--role", role, "--url", url, *extra],
                            env=env, cwd=HERE, stdout=subprocess.PIPE if role.endswith("client") else subprocess.DEVNULL,
                            stderr=None)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- ymds ---------------------------------------------------------------------------------------

def ymds_worker(url: str, concurrency: int, batch: int) -> None:
    from twisted.internet import reactor
    from ymds.config import QueueConfig, RedisConfig
    from ymds.queue.registry import TaskRegistry
    from ymds.queue.worker import Worker

    async def nothing(args):
        return None

    worker = Worker(reactor, RedisConfig(url=url, prefix="bench"),
                    QueueConfig(concurrency=concurrency, batch=batch), QUEUE,
                    TaskRegistry({"noop": nothing}), "bench-worker")
    worker.startService()
    reactor.addSystemEventTrigger("before", "shutdown", worker.stopService)
    reactor.run()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ymds_client(url: str, jobs: int, seq: int, par: int, watch: dict[str, int]) -> None:
    from twisted.internet import defer, task
    from ymds.config import RedisConfig
    from ymds.queue.client import RedisJobQueue

    async def main(reactor):
        q = RedisJobQueue(reactor, RedisConfig(url=url, prefix="bench"))
        q.startService()
        await q.call(QUEUE, "noop", {}, timeout=30)  # warm up: connections, scripts, group
        stream = f"bench:q:{QUEUE}"
        out = {"cpu_us": {}}
        watch["client"] = os.getpid()

        def cpu_mark():
            return {name: cpu_seconds(pid) for name, pid in watch.items()}

        # top-level commands the queue sends (commands run inside its scripts are not round trips)
        queue_commands = ("evalsha", "eval", "xreadgroup", "blmpop", "blpop", "time", "xgroup")

        async def commands():
            info = await q.pool.execute("INFO", "commandstats")
            total = 0
            for line in info.splitlines():
                if line.startswith("cmdstat_"):
                    name, stats = line[len("cmdstat_"):].split(":", 1)
                    if name in queue_commands:
                        total += int(stats.split(",")[0].split("=")[1])
            return total

        out["commands_per_op"] = {}

        def cpu_per_op(name, before, ops):
            after = cpu_mark()
            out["cpu_us"][name] = {k: round((after[k] - before[k]) * 1e6 / ops, 1) for k in after}

        before = await commands()
        mark = cpu_mark()
        t0 = time.perf_counter()
        await defer.gatherResults([q.enqueue(QUEUE, "noop", {"i": i}) for i in range(jobs)])
        t_enq = time.perf_counter()
        while int(await q.pool.execute("XLEN", stream)) > 0:
            await task.deferLater(reactor, 0.002)
        t1 = time.perf_counter()
        out["e2e"] = jobs / (t1 - t0)
        out["enqueue"] = jobs / (t_enq - t0)
        cpu_per_op("e2e", mark, jobs)
        out["commands_per_op"]["e2e"] = round((await commands() - before) / jobs, 3)

        before = await commands()
        mark = cpu_mark()
        t0 = time.perf_counter()
        for i in range(seq):
            await q.call(QUEUE, "noop", {"i": i}, timeout=30)
        out["seq"] = seq / (time.perf_counter() - t0)
        cpu_per_op("seq", mark, seq)
        out["commands_per_op"]["seq"] = round((await commands() - before) / seq, 3)

        async def caller(n):
            for i in range(n):
                await q.call(QUEUE, "noop", {"i": i}, timeout=30)

        before = await commands()
        mark = cpu_mark()
        t0 = time.perf_counter()
        await defer.gatherResults([defer.Deferred.fromCoroutine(caller(par // 100)) for _ in range(100)])
        out["par"] = (par // 100 * 100) / (time.perf_counter() - t0)
        cpu_per_op("par", mark, par // 100 * 100)
        out["commands_per_op"]["par"] = round((await commands() - before) / (par // 100 * 100), 3)
        await q.stopService()
        print(json.dumps(out))

    task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor)))


def run_ymds(redis: Redis, jobs, seq, par, concurrency, batch) -> dict:
    worker = spawn("ymds-worker", redis.url, "--concurrency", str(concurrency), "--batch", str(batch))
    try:
        client = spawn("ymds-client", redis.url, "--jobs", str(jobs), "--seq", str(seq), "--par", str(par),
                       "--watch", f"worker={worker.pid},redis={redis.proc.pid}")
        out, _ = client.communicate(timeout=600)
        return json.loads(out.decode().strip().splitlines()[-1])
    finally:
        stop(worker)


# --- RQ -------------------------------------------------------------------------------------------

def rq_worker(url: str, kind: str) -> None:
    import redis
    from rq import Queue, SimpleWorker, Worker

    conn = redis.Redis.from_url(url)
    cls = SimpleWorker if kind == "simple" else Worker
    worker = cls([Queue(QUEUE, connection=conn)], connection=conn)
    worker.work(logging_level="WARNING")


def run_rq(redis_: Redis, kind: str, jobs: int, seq: int, par: int) -> dict:
    import redis
    from rq import Queue
    from rq.job import Job, JobStatus
    from rq.registry import StartedJobRegistry

    worker = spawn("rq-worker", redis_.url, "--kind", kind)
    conn = redis.Redis.from_url(redis_.url)
    q = Queue(QUEUE, connection=conn)
    started = StartedJobRegistry(queue=q)
    out = {}
    try:
        def wait(job):
            while True:
                status = job.get_status(refresh=True)
                if status in (JobStatus.FINISHED, JobStatus.FAILED):
                    return status
                time.sleep(0.001)

        wait(q.enqueue(NOOP))  # warm up: the worker is ready
        t0 = time.perf_counter()
        last = None
        for i in range(jobs):
            last = q.enqueue(NOOP, i)
        t_enq = time.perf_counter()
        wait(last)
        while q.count or started.count:
            time.sleep(0.001)
        t1 = time.perf_counter()
        out["e2e"] = jobs / (t1 - t0)
        out["enqueue"] = jobs / (t_enq - t0)

        t0 = time.perf_counter()
        for i in range(seq):
            wait(q.enqueue(NOOP, i))
        out["seq"] = seq / (time.perf_counter() - t0)

        t0 = time.perf_counter()
        window = [q.enqueue(NOOP, i) for i in range(min(100, par))]
        sent, done = len(window), 0
        while done < par:
            statuses = [j.get_status(refresh=True) for j in window]
            keep = []
            for job, status in zip(window, statuses):
                if status in (JobStatus.FINISHED, JobStatus.FAILED):
                    done += 1
                    if sent < par:
                        keep.append(q.enqueue(NOOP, sent))
                        sent += 1
                else:
                    keep.append(job)
            window = keep
            if window and len(keep) == len(statuses):
                time.sleep(0.001)
        out["par"] = par / (time.perf_counter() - t0)
        return out
    finally:
        stop(worker)


# --- arq ------------------------------------------------------------------------------------------

def arq_settings(url: str, poll_delay: float | None):
    from arq.connections import RedisSettings

    class Settings:
        functions = [arq_noop]
        redis_settings = RedisSettings.from_dsn(url)
        handle_signals = True
    if poll_delay is not None:
        Settings.poll_delay = poll_delay
    return Settings


def arq_worker(url: str, poll_delay: float | None) -> None:
    from arq.worker import run_worker
    import logging
    logging.disable(logging.INFO)
    run_worker(arq_settings(url, poll_delay))


def run_arq(redis_: Redis, poll_delay: float | None, jobs: int, seq: int, par: int) -> dict:
    from arq import create_pool
    from arq.connections import RedisSettings

    extra = ["--poll-delay", str(poll_delay)] if poll_delay is not None else []
    worker = spawn("arq-worker", redis_.url, *extra)
    result_poll = poll_delay if poll_delay is not None else 0.5

    async def main():
        pool = await create_pool(RedisSettings.from_dsn(redis_.url))
        out = {}
        job = await pool.enqueue_job("arq_noop")
        await job.result(timeout=60, poll_delay=result_poll)

        t0 = time.perf_counter()
        for start in range(0, jobs, 500):
            await asyncio.gather(*(pool.enqueue_job("arq_noop", i) for i in range(start, min(jobs, start + 500))))
        t_enq = time.perf_counter()
        while await pool.zcard("arq:queue"):
            await asyncio.sleep(0.002)
        t1 = time.perf_counter()
        out["e2e"] = jobs / (t1 - t0)
        out["enqueue"] = jobs / (t_enq - t0)

        t0 = time.perf_counter()
        for i in range(seq):
            j = await pool.enqueue_job("arq_noop", i)
            await j.result(timeout=60, poll_delay=result_poll)
        out["seq"] = seq / (time.perf_counter() - t0)

        async def caller(n):
            for i in range(n):
                j = await pool.enqueue_job("arq_noop", i)
                await j.result(timeout=60, poll_delay=result_poll)

        t0 = time.perf_counter()
        await asyncio.gather(*(caller(par // 100) for _ in range(100)))
        out["par"] = (par // 100 * 100) / (time.perf_counter() - t0)
        await pool.aclose()
        return out

    try:
        return asyncio.run(main())
    finally:
        stop(worker)


# --- the run -------------------------------------------------------------------------------------

def machine() -> str:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    redis_version = subprocess.run([shutil.which("redis-server"), "--version"], capture_output=True,
                                   text=True).stdout.split()[2]
    try:
        import hiredis  # noqa: F401
        parser = "hiredis"
    except ImportError:
        parser = "pure-Python parser"
    return (f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
            f"Redis {redis_version.replace('v=', '')}, txredisapi with {parser}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--role")
    p.add_argument("--url")
    p.add_argument("--kind", default="simple")
    p.add_argument("--poll-delay", type=float)
    p.add_argument("--jobs", type=int, default=20000)
    p.add_argument("--seq", type=int, default=3000)
    p.add_argument("--par", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--fsync", default="everysec", choices=["no", "everysec", "always"])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--watch", help=argparse.SUPPRESS)
    p.add_argument("--only", help="comma list: ymds,rq-simple,rq-fork,arq-default,arq-tuned")
    p.add_argument("--no-direct-write", action="store_true",
                   help="ymds without its direct socket writes (ymds.queue.fastwrite), to measure what they buy")
    a = p.parse_args()
    if a.no_direct_write:
        os.environ["YMDS_BENCH_NO_DIRECT_WRITE"] = "1"  # the worker and client processes inherit it
    if os.environ.get("YMDS_BENCH_NO_DIRECT_WRITE"):
        from ymds.queue import fastwrite
        fastwrite.ENABLED = False

    if a.role == "ymds-worker":
        return ymds_worker(a.url, a.concurrency, a.batch)
    if a.role == "ymds-client":
        watch = dict(item.split("=") for item in a.watch.split(",")) if a.watch else {}
        return ymds_client(a.url, a.jobs, a.seq, a.par, {k: int(v) for k, v in watch.items()})
    if a.role == "rq-worker":
        return rq_worker(a.url, a.kind)
    if a.role == "arq-worker":
        return arq_worker(a.url, a.poll_delay)

    scale = 0.2 if a.quick else 1.0

    def n(x):
        return max(100, int(x * scale))

    plan = {
        "ymds": lambda r: run_ymds(r, n(a.jobs), n(a.seq), n(a.par), a.concurrency, a.batch),
        "rq-simple": lambda r: run_rq(r, "simple", n(2000), n(300), n(1000)),
        "rq-fork": lambda r: run_rq(r, "fork", n(300), n(100), n(200)),
        "arq-default": lambda r: run_arq(r, None, n(1000), 10, n(300)),
        "arq-tuned": lambda r: run_arq(r, 0.01, n(3000), n(300), n(2000)),
    }
    names = a.only.split(",") if a.only else list(plan)
    redis = Redis(a.fsync)
    results = {}
    try:
        for name in names:
            redis.flush()
            print(f"running {name} ...", file=sys.stderr, flush=True)
            results[name] = plan[name](redis)
            print(f"  {name}: {results[name]}", file=sys.stderr, flush=True)
    finally:
        redis.stop()

    print(f"\nMachine: {machine()}; appendfsync {a.fsync}")
    print(f"Command: {' '.join(['python', 'benchmarks/queue_bench.py'] + sys.argv[1:])}\n")
    base = results.get("ymds")
    print("| system | end-to-end jobs/s | enqueue jobs/s | sequential RPC/s | RPC/s, 100 in flight |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['e2e']:,.0f} | {r['enqueue']:,.0f} | {r['seq']:,.0f} | {r['par']:,.0f} |")
    if base:
        print("\nymds / other (how many times faster):\n")
        print("| vs | end-to-end | sequential RPC | RPC, 100 in flight |")
        print("|---|---:|---:|---:|")
        for name, r in results.items():
            if name != "ymds":
                print(f"| {name} | {base['e2e'] / r['e2e']:.1f}x | {base['seq'] / r['seq']:.1f}x | "
                      f"{base['par'] / r['par']:.1f}x |")
    if base and "cpu_us" in base:
        print("\nymds per job or call: Redis round trips (top-level commands sent by client and worker)"
              " and CPU time in microseconds of each process:\n")
        print("| measurement | round trips | client CPU | worker CPU | redis-server CPU |")
        print("|---|---:|---:|---:|---:|")
        for phase, label in (("e2e", "end-to-end"), ("seq", "sequential RPC"), ("par", "RPC, 100 in flight")):
            c = base["cpu_us"].get(phase, {})
            rt = base.get("commands_per_op", {}).get(phase, 0)
            print(f"| {label} | {rt:.2f} | {c.get('client', 0):.0f} | {c.get('worker', 0):.0f} | "
                  f"{c.get('redis', 0):.0f} |")
    print("\n" + json.dumps(results))


if __name__ == "__main__":
    main()
