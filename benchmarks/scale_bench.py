#!/usr/bin/env python3
"""Benchmark of scale-out (issue 18): notifications/s by web process count and by TLS mode.

    .venv/bin/python benchmarks/scale_bench.py [--duration 15] [--workers 1,2] [--peer-workers 4]
                                               [--failover] [--json out.json]

Everything on loopback; one redis-server (appendonly yes, appendfsync everysec); the same
ECDSA P-256 certificate for every server.  Helpers (certificate, signed bodies, wrk, its
Lua script) are those of benchmarks/web_bench.py.

1. ymds ``twistd -n ymds --roles web`` with ``[server] workers = N`` for each N of --workers
   (1 = a single process, no supervisor), ``ssl:`` endpoint:
   a. "keep-alive": POST /yoomoney/notify, wrk 1 thread, --connections keep-alive TLS
      connections, unique operation_ids (sha1_hash signed), maximum rate;
   b. "new TLS connection per notification" (as YooMoney sends them): the same with
      ``Connection: close`` on every request, so each one pays a full TLS handshake.
   "accepted" = growth of the billing stream (XLEN ymds:q:billing; no billing process runs,
   so nothing consumes it) — only verified, enqueued notifications count, across all
   workers.
2. The seed-style peer: Flask + gunicorn (``--peer-workers`` sync workers, TLS in gunicorn,
   which never keeps a connection alive: every request is a new TLS connection) + RQ
   (benchmarks/peers/flask_app.py); accepted = growth of RQ's list.
3. ``--failover``: runs tests/e2e/test_failover_redis.py's min_replicas = 1 scenario with
   YMDS_LONG=1 (5,000 notifications; the master killed with SIGKILL a third of the way, two
   replicas, three sentinels) and reports seconds from the kill to the first 200 on the new
   master and the notifications refused (503 or no answer) meanwhile.

Targets (issue 18): one process ≥ 3,500/s keep-alive; workers = 2 ≥ 1.5× workers = 1;
new connection per notification ≥ 2× the peer.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import web_bench  # noqa: E402  (the shared helpers)
from web_bench import (LINK_SECRET, LUA_COMMON, SECRET, WALLET, free_port, load_average, make_cert,  # noqa: E402
                       redis_cli, signed_bodies, to_toml, wait_port, wrk)

# the same script, every request asking the server to close the connection after answering
LUA_CLOSE = LUA_COMMON.replace('{["Content-Type"] = "application/x-www-form-urlencoded"}',
                               '{["Content-Type"] = "application/x-www-form-urlencoded", ["Connection"] = "close"}')
assert LUA_CLOSE != LUA_COMMON


class Processes:
    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def spawn(self, cmd, env=None, log=None):
        out = open(log or os.devnull, "ab")
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=ROOT,
                             start_new_session=True)
        self.procs.append(p)
        return p

    @staticmethod
    def stop(p, timeout=30):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p)


def notify_run(base, redis_port, stream, lua, work, name, duration, connections, count):
    bodies = os.path.join(work, f"{name}.txt")
    signed_bodies(bodies, count, f"{name}-{time.time_ns()}")
    before = int(redis_cli(redis_port, stream[0], stream[1]))
    res = wrk(base + "/yoomoney/notify", duration, connections, lua, "POST", bodies=bodies)
    res["accepted"] = int(redis_cli(redis_port, stream[0], stream[1])) - before
    res["accepted_per_s"] = round(res["accepted"] / res["seconds"], 1) if res["seconds"] else 0
    res.pop("raw", None)
    print(f"{name}: {res['accepted_per_s']}/s accepted ({res['rps']:.0f} req/s, non-2xx {res['non2xx']}, "
          f"socket errors {res['socket_errors']}); load {load_average()}", flush=True)
    return res


def run(args) -> dict:
    work = tempfile.mkdtemp(prefix="ymds-scale-bench-")
    procs = Processes()
    results: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "cores": os.cpu_count(),
                     "duration": args.duration, "connections": args.connections, "ymds": {}, "peer": {}}
    try:
        key_path, cert_path = make_cert(work)
        redis_port = free_port()
        procs.spawn(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--dir", work, "--save", "",
                     "--appendonly", "yes", "--appendfsync", "everysec", "--loglevel", "warning"])
        wait_port(redis_port)
        keep_lua, close_lua = os.path.join(work, "keep.lua"), os.path.join(work, "close.lua")
        for path, text in ((keep_lua, LUA_COMMON), (close_lua, LUA_CLOSE)):
            with open(path, "w") as f:
                f.write(text)
        count = max(args.max_rate * args.duration, 20000)
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        for workers in args.workers:
            port = free_port()
            doc = {
                "server": {"endpoint": f"ssl:{port}:privateKey={key_path}:certKey={cert_path}:interface=127.0.0.1",
                           "public_url": f"https://127.0.0.1:{port}", "workers": workers},
                "yoomoney": {"wallet": WALLET, "notification_secret": SECRET, "signature": "auto"},
                "links": {"secret": LINK_SECRET},
                "redis": {"url": f"redis://127.0.0.1:{redis_port}/0", "prefix": "ymds"},
                "ledger": {"url": "sqlite:///" + os.path.join(work, "ledger.sqlite3")},
                "telegram": {"language": "en"},
            }
            toml_path = os.path.join(work, f"ymds-{workers}.toml")
            with open(toml_path, "w") as f:
                f.write(to_toml(doc))
            log = os.path.join(work, f"web-{workers}.log")
            web = procs.spawn([twistd, "-n", "--logfile", log, "--pidfile", "", "ymds", "--config", toml_path,
                               "--roles", "web"], log=log + ".out")
            wait_port(port)
            time.sleep(2.0)  # every worker up
            base = f"https://127.0.0.1:{port}"
            stream = ("XLEN", "ymds:q:billing")
            r = results["ymds"][f"workers_{workers}"] = {"workers": workers}
            r["keep_alive"] = notify_run(base, redis_port, stream, keep_lua, work, f"ymds-w{workers}-keepalive",
                                         args.duration, args.connections, count)
            r["new_connection"] = notify_run(base, redis_port, stream, close_lua, work, f"ymds-w{workers}-close",
                                             args.duration, args.connections, count)
            procs.stop(web)
            redis_cli(redis_port, "DEL", "ymds:q:billing")
        if args.peer_workers:
            peer_port = free_port()
            env = {"PEER_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "PEER_SECRET": SECRET,
                   "PEER_LINK_SECRET": LINK_SECRET, "PEER_PUBLIC_URL": f"https://127.0.0.1:{peer_port}",
                   "PYTHONPATH": HERE}
            gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable)) or shutil.which("gunicorn")
            if gunicorn is None:
                raise SystemExit("the peer needs the bench extra: .venv/bin/pip install -e '.[bench]' "
                                 "(or --peer-workers 0)")
            peer = procs.spawn([gunicorn, "-w", str(args.peer_workers), "-k", "sync", "--certfile", cert_path,
                                "--keyfile", key_path, "-b", f"127.0.0.1:{peer_port}", "--log-level", "warning",
                                "--backlog", "2048", "peers.flask_app:app"], env=env,
                               log=os.path.join(work, "gunicorn.log"))
            wait_port(peer_port)
            time.sleep(1.0)
            results["peer"] = {"workers": args.peer_workers, "new_connection": notify_run(
                f"https://127.0.0.1:{peer_port}", redis_port, ("LLEN", "rq:queue:billing"), close_lua, work,
                f"peer-gunicorn-{args.peer_workers}", args.duration, args.connections, count)}
            procs.stop(peer)
        if args.failover:
            results["failover"] = failover(work)
        results["load_after"] = load_average()
    finally:
        procs.stop_all()
        if args.keep:
            print("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return results


def failover(work: str) -> dict:
    report = os.path.join(work, "failover.jsonl")
    env = {**os.environ, "YMDS_LONG": "1", "YMDS_E2E_REPORT": report}
    trial = os.path.join(os.path.dirname(sys.executable), "trial")
    test = "tests.e2e.test_failover_redis.RedisFailover.test_min_replicas_1_loses_nothing"
    done = subprocess.run([trial, "--temp-directory", os.path.join(work, "_trial_temp"), test], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    print(done.stdout[-400:], flush=True)
    if done.returncode != 0 or not os.path.exists(report):
        return {"error": done.stdout[-2000:]}
    with open(report) as f:
        line = json.loads(f.read().splitlines()[-1])
    return {k: line.get(k) for k in ("notifications", "answers", "promoted_after_s", "first_200_after_s",
                                      "refused_meanwhile", "payments", "told")}


def summary(results: dict) -> str:
    y = results["ymds"]
    lines = [f"Run {results['started']}, {results['cores']} cores, wrk 1 thread, {results['duration']} s per run, "
             f"{results['connections']} connections; load average after: {results.get('load_after')}.", "",
             "| server | processes | notify accepted/s, TLS keep-alive | notify accepted/s, new TLS connection each |",
             "|---|---|---|---|"]
    for r in y.values():
        lines.append(f"| ymds web, workers = {r['workers']} | {r['workers']} | {r['keep_alive']['accepted_per_s']:.0f} | "
                     f"{r['new_connection']['accepted_per_s']:.0f} |")
    peer = results.get("peer") or {}
    if peer:
        lines.append(f"| Flask + gunicorn sync + RQ (TLS in gunicorn) | {peer['workers']} | — (no keep-alive) | "
                     f"{peer['new_connection']['accepted_per_s']:.0f} |")
    lines.append("")
    one, two = y.get("workers_1"), y.get("workers_2")
    if one:
        lines.append(f"- one process, keep-alive: {one['keep_alive']['accepted_per_s']:.0f}/s (target ≥ 3,500)")
    if one and two:
        ratio = two["keep_alive"]["accepted_per_s"] / max(1.0, one["keep_alive"]["accepted_per_s"])
        lines.append(f"- workers = 2 / workers = 1, keep-alive: {ratio:.2f}× (target ≥ 1.5×)")
    if peer:
        best = max(r["new_connection"]["accepted_per_s"] for r in y.values())
        lines.append(f"- new TLS connection per notification, best ymds / peer: "
                     f"{best / max(1.0, peer['new_connection']['accepted_per_s']):.2f}× (target ≥ 2×)")
    if "failover" in results:
        f = results["failover"]
        lines.append(f"- Redis failover (min_replicas = 1, {f.get('notifications')} notifications): first 200 "
                     f"{f.get('first_200_after_s')} s after the master's SIGKILL (promotion after "
                     f"{f.get('promoted_after_s')} s), {f.get('refused_meanwhile')} refused meanwhile; answers "
                     f"{f.get('answers')}, payments {f.get('payments')}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", default="1,2", help="ymds [server] workers values to run, e.g. 1,2")
    parser.add_argument("--peer-workers", type=int, default=4, help="gunicorn sync workers (0: no peer)")
    parser.add_argument("--max-rate", type=int, default=10000, help="expected ceiling, sizes the unique bodies")
    parser.add_argument("--failover", action="store_true", help="also run the Redis failover measurement")
    parser.add_argument("--json", help="write all results here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args()
    args.workers = [int(x) for x in args.workers.split(",") if x.strip()]
    results = run(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    print(summary(results))


if __name__ == "__main__":
    assert web_bench.SECRET == SECRET
    main()
