"""Soak: mixed traffic at a steady payment rate for a long time, resident memory sampled.

Not part of CI.  Starts the split layout on loopback (node 1 ``--roles web,bot``, nodes 2
and 3 ``--roles billing``, a PostgreSQL server of its own, Redis with appendonly, the fake
Bot API enforcing Telegram's limits) and drives, every second:

- ``rate`` payments: 10% subscriptions (an invoice made through ``billing.create_invoices``
  as the bot would, then its signed notification; the user gets a confirmation and an invite
  link through the fake Bot API, 2 messages per payment, within Telegram's 30/s) and 90%
  payments without an invoice (kept as unmatched donations; owner alerts go to an empty
  admin list so they cost a job but no message);
- 10% of the notifications delivered a second time (YooMoney's retries);
- 20 page views (``GET /pay/<token>``) and one forged notification (403, quarantined).

The RSS of each ymds process is read from /proc every ``--sample`` seconds.  After the
warm-up, growth of more than 20% over the warm-up sample (for any process) is a failure.
At the end the traffic stops, the queues drain and the exact counts are checked as in the
fault suite: one ledger row per accepted payment, every subscriber told once.

    nice -n 10 .venv/bin/python benchmarks/soak.py                 # 30 min at 100 payments/s
    .venv/bin/python benchmarks/soak.py --minutes 2 --rate 20 --sample 10 --warmup 0.5   # a smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, reactor, task, threads  # noqa: E402

from tests.e2e import harness  # noqa: E402
from tests.e2e.harness import NOTIFICATION_SECRET, Cluster, rss_kib  # noqa: E402
from tests.support import webflow  # noqa: E402
from tests.support.notify_sender import encode, notification_fields  # noqa: E402


class Cleanups:
    """What a trial TestCase gives the harness: addCleanup, run at the end in reverse."""

    def __init__(self):
        self._calls = []

    def addCleanup(self, f, *args, **kw):
        self._calls.append((f, args, kw))

    def run(self):
        for f, args, kw in reversed(self._calls):
            try:
                result = f(*args, **kw)
                if isinstance(result, defer.Deferred):
                    result.addErrback(lambda _: None)
            except Exception as e:  # keep cleaning up
                print(f"cleanup {getattr(f, '__name__', f)}: {e}", file=sys.stderr)


class Soak:
    def __init__(self, args):
        self.args = args
        self.cleanups = Cleanups()
        self.rng = random.Random(30)
        self.samples: list[dict] = []
        self.subscribers: dict[int, str] = {}   # chat -> label
        self.accepted_ops: set[str] = set()
        self.counts = Counter()
        self.next_chat = 300_000
        self.pay_urls: list[str] = []
        self.inflight = 0

    # -- set-up --

    def start(self):
        harness.QUEUE.update({"visibility_timeout": 30, "retry_base": 0.5, "retry_max": 10, "max_attempts": 50})
        cluster = self.cluster = Cluster(self.cleanups, ledger=self.args.ledger, telegram=True)
        cluster.config_document = self._config(cluster.config_document)
        self.billing = [cluster.node("billing2", "billing"), cluster.node("billing3", "billing")]
        self.web = cluster.node("web", "web,bot")
        self.sender = cluster.sender(self.web, concurrency=1, retry_delay=0.5)
        reactor.suggestThreadPoolSize(self.args.threads)

    @staticmethod
    def _config(original):
        def document(node):
            doc = original(node)
            doc["telegram"]["admins"] = []  # owner alerts are jobs without messages
            return doc
        return document

    # -- traffic --

    def deliver(self, body: bytes, op: str):
        def done(tries):
            self.counts["delivered"] += 1
            self.counts["tries"] += tries
            self.accepted_ops.add(op)
        self.inflight += 1
        d = threads.deferToThread(self.sender.deliver, body)
        d.addCallback(done)
        d.addErrback(lambda f: self.counts.update(["delivery_failed"]))
        d.addBoth(lambda _: setattr(self, "inflight", self.inflight - 1))
        if self.rng.random() < 0.10:  # YooMoney sends this one again
            self.counts["redelivered"] += 1
            d2 = threads.deferToThread(self.sender.deliver, body)
            d2.addErrback(lambda f: self.counts.update(["delivery_failed"]))

    async def subscription(self):
        chat = self.next_chat
        self.next_chat += 1
        try:
            invoice = (await self.cluster.create_invoices([chat]))[chat]
        except Exception as e:
            self.counts["rpc_failed"] += 1
            print(f"create_invoices failed: {e}", file=sys.stderr)
            return
        self.subscribers[chat] = invoice["label"]
        if len(self.pay_urls) < 500:
            self.pay_urls.append(invoice["url"])
        fields = notification_fields(NOTIFICATION_SECRET, invoice["amount"], invoice["label"])
        self.counts["subscriptions"] += 1
        self.deliver(encode(fields), fields["operation_id"])

    def unmatched(self):
        fields = notification_fields(NOTIFICATION_SECRET, f"{self.rng.randint(10, 5000)}.00", "")
        self.counts["unmatched"] += 1
        self.deliver(encode(fields), fields["operation_id"])

    def page_view(self):
        if self.pay_urls:
            url = self.rng.choice(self.pay_urls)
            d = threads.deferToThread(webflow.request, url)
            d.addCallback(lambda r: self.counts.update([f"page_{r[0]}"]))
            d.addErrback(lambda f: self.counts.update(["page_error"]))

    def forged(self):
        fields = notification_fields("forged-secret-xxxxxxxxxxxxxxxx", "100.00", "")
        d = threads.deferToThread(self.sender.post_once, encode(fields))
        d.addCallback(lambda status: self.counts.update([f"forged_{status}"]))

    def tick(self):
        """One tenth of a second of traffic."""
        if self.inflight > self.args.rate * 20:  # the node fell far behind: say so rather than pile up
            self.counts["ticks_skipped"] += 1
            return
        per_tick = self.args.rate / 10
        self._carry = getattr(self, "_carry", 0.0) + per_tick
        n, self._carry = int(self._carry), self._carry - int(self._carry)
        for _ in range(n):
            if self.rng.random() < 0.10:
                defer.Deferred.fromCoroutine(self.subscription())
            else:
                self.unmatched()
        for _ in range(2):
            self.page_view()
        if self.rng.random() < 0.1:
            self.forged()

    # -- measuring --

    def sample(self):
        now = time.monotonic() - self.t0
        row = {"t": round(now), "rss_kib": {}}
        for node in [self.web] + self.billing:
            try:
                row["rss_kib"][node.name] = rss_kib(node.pid)
            except OSError:
                row["rss_kib"][node.name] = None
        row["payments"] = self.cluster.ledger.payments()
        row["billing"] = self.cluster.queue_state("billing")
        row["bot"] = self.cluster.queue_state("bot")
        row["redis_used_memory"] = int(next(line.split(":")[1] for line in self.cluster.r("INFO", "memory").split("\r\n")
                                        if line.startswith("used_memory:")))
        self.samples.append(row)
        print(json.dumps(row), flush=True)

    async def run(self):
        self.start()
        self.t0 = time.monotonic()
        self.sample()
        traffic = task.LoopingCall(self.tick)
        traffic.start(0.1)
        sampler = task.LoopingCall(self.sample)
        sampler.start(self.args.sample, now=False)
        await task.deferLater(reactor, self.args.minutes * 60)
        traffic.stop()
        print("traffic stopped; draining", flush=True)
        deadline = time.monotonic() + 600
        while (self.inflight or not self.cluster.drained("billing") or not self.cluster.drained("bot")) \
                and time.monotonic() < deadline:
            await task.deferLater(reactor, 1)
        sampler.stop()
        self.sample()
        return self.verdict()

    def verdict(self) -> dict:
        warm = self.args.warmup * 60
        base = next((s for s in self.samples if s["t"] >= warm), self.samples[0])
        growth = {}
        for name, start in base["rss_kib"].items():
            later = [s["rss_kib"][name] for s in self.samples if s["t"] > base["t"] and s["rss_kib"].get(name)]
            if start and later:
                growth[name] = {"warm_kib": start, "end_kib": later[-1], "max_kib": max(later),
                                "growth_pct": round(100.0 * (later[-1] - start) / start, 1)}
        ledger = self.cluster.ledger
        rows = ledger.payment_rows()
        telegram = self.cluster.telegram.sent()
        per_chat = Counter(m["chat_id"] for m in telegram)
        checks = {
            "payments_in_ledger": len(rows),
            "accepted_operations": len(self.accepted_ops),
            "one_row_per_operation": len({r[0] for r in rows}) == len(rows) == len(self.accepted_ops),
            "subscribers": len(self.subscribers),
            "subscribers_told_exactly_twice": sum(1 for c in self.subscribers if per_chat[c] == 2),
            "billing_queue": self.cluster.queue_state("billing"),
            "bot_queue": self.cluster.queue_state("bot"),
            "stray_keys": self.cluster.stray_keys()[:10],
            "throttled": self.cluster.telegram.stats()["throttled"],
        }
        ok = (all(g["growth_pct"] <= 20.0 for g in growth.values())
              and checks["one_row_per_operation"]
              and checks["subscribers_told_exactly_twice"] == checks["subscribers"]
              and self.cluster.drained("billing") and self.cluster.drained("bot")
              and not checks["stray_keys"] and self.counts["delivery_failed"] == 0)
        return {"ok": ok, "minutes": self.args.minutes, "rate": self.args.rate, "warmup_minutes": self.args.warmup,
                "rss": growth, "checks": checks, "traffic": dict(self.counts), "samples": self.samples}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=100, help="payments per second")
    parser.add_argument("--sample", type=float, default=60, help="seconds between RSS samples")
    parser.add_argument("--warmup", type=float, default=5, help="minutes before the RSS baseline")
    parser.add_argument("--ledger", default="own-pg", choices=["own-pg", "sqlite", "pg"])
    parser.add_argument("--threads", type=int, default=48)
    parser.add_argument("--out", default="", help="write the result JSON here")
    args = parser.parse_args(argv)
    soak = Soak(args)
    outcome = {}

    async def go():
        try:
            outcome.update(await soak.run())
        finally:
            soak.cleanups.run()
            reactor.callLater(0.5, reactor.stop)

    reactor.callWhenRunning(lambda: defer.Deferred.fromCoroutine(go()).addErrback(
        lambda f: (f.printTraceback(), outcome.update({"ok": False, "error": f.getErrorMessage()}))))
    reactor.run()
    summary = {k: v for k, v in outcome.items() if k != "samples"}
    print(json.dumps(summary, indent=1, default=str))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(outcome, f, indent=1, default=str)
    return 0 if outcome.get("ok") else 1


if __name__ == "__main__":
    raise SystemExit(main())
