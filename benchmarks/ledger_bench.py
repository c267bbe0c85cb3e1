"""Ledger benchmarks: apply_payment throughput and the reminder/expiry sweep.

    .venv/bin/python benchmarks/ledger_bench.py [--payments 5000] [--subscriptions 100000] [--skip-postgres]

- apply_payment payments/s: subscription invoices are created first (not timed), then every
  one is paid through ledger.payments.apply_payment with up to 64 calls outstanding, as the billing
  worker's concurrency would have them.  SQLite (one process; WAL, synchronous=FULL) and
  PostgreSQL (one process, and two processes each paying half at the same moment).
- the apply_payment task (BillingTasks): the ledger call plus the blocked-chat check, the bot
  jobs (to an in-memory IJobQueue) and the notified mark, one process.
- the sweep: 100,000 subscriptions whose ends are spread from one day ago to 99 days ahead;
  one BillingTimers.tick() (expire invoices, 3-day and 1-day reminders, expiry) with an
  in-memory IJobQueue, i.e. the ledger and timer work without Redis round trips; then a
  second tick with nothing left to do.

PostgreSQL comes from tests/support/postgres.py (YMDS_TEST_PG), a fresh database per run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from decimal import Decimal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from twisted.internet import defer, task  # noqa: E402
from zope.interface import implementer  # noqa: E402

from ymds.billing.open import open_ledger  # noqa: E402
from ymds.queue.interfaces import IJobQueue  # noqa: E402

T0 = 1_780_000_000.0
DAY = 86400.0


@implementer(IJobQueue)
class NullQueue:
    def __init__(self):
        self.count = 0

    def enqueue(self, queue, task, args, key=None, delay=None):
        self.count += 1
        return defer.succeed("job")

    def call(self, queue, task, args, timeout=10.0):
        return defer.fail(NotImplementedError())


def fields(op, label):
    return {"notification_type": "card-incoming", "operation_id": op, "amount": "193.03", "withdraw_amount": "199.00",
            "currency": "643", "datetime": "2026-05-28T10:00:00Z", "sender": "", "codepro": "false", "label": label,
            "unaccepted": "false"}


async def make_invoices(ledger, n, chats=1000):
    labels = []
    for i in range(n):
        inv = await ledger.invoices.create_invoice("subscription", Decimal("199.00"), T0, 3 * DAY, plan="month", days=30,
                                          chat_id=1 + i % chats)
        labels.append(inv.label)
    return labels


async def pay_all(ledger, payments, concurrency=64):
    it = iter(payments)

    async def lane():
        for op, label in it:
            result = await ledger.payments.apply_payment(fields(op, label), "notification", T0 + 60)
            assert result.outcome == "paid", result.outcome

    started = time.perf_counter()
    await defer.gatherResults([defer.Deferred.fromCoroutine(lane()) for _ in range(concurrency)])
    return time.perf_counter() - started


async def bench_payments(reactor, url, n):
    ledger = open_ledger(url, reactor)
    await ledger.migrate()
    labels = await make_invoices(ledger, n)
    elapsed = await pay_all(ledger, [(f"op-{i}", label) for i, label in enumerate(labels)])
    page = await ledger.payments.list_payments(limit=1)
    assert page.payments, "nothing recorded"
    await ledger.close()
    return n / elapsed, elapsed


async def bench_task_path(reactor, url, n):
    """The billing task (ledger, blocked check, bot jobs to an in-memory queue, notified mark)."""
    from ymds.billing.jobs import ApplyPayment
    from ymds.billing.tasks import BillingTasks
    from ymds.config import load_config
    ledger = open_ledger(url, reactor)
    await ledger.migrate()
    labels = await make_invoices(ledger, n)
    config = load_config(raw={"telegram": {"channel_id": -100123}, "links": {"secret": "x" * 32},
                              "plans": [{"id": "month", "title": "1 month", "price": "199.00", "days": 30}]}, env={})
    clock = task.Clock()
    clock.advance(T0 + 60)
    queue = NullQueue()
    tasks = BillingTasks(config, ledger, queue, clock)
    it = iter(enumerate(labels))

    async def lane():
        for i, label in it:
            result = await tasks.payments.apply_payment(ApplyPayment(fields(f"op-{i}", label), "notification"))
            assert result.outcome == "paid", result

    started = time.perf_counter()
    await defer.gatherResults([defer.Deferred.fromCoroutine(lane()) for _ in range(64)])
    elapsed = time.perf_counter() - started
    # One confirmation per payment; an invitation only for a chat's first purchase (a renewal of
    # someone already in the channel sends none): make_invoices spreads n over 1,000 chats.
    assert queue.count == n + min(n, 1000), queue.count
    await ledger.close()
    return n / elapsed, elapsed


CHILD = r"""
import json, sys, time
sys.path.insert(0, %(root)r)
from twisted.internet import defer, task
from ymds.billing.open import open_ledger
from benchmarks.ledger_bench import pay_all

async def main(reactor):
    ledger = open_ledger(%(url)r, reactor)
    await ledger.migrate()
    await ledger.invoices.get_invoice("warm-up-label")
    payments = [tuple(p) for p in json.loads(sys.stdin.readline())]
    print("ready", flush=True)
    sys.stdin.readline()
    elapsed = await pay_all(ledger, payments)
    print(json.dumps({"elapsed": elapsed, "n": len(payments)}), flush=True)
    await ledger.close()

task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
"""


async def bench_two_processes(reactor, url, n):
    ledger = open_ledger(url, reactor)
    await ledger.migrate()
    labels = await make_invoices(ledger, n)
    payments = [(f"op-{i}", label) for i, label in enumerate(labels)]
    halves = [payments[0::2], payments[1::2]]
    children = [subprocess.Popen([sys.executable, "-c", CHILD % {"root": ROOT, "url": url}], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True) for _ in halves]
    for child, half in zip(children, halves):
        child.stdin.write(json.dumps(half) + "\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "ready"
    started = time.perf_counter()
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    for child in children:
        child.stdin.close()
        child.stdout.readline()
        child.wait()
    elapsed = time.perf_counter() - started
    count = len((await ledger.payments.list_payments(limit=n + 1)).payments)
    assert count == n, count
    await ledger.close()
    return n / elapsed, elapsed


async def bench_sweep(reactor, url, n):
    from ymds.billing.tasks import BillingTasks
    from ymds.billing.timers import BillingTimers
    from ymds.config import load_config

    ledger = open_ledger(url, reactor)
    await ledger.migrate()
    d = ledger.db.dialect
    rows = [(i, "month", T0 - DAY + (i * 100 * DAY) / n, T0) for i in range(1, n + 1)]

    def load(txn):
        txn.executemany(d.sql("INSERT INTO subscriptions (chat_id, plan, ends_at, updated_at, reminded_window, expired) "
                              "VALUES (?, ?, ?, ?, NULL, 0)"), rows)
    await ledger.db.pool.runInteraction(load)
    config = load_config(raw={"telegram": {"channel_id": -100123}, "links": {"secret": "x" * 32}}, env={})
    clock = task.Clock()
    clock.advance(T0)
    queue = NullQueue()
    timers = BillingTimers(config, ledger, queue, clock, BillingTasks(config, ledger, queue, clock))
    started = time.perf_counter()
    report = await timers.tick()
    first = time.perf_counter() - started
    started = time.perf_counter()
    await timers.tick()
    second = time.perf_counter() - started
    await ledger.close()
    return first, second, report, queue.count


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=5000)
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--skip-postgres", action="store_true")
    options = parser.parse_args(argv)
    results = {}

    async def run(reactor):
        directory = tempfile.mkdtemp(prefix="ymds-bench-")
        rate, elapsed = await bench_payments(reactor, f"sqlite:///{directory}/pay.sqlite3", options.payments)
        results["sqlite apply_payment, 1 process"] = f"{rate:,.0f} payments/s ({options.payments} in {elapsed:.2f} s)"
        rate, elapsed = await bench_task_path(reactor, f"sqlite:///{directory}/task.sqlite3", options.payments)
        results["sqlite apply_payment task incl. follow-up"] = f"{rate:,.0f} payments/s ({options.payments} in {elapsed:.2f} s)"
        first, second, report, jobs = await bench_sweep(reactor, f"sqlite:///{directory}/sweep.sqlite3", options.subscriptions)
        results["sqlite sweep"] = (f"{first:.2f} s first tick ({report['reminders']} reminders, "
                                   f"{report['expired_subscriptions']} expiries, {jobs} jobs), {second:.3f} s idle tick")
        if not options.skip_postgres:
            from tests.support.postgres import create_database, drop_database
            for label, bench in (("postgresql apply_payment, 1 process", bench_payments),
                                 ("postgresql apply_payment task incl. follow-up", bench_task_path),
                                 ("postgresql apply_payment, 2 processes", bench_two_processes)):
                url = create_database()
                try:
                    rate, elapsed = await bench(reactor, url, options.payments)
                finally:
                    drop_database(url)
                results[label] = f"{rate:,.0f} payments/s ({options.payments} in {elapsed:.2f} s)"
            url = create_database()
            try:
                first, second, report, jobs = await bench_sweep(reactor, url, options.subscriptions)
            finally:
                drop_database(url)
            results["postgresql sweep"] = (f"{first:.2f} s first tick ({report['reminders']} reminders, "
                                           f"{report['expired_subscriptions']} expiries, {jobs} jobs), {second:.3f} s idle tick")
        for name, value in results.items():
            print(f"{name}: {value}")

    task.react(lambda reactor: defer.ensureDeferred(run(reactor)))


if __name__ == "__main__":
    main()
