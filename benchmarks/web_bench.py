#!/usr/bin/env python3
"""Benchmark of the web role: pay pages and notifications over TLS keep-alive, with peers.

    .venv/bin/python benchmarks/web_bench.py [--duration 15] [--connections 32] [--peers 1,4]

What runs (all on loopback, a fresh redis-server with appendonly yes / appendfsync everysec):

- ymds: ONE ``twistd -n --logfile web.log ymds --config ymds.toml --roles web`` process
  (epoll reactor) behind an ``ssl:`` endpoint with an ECDSA P-256 certificate, and one
  ``twistd ymds --roles billing`` process (the real billing service, SQLite ledger) that
  answers the pay page's ``invoice_status`` queue calls.  ``--standalone`` runs the same
  make_site/RedisJobQueue from this script instead (``serve-ymds``/``serve-billing``).
- peers: Flask under gunicorn (sync workers, 1 and 4) with the same TLS certificate,
  the same sha1_hash check and an RQ enqueue (benchmarks/peers/flask_app.py).

Measurements, with wrk (1 thread):
1. GET /pay/<token>: maximum req/s (keep-alive where the server allows it).
2. POST /yoomoney/notify: maximum notifications/s; every request carries a unique
   operation_id signed with sha1_hash (pre-generated bodies, a Lua script cycles through
   them); "accepted" counts only 200s that were verified and enqueued (for ymds, read back
   from /metrics and the stream length).
3. Both at a fixed 500 req/s: wrk with a Lua ``delay()`` that hands out send slots on one
   global schedule (every 2 ms, clock_gettime through LuaJIT's FFI) over 16 connections;
   wrk times each request from its first byte written, so p50/p99 are service latencies
   at that offered rate (no coordinated-omission correction; the achieved rate is printed).

The billing process is stopped before the notification runs (so it does not consume the
jobs on the same two cores); pages use billing's answer through the web process's 1 s
invoice-status cache.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

SECRET = "bench-notification-secret-0123456789"
LINK_SECRET = "bench-link-secret-0123456789abcdef"
WALLET = "410011234567890"


# --- the processes under test ---------------------------------------------------------------

def load_bench_config(path):
    from ymds.config import load_config
    with open(path) as f:
        return load_config(raw=json.load(f), env={})


def start_log(path):
    from twisted.logger import globalLogBeginner, textFileLogObserver
    globalLogBeginner.beginLoggingTo([textFileLogObserver(open(path, "a"))], redirectStandardIO=False)


def serve_ymds(config_path, log_path):
    from twisted.internet import epollreactor
    epollreactor.install()
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString

    from ymds.metrics import Registry
    from ymds.queue.client import RedisJobQueue
    from ymds.web.site import make_site

    start_log(log_path)
    config = load_bench_config(config_path)
    queue = RedisJobQueue(reactor, config.redis)
    queue.startService()
    site = make_site(reactor, config, queue, Registry(), {})
    serverFromString(reactor, config.server.endpoint).listen(site)
    profile_path = os.environ.get("YMDS_BENCH_PROFILE")
    if profile_path:  # for looking into the server: cProfile stats written at exit
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
        reactor.addSystemEventTrigger("before", "shutdown", lambda: (profiler.disable(), profiler.dump_stats(profile_path)))
    reactor.run()


def serve_billing(config_path, log_path):
    from twisted.internet import epollreactor
    epollreactor.install()
    from twisted.internet import defer, reactor

    from ymds.billing.open import open_ledger
    from ymds.billing.service import make_billing_service
    from ymds.queue.client import RedisJobQueue

    start_log(log_path)
    config = load_bench_config(config_path)

    async def start():
        queue = RedisJobQueue(reactor, config.redis)
        queue.startService()
        ledger = open_ledger(config.ledger.url, reactor)
        await ledger.migrate()
        make_billing_service(reactor, config, queue, ledger).startService()

    defer.Deferred.fromCoroutine(start()).addErrback(lambda f: (f.printTraceback(), reactor.stop()))
    reactor.run()


# --- helpers ---------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def make_cert(directory):
    from datetime import datetime, timedelta, timezone
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    key_path, cert_path = os.path.join(directory, "key.pem"), os.path.join(directory, "cert.pem")
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def https(port, method, path, body=None, headers=None):
    import http.client
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, response.headers, data


def redis_cli(port, *args):
    from tests.support.resp import command
    return command(port, *args)


def signed_bodies(path, count, prefix):
    from ymds.yoomoney.notification import encode_form
    from ymds.yoomoney.signature import add_signatures
    with open(path, "w") as f:
        for i in range(count):
            fields = {"notification_type": "card-incoming", "operation_id": f"{prefix}-{i}", "amount": "97.00",
                      "withdraw_amount": "100.00", "currency": "643", "datetime": "2026-11-26T21:00:00Z",
                      "sender": "", "codepro": "false", "label": "BenchLabel00000000"}
            f.write(encode_form(add_signatures(fields, SECRET, "sha1")).decode() + "\n")


LUA_COMMON = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } ymds_timespec;
int clock_gettime(int clk_id, ymds_timespec *tp);
]]
local ts = ffi.new("ymds_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local interval = nil
local next_at = nil
local bodies = {}
local i = 0
local mode = "GET"
function init(args)
  mode = args[1]
  if args[2] ~= nil and args[2] ~= "-" then interval = 1000.0 / tonumber(args[2]) end
  if mode == "POST" then
    for line in io.lines(args[3]) do bodies[#bodies + 1] = line end
  end
end
function request()
  if mode == "POST" then
    i = i + 1
    if i > #bodies then i = 1 end
    return wrk.format("POST", "/yoomoney/notify", {["Content-Type"] = "application/x-www-form-urlencoded"}, bodies[i])
  end
  return wrk.format("GET", nil)
end
if true then
  function delay()
    if interval == nil then return 0 end
    local now = now_ms()
    if next_at == nil or next_at < now - 1000 then next_at = now end
    next_at = next_at + interval
    local d = next_at - now
    if d < 0 then return 0 end
    return d
  end
end
"""


def to_toml(doc) -> str:
    lines = []
    for section, values in doc.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def parse_wrk(text):
    def seconds(value, unit):
        return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]
    out = {"raw": text}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    out["requests"] = int(m.group(1)) if m else 0
    out["seconds"] = seconds(m.group(2), m.group(3)) if m else 0.0
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)\b", text)
        out[f"p{pct}_ms"] = round(seconds(m.group(1), m.group(2)) * 1000, 2) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(map(int, m.groups())) if m else 0
    return out


def wrk(url, duration, connections, lua, mode, rate=None, bodies=None):
    args = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s", "-s", lua, url,
            "--", mode, str(rate) if rate else "-", bodies or "-"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60)
    parsed = parse_wrk(result.stdout + result.stderr)
    parsed["command"] = " ".join(args)
    return parsed


def metric(port, name, label):
    _, _, body = https(port, "GET", "/metrics")
    m = re.search(rf'{name}_total{{result="{label}"}} ([\d.]+)', body.decode())
    return int(float(m.group(1))) if m else 0


def load_average():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


# --- the run ---------------------------------------------------------------------------------

def run(args):
    work = tempfile.mkdtemp(prefix="ymds-web-bench-")
    procs = []
    results = {"duration": args.duration, "connections": args.connections, "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
               "cpu": re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read()).group(1).strip(),
               "cores": os.cpu_count(), "ymds": {}, "peers": {}}

    def spawn(cmd, env=None, log=None):
        out = open(log or os.devnull, "ab")
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=ROOT)
        procs.append(p)
        return p

    def stop(p):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    try:
        key_path, cert_path = make_cert(work)
        redis_port = free_port()
        spawn(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--dir", work, "--save", "",
               "--appendonly", "yes", "--appendfsync", "everysec", "--loglevel", "warning"])
        wait_port(redis_port)
        lua = os.path.join(work, "bench.lua")
        with open(lua, "w") as f:
            f.write(LUA_COMMON)
        per_run = max(args.max_rate * args.duration, 20000)

        # ---- ymds ----
        port = free_port()
        doc = {
            "server": {"endpoint": f"ssl:{port}:privateKey={key_path}:certKey={cert_path}:interface=127.0.0.1",
                       "public_url": f"https://127.0.0.1:{port}",
                       "metrics_public": True},  # the bench reads counters from the public /metrics
            "yoomoney": {"wallet": WALLET, "notification_secret": SECRET, "signature": "auto"},
            "links": {"secret": LINK_SECRET},
            "redis": {"url": f"redis://127.0.0.1:{redis_port}/0", "prefix": "ymds"},
            "ledger": {"url": "sqlite:///" + os.path.join(work, "ledger.sqlite3")},
            "telegram": {"language": "en"},
        }
        config_path = os.path.join(work, "config.json")
        with open(config_path, "w") as f:
            json.dump(doc, f)
        if args.standalone:
            me = [sys.executable, os.path.abspath(__file__)]
            billing = spawn(me + ["serve-billing", config_path, os.path.join(work, "billing.log")])
            web = spawn(me + ["serve-ymds", config_path, os.path.join(work, "web.log")])
        else:
            toml_path = os.path.join(work, "ymds.toml")
            with open(toml_path, "w") as f:
                f.write(to_toml(doc))
            twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
            billing = spawn([twistd, "-n", "--logfile", os.path.join(work, "billing.log"), "--pidfile", os.path.join(work, "billing.pid"),
                             "ymds", "--config", toml_path, "--roles", "billing"])
            web = spawn([twistd, "-n", "--logfile", os.path.join(work, "web.log"), "--pidfile", os.path.join(work, "web.pid"),
                         "ymds", "--config", toml_path, "--roles", "web"])
        wait_port(port)
        time.sleep(1.0)
        status, headers, _ = https(port, "POST", "/donate", b"amount=100&lang=en",
                                  {"content-type": "application/x-www-form-urlencoded"})
        assert status == 303, status
        pay_path = urllib.parse.urlsplit(headers["location"]).path
        status, _, page = https(port, "GET", pay_path)
        assert status == 200 and b"Pay by bank card" in page, status
        base = f"https://127.0.0.1:{port}"
        print(f"ymds web pid {web.pid}, billing pid {billing.pid}; load {load_average()}", flush=True)
        r = results["ymds"]
        r["page_max"] = wrk(base + pay_path, args.duration, args.connections, lua, "GET")
        print("ymds page max", r["page_max"]["rps"], r["page_max"]["p99_ms"], "non-2xx", r["page_max"]["non2xx"], flush=True)
        r["page_500"] = wrk(base + pay_path, args.duration, 16, lua, "GET", rate=500)
        print("ymds page @500", r["page_500"]["rps"], r["page_500"]["p50_ms"], r["page_500"]["p99_ms"], flush=True)
        stop(billing)
        for run_name, rate in (("notify_max", None), ("notify_500", 500)):
            redis_cli(redis_port, "DEL", "ymds:q:billing")
            bodies = os.path.join(work, f"{run_name}.txt")
            signed_bodies(bodies, per_run if rate is None else 500 * args.duration + 1000, f"{run_name}-{time.time_ns()}")
            ok_before = metric(port, "ymds_web_notifications", "ok")
            res = wrk(base + "/yoomoney/notify", args.duration, args.connections if rate is None else 16, lua, "POST",
                      rate=rate, bodies=bodies)
            res["accepted"] = metric(port, "ymds_web_notifications", "ok") - ok_before
            res["duplicates"] = metric(port, "ymds_web_notifications", "duplicate")
            res["stream_length"] = redis_cli(redis_port, "XLEN", "ymds:q:billing")
            res["accepted_per_s"] = round(res["accepted"] / res["seconds"], 1) if res["seconds"] else 0
            r[run_name] = res
            print("ymds", run_name, res["rps"], res["accepted_per_s"], res["p50_ms"], res["p99_ms"], res["non2xx"], flush=True)
        stop(web)

        # ---- peers ----
        for workers, tls in [(w, True) for w in args.peers] + [(w, False) for w in (args.peers if args.peer_plain else [])]:
            redis_cli(redis_port, "FLUSHALL")
            peer_port = free_port()
            label = pay_path.split("/")[-1].split(".")[0]
            redis_cli(redis_port, "HSET", f"peer:invoice:{label}", "amount", "100.00", "status", "open")
            scheme = "https" if tls else "http"
            env = {"PEER_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "PEER_SECRET": SECRET,
                   "PEER_LINK_SECRET": LINK_SECRET, "PEER_PUBLIC_URL": f"{scheme}://127.0.0.1:{peer_port}",
                   "PYTHONPATH": HERE}
            gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable)) or "gunicorn"
            tls_args = ["--certfile", cert_path, "--keyfile", key_path] if tls else []
            peer = spawn([gunicorn, "-w", str(workers), "-k", "sync", *tls_args,
                          "-b", f"127.0.0.1:{peer_port}", "--log-level", "warning", "--backlog", "2048",
                          "peers.flask_app:app"], env=env, log=os.path.join(work, f"gunicorn-{workers}-{scheme}.log"))
            wait_port(peer_port)
            time.sleep(1.0)
            if tls:
                status, _, page = https(peer_port, "GET", pay_path)
                assert status == 200, status
            pbase = f"{scheme}://127.0.0.1:{peer_port}"
            pr = results["peers"][f"flask_gunicorn_sync_{workers}_{scheme}"] = {"workers": workers, "tls": tls}
            pr["page_max"] = wrk(pbase + pay_path, args.duration, args.connections, lua, "GET")
            pr["page_500"] = wrk(pbase + pay_path, args.duration, 16, lua, "GET", rate=500)
            for run_name, rate in (("notify_max", None), ("notify_500", 500)):
                bodies = os.path.join(work, f"peer-{workers}-{run_name}.txt")
                signed_bodies(bodies, per_run if rate is None else 500 * args.duration + 1000, f"p{workers}{run_name}-{time.time_ns()}")
                before = redis_cli(redis_port, "LLEN", "rq:queue:billing")
                res = wrk(pbase + "/yoomoney/notify", args.duration, args.connections if rate is None else 16, lua,
                          "POST", rate=rate, bodies=bodies)
                res["accepted"] = redis_cli(redis_port, "LLEN", "rq:queue:billing") - before
                res["accepted_per_s"] = round(res["accepted"] / res["seconds"], 1) if res["seconds"] else 0
                pr[run_name] = res
            print(f"peer {workers}w {scheme}", pr["page_max"]["rps"], pr["notify_max"]["accepted_per_s"],
                  pr["page_500"]["p99_ms"], pr["notify_500"]["p99_ms"], flush=True)
            stop(peer)
        results["load_after"] = load_average()
    finally:
        for p in reversed(procs):
            stop(p)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("kept", work)
    return results


def summary(results) -> str:
    y = results["ymds"]
    lines = [
        f"Run {results['started']}, {results['cores']} cores ({results['cpu']}), wrk 1 thread, {results['duration']} s per run, "
        f"{results['connections']} connections for maxima, 16 for the paced runs; load average after: {results.get('load_after')}.",
        "",
        "| server | processes | GET /pay req/s | notify accepted/s | page p50/p99 @500/s (ms) | notify p50/p99 @500/s (ms) |",
        "|---|---|---|---|---|---|",
        f"| ymds web (Twisted, TLS keep-alive) | 1 | {y['page_max']['rps']:.0f} | {y['notify_max']['accepted_per_s']:.0f} | "
        f"{y['page_500']['p50_ms']} / {y['page_500']['p99_ms']} ({y['page_500']['rps']:.0f}/s) | "
        f"{y['notify_500']['p50_ms']} / {y['notify_500']['p99_ms']} ({y['notify_500']['rps']:.0f}/s) |",
    ]
    best_page = best_notify = 0.0
    for name, p in results["peers"].items():
        w = p["workers"]
        kind = "TLS in gunicorn" if p["tls"] else "plain HTTP, TLS not counted"
        lines.append(
            f"| Flask + gunicorn sync, RQ ({kind}; no keep-alive) | {w} | {p['page_max']['rps']:.0f} | {p['notify_max']['accepted_per_s']:.0f} | "
            f"{p['page_500']['p50_ms']} / {p['page_500']['p99_ms']} ({p['page_500']['rps']:.0f}/s) | "
            f"{p['notify_500']['p50_ms']} / {p['notify_500']['p99_ms']} ({p['notify_500']['rps']:.0f}/s) |")
        best_page = max(best_page, p["page_max"]["rps"] / w)
        best_notify = max(best_notify, p["notify_max"]["accepted_per_s"] / w)
    if best_page and best_notify:
        lines += ["", f"Per process: ymds / best peer = {y['page_max']['rps'] / best_page:.1f}x for pages, "
                      f"{y['notify_max']['accepted_per_s'] / best_notify:.1f}x for notifications."]
    lines += ["", f"ymds notify max: {y['notify_max']['requests']} requests, {y['notify_max']['accepted']} verified and enqueued "
                  f"(stream length {y['notify_max']['stream_length']}), non-2xx {y['notify_max']['non2xx']}, "
                  f"socket errors {y['notify_max']['socket_errors']}."]
    return "\n".join(lines)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "serve-ymds":
        return serve_ymds(sys.argv[2], sys.argv[3])
    if len(sys.argv) > 1 and sys.argv[1] == "serve-billing":
        return serve_billing(sys.argv[2], sys.argv[3])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--peers", default="1,4", help="gunicorn worker counts, e.g. 1,4 ('' for none)")
    parser.add_argument("--standalone", action="store_true",
                        help="run the web role from this script (make_site + RedisJobQueue) instead of twistd ymds --roles web")
    parser.add_argument("--peer-plain", action="store_true",
                        help="also run the peers over plain HTTP (as behind a TLS-terminating proxy, whose cost is then not counted)")
    parser.add_argument("--max-rate", type=int, default=6000, help="expected ceiling, sizes the unique bodies")
    parser.add_argument("--json", help="write all results (with wrk output) here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args()
    args.peers = [int(x) for x in args.peers.split(",") if x.strip()]
    results = run(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    print(summary(results))


if __name__ == "__main__":
    main()
