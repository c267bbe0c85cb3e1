#!/usr/bin/env python3
"""Benchmark of the stream overlay (issue 17): from the notification's 200 to the alert at
the overlays, with 100 overlays connected over two web nodes.

    .venv/bin/python benchmarks/overlay_bench.py [--donations 100] [--overlays 100] [--pause 0.25]

What runs (all on loopback, the e2e harness of tests/e2e/harness.py): a redis-server
(appendonly yes), a SQLite ledger, two ``twistd -n ymds --roles web`` nodes and one
``--roles billing`` node, each a real process with TLS.  ``--overlays`` SSE clients (one
thread each, plain blocking sockets, in a child process of their own so that their threads
cannot delay this process reading the 200) connect to ``/overlay/<token>/events``, half to
each web node; the token comes from ``ymds overlay-url``.  Both processes stamp times with
CLOCK_MONOTONIC (time.monotonic), which is one clock for the whole machine.

For each donation: billing makes a public donation invoice (create_donation and
donation_public over the job queue, as the web role does), then one YooMoney notification
for it, signed like YooMoney, is POSTed to web node 1.  t0 is the moment its 200 is read;
each overlay's latency is the arrival of the ``event: donation`` carrying that donation's
(unique) amount minus t0.  Donations go one after another, ``--pause`` seconds apart.
Prints p50/p90/p99/max over every (donation, overlay) pair and checks every overlay got
every alert exactly once.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import ssl
import subprocess
import sys
import time
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


class Cleanups:
    """What the harness's Cluster wants of a test case: addCleanup (run in reverse at the end)."""

    def __init__(self):
        self.items = []

    def addCleanup(self, f, *args, **kwargs):
        self.items.append((f, args, kwargs))

    def run(self):
        for f, args, kwargs in reversed(self.items):
            try:
                f(*args, **kwargs)
            except Exception as e:  # a cleanup must not hide the others
                print(f"cleanup {getattr(f, '__name__', f)} failed: {e}", file=sys.stderr)


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def notify(port: int, fields: dict) -> float:
    """POST one notification to the web node; the monotonic time its 200 was read."""
    from tests.support.notify_sender import encode
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    try:
        conn.request("POST", "/yoomoney/notify", encode(fields), {"content-type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        response.read()
        at = time.monotonic()
        if response.status != 200:
            raise RuntimeError(f"notification answered {response.status}")
        return at
    finally:
        conn.close()


async def run(reactor, args) -> dict:
    from twisted.internet import task, threads

    from tests.e2e.harness import NOTIFICATION_SECRET, Cluster, wait_until
    from tests.e2e.test_overlay_e2e import overlay_url
    from tests.support.notify_sender import notification_fields
    from ymds.billing.jobs import BillingClient
    from ymds.billing.overlay_jobs import OverlayClient

    cleanups = Cleanups()
    try:
        cluster = Cluster(cleanups, telegram=False)
        sections = {"overlay": {"max_connections_per_token": args.overlays}}
        web1 = cluster.node("web1", "web", **sections)
        web2 = cluster.node("web2", "web", **sections)
        cluster.node("billing", "billing", **sections)
        alerts = await threads.deferToThread(overlay_url, web1.config_path, cluster.dir)
        token = alerts.split("/overlay/", 1)[1].split("/", 1)[0]
        # the overlays run in a process of their own, so their threads do not delay the
        # reading of the notification's 200 here (both sides stamp CLOCK_MONOTONIC)
        readers = subprocess.Popen([sys.executable, __file__, "--readers", f"{web1.port},{web2.port}", token,
                                    str(args.overlays), str(args.donations)],
                                   stdout=subprocess.PIPE, text=True, cwd=ROOT)
        cleanups.addCleanup(readers.kill)
        ready = await threads.deferToThread(readers.stdout.readline)
        if ready.strip() != "ready":
            raise RuntimeError(f"the overlays did not connect: {ready!r}")
        queue = await cluster.queue()
        billing, overlay = BillingClient(queue, timeout=30), OverlayClient(queue, timeout=30)
        sent: dict[str, float] = {}
        for i in range(args.donations):
            amount = Decimal(100 + i).quantize(Decimal("0.01"))
            created = await billing.create_donation(amount, f"Bench {i}", "")
            await overlay.donation_public(created.label, f"Bench {i}")
            fields = notification_fields(NOTIFICATION_SECRET, amount, created.label)
            sent[str(amount)] = await threads.deferToThread(notify, web1.port, fields)
            await task.deferLater(reactor, args.pause, lambda: None)
        arrivals = json.loads(await threads.deferToThread(readers.stdout.readline))
        latencies, duplicates, missing = [], 0, 0
        for events in arrivals:
            seen: dict[str, float] = {}
            for amount, at in events:
                duplicates += amount in seen
                seen[amount] = at
            missing += len(set(sent) - set(seen))
            latencies += [(seen[a] - t0) * 1000 for a, t0 in sent.items() if a in seen]
        return {"donations": args.donations, "overlays": args.overlays, "samples": len(latencies),
                "duplicates": duplicates, "missing": missing, "p50_ms": round(percentile(latencies, 50), 1),
                "p90_ms": round(percentile(latencies, 90), 1), "p99_ms": round(percentile(latencies, 99), 1),
                "max_ms": round(max(latencies), 1), "min_ms": round(min(latencies), 1)}
    finally:
        cleanups.run()


def serve_readers(ports: str, token: str, overlays: int, donations: int) -> None:
    """The child: ``overlays`` SSE clients over the given web ports; prints "ready" once all
    are connected, then one JSON line: per overlay, [amount, arrival time] of each donation."""
    from tests.e2e.test_overlay_e2e import SSEReader
    nodes = [int(p) for p in ports.split(",")]
    readers = [SSEReader("127.0.0.1", nodes[i % len(nodes)], f"/overlay/{token}/events").start()
               for i in range(overlays)]
    deadline = time.monotonic() + 60
    while not all(r.events for r in readers) and time.monotonic() < deadline:
        time.sleep(0.05)
    print("ready", flush=True)
    deadline = time.monotonic() + 60 + donations * 2
    while time.monotonic() < deadline and not all(len(r.of("donation")) >= donations for r in readers):
        time.sleep(0.05)
    time.sleep(1.0)  # a duplicate would arrive by now
    out = [[[d["amount"], at] for (kind, _, d), at in zip(r.events, r.times) if kind == "donation"] for r in readers]
    print(json.dumps(out), flush=True)
    for r in readers:
        r.stop()


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--readers":
        serve_readers(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--donations", type=int, default=100, help="donations, one after another (default 100)")
    parser.add_argument("--overlays", type=int, default=100, help="SSE overlays, half per web node (default 100)")
    parser.add_argument("--pause", type=float, default=0.25, help="seconds between donations (default 0.25)")
    args = parser.parse_args()
    from twisted.internet import defer, task

    def go(reactor):
        d = defer.Deferred.fromCoroutine(run(reactor, args))
        return d.addCallback(lambda result: print(json.dumps(result)))

    task.react(go)


if __name__ == "__main__":
    main()
