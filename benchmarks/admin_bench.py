"""The dashboard on a big ledger: the overview must answer in < 200 ms p99 with 1,000,000 payments.

    .venv/bin/python benchmarks/admin_bench.py [--payments 1000000] [--rounds 300] [--skip-postgres]

The ledger is filled fast with direct SQL (SQLite: executemany in one transaction;
PostgreSQL: COPY): ``--payments`` payments spread over the last 365 days, half against
subscription invoices (one invoice each, 50,000 chats), half donations without an
invoice, and 50,000 subscriptions ending from 30 days ago to 30 days ahead.  The
dashboard's money figures are then written as live payments leave them (every half hour
spread over its 16 slots by operation id), and report_chats by migration 006's own
backfill statement; then one ReportStore.fold (what billing's ReportFolder does every ten
minutes) folds the half hours older than an hour into one row each (timed: first_fold).

Measured, ``--rounds`` sequential calls each after 20 warm-up calls:
- billing's ``dashboard_overview`` handler (AdminTasks.overview: money today / 7 / 30 local
  days, subscriber counts, open quarantine, dead letters from a real redis-server, the last
  ten payments);
- billing's ``dashboard_money`` for the 365-day chart (366 local-day edges);
- the HTTP page GET /admin with a signed-in session (Redis sessions, the web side's
  BillingDashboardData, the AdminClient's call answered in-process through the job codec:
  everything but the Redis hop of the job queue, which ``queue_bench.py`` measures).

PostgreSQL comes from tests/support/postgres.py (YMDS_TEST_PG), a fresh database per run.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from twisted.internet import defer, task  # noqa: E402

from ymds.billing.open import open_ledger  # noqa: E402
from ymds.billing.sql import SCHEMA_DIR, statements  # noqa: E402

DAY = 86400.0
CHATS = 50_000
TZ = ZoneInfo("Europe/Moscow")


def rows(n: int, now: float) -> tuple[list[tuple], list[tuple]]:
    """(payments, invoices) as tuples for the direct inserts."""
    payments, invoices = [], []
    for i in range(n):
        at = now - (i / n) * 365 * DAY
        if i % 2 == 0:
            label, chat = f"inv{i}", (i // 2) % CHATS
            invoices.append((label, "subscription", "month", 30, chat, "199.00", "paid", at - 60, at + DAY, at, f"op{i}"))
            payments.append((f"op{i}", label, label, "199.00", "paid", at, chat, at + 30 * DAY))
        else:
            payments.append((f"op{i}", "", None, f"{100 + i % 900}.50", "unmatched", at, None, None))
    return payments, invoices


def chats_backfill(dialect: str) -> list[str]:
    """Migration 006's own statement that fills report_chats from the payments."""
    with open(os.path.join(SCHEMA_DIR, f"006_reports.{dialect}.sql"), encoding="utf-8") as f:
        return [s for s in statements(f.read()) if s.upper().startswith("INSERT INTO REPORT_CHATS")]


def money_rows(payments: list[tuple]) -> list[tuple]:
    """report_money as live payments leave it: every payment in its half hour, kind and slot
    (the 006 backfill of an upgraded ledger puts all in slot 0, which would flatter the reads)."""
    from ymds.billing.stores.reports import bucket_of, kopecks, slot_of
    from decimal import Decimal
    totals: dict[tuple, list[int]] = {}
    for op, label, inv, amount, status, at, chat, granted in payments:
        key = (bucket_of(at), "subscription" if inv else "donation", slot_of(op))
        entry = totals.setdefault(key, [0, 0])
        entry[0] += kopecks(Decimal(amount))
        entry[1] += 1
    return [(*k, v[0], v[1]) for k, v in totals.items()]


def fill_sqlite(path: str, n: int, now: float) -> None:
    payments, invoices = rows(n, now)
    db = sqlite3.connect(path)
    with db:
        db.executemany("INSERT INTO invoices (label, kind, plan, days, chat_id, amount, status, created_at, expires_at, "
                       "paid_at, operation_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", invoices)
        db.executemany("INSERT INTO payments (operation_id, label, invoice_label, amount, withdraw_amount, status, source, "
                       "received_at, accepted_at, chat_id, granted_until) VALUES (?, ?, ?, ?, ?4, ?5, 'notification', "
                       "?6, ?6, ?7, ?8)", payments)
        db.executemany("INSERT INTO subscriptions (chat_id, plan, ends_at, updated_at) VALUES (?, 'month', ?, ?)",
                       [(c, now + (c / CHATS - 0.5) * 60 * DAY, now) for c in range(CHATS)])
        db.executemany("INSERT INTO report_money (bucket, kind, slot, amount, count) VALUES (?, ?, ?, ?, ?)",
                       money_rows(payments))
        for s in chats_backfill("sqlite"):
            db.execute(s)
    db.execute("ANALYZE")
    db.close()


def fill_postgres(url: str, n: int, now: float) -> None:
    import psycopg
    payments, invoices = rows(n, now)
    with psycopg.connect(url) as conn:
        with conn.cursor() as cur:
            with cur.copy("COPY invoices (label, kind, plan, days, chat_id, amount, status, created_at, expires_at, "
                          "paid_at, operation_id) FROM STDIN") as copy:
                for r in invoices:
                    copy.write_row(r)
            with cur.copy("COPY payments (operation_id, label, invoice_label, amount, withdraw_amount, status, source, "
                          "received_at, accepted_at, chat_id, granted_until) FROM STDIN") as copy:
                for op, label, inv, amount, status, at, chat, granted in payments:
                    copy.write_row((op, label, inv, amount, amount, status, "notification", at, at, chat, granted))
            with cur.copy("COPY subscriptions (chat_id, plan, ends_at, updated_at) FROM STDIN") as copy:
                for c in range(CHATS):
                    copy.write_row((c, "month", now + (c / CHATS - 0.5) * 60 * DAY, now))
            with cur.copy("COPY report_money (bucket, kind, slot, amount, count) FROM STDIN") as copy:
                for r in money_rows(payments):
                    copy.write_row(r)
            for s in chats_backfill("postgresql"):
                cur.execute(s)
        conn.commit()
        conn.execute("ANALYZE")


def percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"p50_ms": round(s[len(s) // 2] * 1000, 1), "p99_ms": round(s[int(len(s) * 0.99) - 1] * 1000, 1),
            "max_ms": round(s[-1] * 1000, 1)}


async def timed(call: Any, rounds: int) -> dict[str, float]:
    for _ in range(20):
        await call()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return percentiles(samples)


async def measure(reactor: Any, url: str, redis_url: str, rounds: int, now: float) -> dict[str, Any]:
    import treq
    from twisted.web.server import Site

    from tests.support.queues import RecordingQueue, registry_of
    from ymds.admin.billing_data import BillingDashboardData, local_midnight
    from ymds.admin.resource import AdminResource
    from ymds.admin.sessions import AdminSessions
    from ymds.billing.admin import AdminTasks, RedisDeadLetters
    from ymds.billing.admin_jobs import AdminClient, MoneyQuery, OverviewQuery
    from ymds.config import load_config
    from ymds.queue import codec
    from ymds.queue.redis import RedisPool, parse_redis_url

    config = load_config(raw={"redis": {"url": redis_url, "prefix": "bench"}, "server": {"timezone": "Europe/Moscow"}},
                         env={})
    clock = task.Clock()
    clock.advance(now)
    ledger = open_ledger(url, reactor)
    await ledger.migrate()
    started = time.perf_counter()
    folded = await ledger.reports.fold(now - 3600)  # what billing's ReportFolder keeps doing
    fold_seconds = round(time.perf_counter() - started, 1)
    pool = RedisPool(reactor, parse_redis_url(redis_url), name="bench")
    jobs = RecordingQueue()
    jobs.pool = pool  # like the billing role's RedisJobQueue: dead letters are counted over its pool
    admin = AdminTasks(config, ledger, jobs, clock, RedisDeadLetters(reactor, config.redis, jobs))
    data = BillingDashboardData(AdminClient(RecordingQueue()), TZ)
    at = datetime.fromtimestamp(now, timezone.utc).astimezone(TZ)
    today = at.date()
    from datetime import timedelta
    tomorrow = today + timedelta(days=1)
    overview_edges = tuple(local_midnight(tomorrow - timedelta(days=k), TZ) for k in (30, 7, 1, 0))
    year_edges = tuple(local_midnight(tomorrow - timedelta(days=k), TZ) for k in range(365, -1, -1))
    result: dict[str, Any] = {"first_fold": f"{folded} rows in {fold_seconds} s"}
    result["overview"] = await timed(lambda: admin.overview(OverviewQuery(now, now - 30 * DAY, overview_edges)), rounds)
    result["money_365_days"] = await timed(lambda: admin.money(MoneyQuery(year_edges)), rounds)
    overview = await admin.overview(OverviewQuery(now, now - 30 * DAY, overview_edges))
    recount: dict[str, Any] = {}
    for b in await ledger.reports.recount(overview_edges[0], overview_edges[-1]):  # a scan of payments
        recount[b.kind] = recount.get(b.kind, 0) + b.amount
    kept = _sum(overview.money)
    result["check"] = {"30d": {k: str(v) for k, v in kept.items()}, "active": overview.active,
                       "equals_recount": all(kept[k] == recount.get(k, 0) for k in kept)}

    registry = registry_of(admin)

    def wire(name: str) -> Any:
        async def call(args: Any) -> Any:
            return codec.loads(codec.dumps(await registry.lookup(name)(codec.loads(codec.dumps(args)))))
        return call
    data.client.queue = RecordingQueue({name: wire(name) for name in admin.handlers()})
    sessions = AdminSessions(pool, clock, prefix="bench")
    resource = AdminResource(sessions, data, clock, "Europe/Moscow", "ru")
    from twisted.web.resource import Resource
    root = Resource()
    root.putChild(b"admin", resource)
    port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
    session = await sessions.redeem(await sessions.issue_login_token(10, "bench"))
    page = f"http://127.0.0.1:{port.getHost().port}/admin"

    async def get() -> None:
        response = await treq.get(page, headers={"Cookie": f"ymds_admin={session}"})
        body = await response.content()
        assert response.code == 200 and b"<svg" in body, (response.code, body[:200])
    try:
        result["http_admin_page"] = await timed(get, max(50, rounds // 3))
    finally:
        await port.stopListening()
        await pool.close()
        await ledger.close()
    return result


def _sum(money: Any) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for interval in money:
        for k, v in interval.items():
            total[k] = total.get(k, 0) + v
    return total


async def main(reactor: Any, args: argparse.Namespace) -> None:
    from tests.support.redis_server import RedisServer
    now = time.time()
    redis = RedisServer(appendonly=False).start()
    results: dict[str, Any] = {}
    try:
        for engine in ["sqlite"] + ([] if args.skip_postgres else ["postgresql"]):
            cleanup = None
            if engine == "sqlite":
                url = "sqlite:///" + os.path.join(tempfile.mkdtemp(prefix="ymds-admin-bench-"), "ledger.sqlite3")
            else:
                from tests.support.postgres import create_database, drop_database
                url = create_database()
                cleanup = url
            try:
                ledger = open_ledger(url, reactor)
                await ledger.migrate()  # the schema, with an empty 006 backfill
                await ledger.close()
                started = time.perf_counter()
                if engine == "sqlite":
                    fill_sqlite(url[len("sqlite:///"):], args.payments, now)
                else:
                    fill_postgres(url, args.payments, now)
                results[engine] = {"fill_seconds": round(time.perf_counter() - started, 1),
                                   **await measure(reactor, url, redis.url, args.rounds, now)}
                print(engine, results[engine], flush=True)
            finally:
                if cleanup:
                    drop_database(cleanup)
    finally:
        redis.cleanup()
    print({"payments": args.payments, "rounds": args.rounds, **results})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--payments", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--skip-postgres", action="store_true")
    options = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, options)))
