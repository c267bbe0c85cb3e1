"""The dashboard's per-half-hour money figures (ymds.billing.stores.reports) on both engines.

Property: after any sequence of payments (against subscription and donation invoices or
none), held payments and their release, duplicate deliveries (also with other amounts) and
reverifications of what is already applied, run partly concurrently, the kept figures equal
a full recount from the payments; and migration 006 backfills an existing ledger the same.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.trial import unittest

from tests.support.ledgers import LedgerTestMixin, PostgresLedgerMixin, SQLiteLedgerMixin
from ymds.billing.stores.reports import BUCKET, bucket_of

DAY = 86400.0
T0 = 1_780_000_000.0
AMOUNTS = ("199.00", "0.01", "1990.00", "12.34", "500.50")

# one step: (what, a, b, offset) — what: pay | held | found | dup | release | reverify | fold
# (fold: the billing timer folding the half hours before T0 + offset, concurrently with payments)
STEP = st.tuples(st.sampled_from(("pay", "pay", "held", "found", "dup", "release", "reverify", "fold")),
                 st.integers(0, 5), st.integers(0, len(AMOUNTS) - 1), st.floats(0, 40 * DAY))
SEQUENCE = st.lists(STEP, min_size=1, max_size=25)


def examples(strategy: Any, count: int) -> list[Any]:
    """``count`` values drawn by hypothesis (trial runs async tests, which @given cannot)."""
    found: list[Any] = []

    @settings(max_examples=count, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value: Any) -> None:
        found.append(value)
    collect()
    return found


def fields(op: str, label: str, amount: str) -> dict[str, str]:
    return {"notification_type": "card-incoming", "operation_id": op, "amount": amount, "withdraw_amount": amount,
            "currency": "643", "datetime": "2026-05-28T10:00:00Z",  # before T0: a found payment's own time "sender": "", "codepro": "false",
            "label": label, "unaccepted": "false"}


class ReportsContract(LedgerTestMixin):
    async def labels(self, tag: str) -> list[str]:
        inv = self.ledger.invoices
        made = [await inv.create_invoice("subscription", Decimal("199.00"), T0, 60 * DAY, plan="month", days=30,
                                         chat_id=100 + n) for n in range(2)]
        made += [await inv.create_invoice("donation", Decimal("500.50"), T0, 60 * DAY) for _ in range(2)]
        return [i.label for i in made] + ["", f"someone-else-{tag}"]

    async def run_steps(self, tag: str, steps: list[tuple[str, int, int, float]]) -> None:
        labels = await self.labels(tag)
        applied: list[tuple[str, str, str]] = []  # (op, label, amount) sent so far
        pay = self.ledger.payments.apply_payment
        calls = []
        for n, (what, a, b, offset) in enumerate(steps):
            now = T0 + offset
            if what == "fold":
                calls.append(self.ledger.reports.fold(now))
            elif what in ("pay", "held", "found") or not applied:
                op = f"{tag}-{n}"
                applied.append((op, labels[a], AMOUNTS[b]))
                # "found": reconciliation finds it later; it counts when it was paid (its datetime)
                source = "reconcile" if what == "found" else "notification"
                calls.append(pay(fields(op, labels[a], AMOUNTS[b]), source, now, held=what == "held"))
            else:
                op, label, amount = applied[a % len(applied)]
                if what == "dup":  # the same delivery again, sometimes with other money
                    calls.append(pay(fields(op, label, AMOUNTS[b] if a % 2 else amount), "notification", now))
                elif what == "release":
                    calls.append(pay(fields(op, label, amount), "reconcile", now, held=False))
                else:
                    calls.append(pay(fields(op, label, amount), "notification", now))
            if len(calls) == 4:  # a few at a time: concurrent updates of one bucket
                await defer.gatherResults(calls, consumeErrors=True)
                calls = []
        await defer.gatherResults(calls, consumeErrors=True)

    async def assert_figures_equal_recount(self) -> None:
        since, until = T0 - DAY, T0 + 60 * DAY
        kept = await self.ledger.reports.money(since, until)
        recounted = await self.ledger.reports.recount(bucket_of(since) * BUCKET, (bucket_of(until) + 1) * BUCKET)
        self.assertEqual(kept, recounted)  # type: ignore[attr-defined]
        # the database's sums between (local-midnight-like) edges agree with the recount too
        edges = [T0 - DAY + 10_800 + n * DAY - (n // 3 % 3) * 1800 + 0.5 * (n % 2) for n in range(0, 62, 3)]
        expected = [{"subscription": Decimal("0.00"), "donation": Decimal("0.00")} for _ in edges[1:]]
        for b in recounted:
            for i, (lo, hi) in enumerate(zip(edges, edges[1:])):
                if lo <= b.bucket * BUCKET < hi:
                    expected[i][b.kind] += b.amount
        self.assertEqual(await self.ledger.reports.money_between(edges), expected)  # type: ignore[attr-defined]

    async def test_figures_equal_a_recount_after_any_sequence(self) -> None:
        for n, steps in enumerate(examples(SEQUENCE, 25)):
            await self.run_steps(f"e{n}", steps)
            await self.assert_figures_equal_recount()
        self.assertTrue(await self.ledger.reports.money(T0 - DAY, T0 + 60 * DAY))  # type: ignore[attr-defined]

    async def test_migration_backfills_an_existing_ledger(self) -> None:
        await self.run_steps("m", [("pay", 0, 0, 10.0), ("held", 2, 1, 4000.0), ("pay", 4, 2, DAY),
                                   ("release", 1, 0, 2 * DAY), ("pay", 2, 3, 3 * DAY), ("held", 3, 4, 5.0)])
        before = await self.ledger.reports.money(T0 - DAY, T0 + 60 * DAY)

        def forget(txn: Any) -> None:
            for table in ("report_money", "report_chats", "report_active", "admin_actions"):
                txn.execute(f"DROP TABLE {table}")
            txn.execute("DELETE FROM schema_version WHERE version = 6")
        await self.ledger.db.pool.runInteraction(forget)
        await self.ledger.migrate()
        self.assertEqual(await self.ledger.reports.money(T0 - DAY, T0 + 60 * DAY), before)  # type: ignore[attr-defined]
        await self.assert_figures_equal_recount()
        counts = await self.ledger.reports.subscriber_counts(T0 + 3 * DAY, T0 - DAY)
        self.assertEqual((counts.active, counts.new), (1, 1))  # type: ignore[attr-defined]

    async def test_fold_keeps_the_figures_in_one_row_per_half_hour(self) -> None:
        labels = await self.labels("f")
        for n in range(40):
            await self.ledger.payments.apply_payment(fields(f"f{n}", labels[n % 6], AMOUNTS[n % 5]), "notification",
                                                     T0 + n)
        before = await self.ledger.reports.money(T0 - DAY, T0 + DAY)

        def count_rows(txn: Any) -> tuple[int, int]:
            txn.execute("SELECT COUNT(*), SUM(CASE WHEN slot > 0 THEN 1 ELSE 0 END) FROM report_money")
            total, slotted = txn.fetchone()
            return int(total), int(slotted)
        _, slotted = await self.ledger.db.pool.runInteraction(count_rows)
        self.assertGreater(slotted, 2)  # type: ignore[attr-defined]
        self.assertEqual(await self.ledger.reports.fold(T0 + DAY), slotted)  # type: ignore[attr-defined]
        self.assertEqual(await self.ledger.db.pool.runInteraction(count_rows), (2, 0))  # type: ignore[attr-defined]
        self.assertEqual(await self.ledger.reports.money(T0 - DAY, T0 + DAY), before)  # type: ignore[attr-defined]
        self.assertEqual(await self.ledger.reports.fold(T0 + DAY), 0)  # type: ignore[attr-defined]

    async def test_kinds_and_held_money(self) -> None:
        labels = await self.labels("k")
        pay = self.ledger.payments.apply_payment
        await pay(fields("k1", labels[0], "199.00"), "notification", T0)
        await pay(fields("k2", labels[2], "500.50"), "notification", T0 + 1)
        await pay(fields("k3", "", "10.00"), "notification", T0 + 2)
        await pay(fields("k4", labels[3], "500.50"), "notification", T0 + 3, held=True)
        figures = {(m.kind, m.amount, m.count) for m in await self.ledger.reports.money(T0, T0 + DAY)}
        self.assertEqual(figures, {("subscription", Decimal("199.00"), 1),  # type: ignore[attr-defined]
                                   ("donation", Decimal("510.50"), 2)})
        await pay(fields("k4", labels[3], "500.50"), "reconcile", T0 + DAY, held=False)  # released
        figures = {(m.kind, m.amount, m.count) for m in await self.ledger.reports.money(T0, T0 + DAY)}
        self.assertIn(("donation", Decimal("1011.00"), 3), figures)  # type: ignore[attr-defined]


class SQLiteReportsTests(SQLiteLedgerMixin, ReportsContract, unittest.TestCase):
    pass


class PostgresReportsTests(PostgresLedgerMixin, ReportsContract, unittest.TestCase):
    """Needs a PostgreSQL server (YMDS_TEST_PG); errors, never skips, when there is none."""
