"""The ILedger contract, every store run against SQLite (a temp file) and PostgreSQL (a fresh database).

PostgreSQL is not optional here: if no server answers, every PostgreSQL test errors with
the reason (tests/support/postgres.py), so a missing server cannot pass silently.
"""

from __future__ import annotations

import json
from decimal import Decimal

from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.support.ledgers import LedgerTestMixin, PostgresLedgerMixin, SQLiteLedgerMixin, race_two_processes
from ymds.billing.interfaces import STORE_INTERFACES, ILedger, missing_members
from ymds.billing.ledger import BadPaymentFields, LedgerError, SchemaTooNew
from ymds.billing.open import open_ledger
from ymds.billing.sql import known_migrations

DAY = 86400.0
T0 = 1_780_000_000.0  # 2026-05-28, a fixed "now"


def fields(op, label="", withdraw="199.00", amount=None, **extra):
    f = {
        "notification_type": "card-incoming", "operation_id": op, "amount": amount or withdraw,
        "withdraw_amount": withdraw, "currency": "643", "datetime": "2026-05-28T10:00:00Z",
        "sender": "", "codepro": "false", "label": label, "unaccepted": "false",
    }
    f.update(extra)
    return f


class LedgerContract(LedgerTestMixin):
    """The ILedger contract; the engine mixin of each subclass below says where the ledger lives."""

    async def invoice(self, chat=42, plan="month", days=30, amount="199.00", now=T0, ttl=3 * DAY, **kw):
        return await self.ledger.invoices.create_invoice("subscription", Decimal(amount), now, ttl, plan=plan, days=days,
                                                chat_id=chat, **kw)

    # --- schema ----------------------------------------------------------------------

    async def test_provides_interface(self):
        self.assertEqual(missing_members(self.ledger), [])
        self.assertIsInstance(self.ledger, ILedger)
        for name, interface in STORE_INTERFACES.items():
            self.assertIsInstance(getattr(self.ledger, name), interface, name)

    async def test_interface_check_notices_a_changed_signature(self):
        class Renamed:
            def apply_payment(self, fields, origin, now, held=None):  # "source" renamed
                raise NotImplementedError

        self.ledger.payments = Renamed()
        problems = missing_members(self.ledger)
        self.assertIn("payments.apply_payment: parameters differ from the interface", problems)
        self.assertIn("payments.get_payment: missing", problems)
        self.assertFalse([p for p in problems if not p.startswith("payments.")], problems)

    async def test_migrate_is_idempotent(self):
        newest = known_migrations(self.ledger.db.dialect.name)[-1][0]
        self.assertEqual(await self.ledger.migrate(), newest)
        self.assertEqual(await self.ledger.schema_version(), newest)
        again = await self.open()
        self.assertEqual(await again.migrate(), newest)

    async def test_concurrent_migrations_from_empty(self):
        url = self.make_url()  # a second, empty ledger (removed when the test ends)
        first, second = open_ledger(url, reactor), open_ledger(url, reactor)
        self.addCleanup(first.close)
        self.addCleanup(second.close)
        newest = known_migrations(first.db.dialect.name)[-1][0]
        self.assertEqual(await defer.gatherResults([first.migrate(), second.migrate()]), [newest, newest])

        def versions(txn):
            txn.execute("SELECT version FROM schema_version ORDER BY version")
            return [r[0] for r in txn.fetchall()]
        self.assertEqual(await first.db.pool.runInteraction(versions),
                         [v for v, _ in known_migrations(first.db.dialect.name)])
        inv = await first.invoices.create_invoice("donation", Decimal("5.00"), T0, 60)
        self.assertEqual((await second.invoices.get_invoice(inv.label)).amount, Decimal("5.00"))

    async def test_refuses_newer_schema(self):
        def bump(txn):
            txn.execute(self.ledger.db.dialect.sql("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)"), (999, 0.0))
        await self.ledger.db.pool.runInteraction(bump)
        other = open_ledger(self.url, reactor)
        self.addCleanup(other.close)
        with self.assertRaises(SchemaTooNew) as caught:
            await other.migrate()
        self.assertIn("999", str(caught.exception))
        self.assertIn("upgrade ymds", str(caught.exception))

    # --- invoices --------------------------------------------------------------------

    async def test_create_and_get_invoice(self):
        inv = await self.invoice(description="One month", metadata={"k": "v"})
        got = await self.ledger.invoices.get_invoice(inv.label)
        self.assertEqual(got, inv)
        self.assertEqual(got.amount, Decimal("199.00"))
        self.assertEqual(got.status, "open")
        self.assertEqual(got.expires_at, T0 + 3 * DAY)
        self.assertIsNone(await self.ledger.invoices.get_invoice("nonexistent-label"))
        self.assertEqual([i.label for i in await self.ledger.invoices.open_invoices_for(42, T0)], [inv.label])
        self.assertEqual(await self.ledger.invoices.open_invoices_for(42, T0 + 4 * DAY), [])
        self.assertEqual(len(await self.ledger.invoices.open_invoices_for(42)), 1)  # not yet swept
        self.assertEqual(await self.ledger.invoices.open_invoices_for(43), [])

    async def test_reuse_open_invoice(self):
        first = await self.invoice(reuse_open=True)
        again = await self.invoice(reuse_open=True, now=T0 + 3600)
        self.assertEqual(first.label, again.label)
        other_price = await self.invoice(reuse_open=True, amount="299.00")
        self.assertNotEqual(other_price.label, first.label)
        # less than half of the ttl left: a fresh one
        late = await self.invoice(reuse_open=True, now=T0 + 2 * DAY)
        self.assertNotEqual(late.label, first.label)

    async def test_invalid_invoices_refused(self):
        with self.assertRaises(LedgerError):
            await self.ledger.invoices.create_invoice("subscription", Decimal("10"), T0, 60)  # no plan/chat
        with self.assertRaises(LedgerError):
            await self.ledger.invoices.create_invoice("donation", Decimal("-1"), T0, 60)
        with self.assertRaises(LedgerError):
            await self.ledger.invoices.create_invoice("donation", 10.5, T0, 60)  # a float is not money
        with self.assertRaises(LedgerError):
            await self.ledger.invoices.create_invoice("gift", Decimal("1"), T0, 60)
        with self.assertRaises(LedgerError):
            await self.ledger.invoices.create_invoice("donation", Decimal("1"), T0, 60, label="bad label!")

    async def test_expire_and_prune(self):
        old = await self.invoice(now=T0)
        fresh = await self.invoice(now=T0 + 10 * DAY, plan="year", days=365)
        paid = await self.invoice(now=T0, chat=7)
        await self.ledger.payments.apply_payment(fields("op-paid", paid.label), "notification", T0 + 60)
        self.assertEqual(await self.ledger.invoices.expire_invoices(T0 + 4 * DAY), [old.label])
        self.assertEqual(await self.ledger.invoices.expire_invoices(T0 + 4 * DAY), [])  # exactly once
        self.assertEqual((await self.ledger.invoices.get_invoice(old.label)).status, "expired")
        # older_than = now - 30 days
        self.assertEqual(await self.ledger.invoices.prune_unpaid(T0 + 20 * DAY - 30 * DAY), 0)  # expired 17 days ago: kept
        self.assertEqual(await self.ledger.invoices.prune_unpaid(T0 + 40 * DAY - 30 * DAY), 1)
        self.assertIsNone(await self.ledger.invoices.get_invoice(old.label))
        self.assertEqual(await self.ledger.audit.events(label=old.label), [])
        self.assertEqual((await self.ledger.invoices.get_invoice(fresh.label)).status, "open")
        self.assertEqual((await self.ledger.invoices.get_invoice(paid.label)).status, "paid")

    # --- apply_payment outcomes ------------------------------------------------------

    async def test_paid_extends_subscription(self):
        inv = await self.invoice()
        r = await self.ledger.payments.apply_payment(fields("op1", inv.label, amount="193.03"), "notification", T0 + 60)
        self.assertEqual(r.outcome, "paid")
        self.assertTrue(r.is_new)
        self.assertEqual(r.invoice.status, "paid")
        self.assertEqual(r.subscription.ends_at, T0 + 60 + 30 * DAY)
        self.assertEqual(r.payment.amount, Decimal("193.03"))
        self.assertEqual(r.payment.withdraw_amount, Decimal("199.00"))
        self.assertEqual(r.payment.granted_until, T0 + 60 + 30 * DAY)
        self.assertEqual(r.payment.chat_id, 42)
        self.assertEqual((await self.ledger.invoices.get_invoice(inv.label)).status, "paid")
        self.assertEqual((await self.ledger.subscriptions.subscription(42)).ends_at, T0 + 60 + 30 * DAY)
        kinds = [e.kind for e in await self.ledger.audit.events(label=inv.label)]
        self.assertEqual(kinds, ["invoice_created", "payment_paid", "invoice_paid", "subscription_extended"])
        self.assertEqual([e.kind for e in r.events], ["payment_paid", "invoice_paid", "subscription_extended"])

    async def test_extension_starts_at_current_end_or_now(self):
        a = await self.invoice()
        await self.ledger.payments.apply_payment(fields("op1", a.label), "notification", T0)
        b = await self.invoice(now=T0 + DAY)
        r = await self.ledger.payments.apply_payment(fields("op2", b.label), "notification", T0 + DAY)
        self.assertEqual(r.subscription.ends_at, T0 + 60 * DAY)  # from the current end
        c = await self.invoice(now=T0 + 100 * DAY)
        r = await self.ledger.payments.apply_payment(fields("op3", c.label), "notification", T0 + 100 * DAY)
        self.assertEqual(r.subscription.ends_at, T0 + 130 * DAY)  # lapsed: from now

    async def test_overpaid_grants(self):
        inv = await self.invoice()
        r = await self.ledger.payments.apply_payment(fields("op1", inv.label, withdraw="250.00"), "notification", T0)
        self.assertEqual(r.outcome, "overpaid")
        self.assertEqual(r.invoice.status, "overpaid")
        self.assertEqual(r.subscription.ends_at, T0 + 30 * DAY)

    async def test_underpaid_records_without_granting(self):
        inv = await self.invoice()
        r = await self.ledger.payments.apply_payment(fields("op1", inv.label, withdraw="198.99"), "notification", T0)
        self.assertEqual(r.outcome, "underpaid")
        self.assertEqual(r.invoice.status, "underpaid")
        self.assertIsNone(r.subscription)
        self.assertIsNone(await self.ledger.subscriptions.subscription(42))
        self.assertEqual((await self.ledger.payments.get_payment("op1")).status, "underpaid")

    async def test_late_payment_still_grants(self):
        inv = await self.invoice()
        await self.ledger.invoices.expire_invoices(T0 + 4 * DAY)
        r = await self.ledger.payments.apply_payment(fields("op1", inv.label), "notification", T0 + 5 * DAY)
        self.assertEqual(r.outcome, "late")
        self.assertEqual(r.invoice.status, "late")
        self.assertEqual(r.subscription.ends_at, T0 + 35 * DAY)

    async def test_late_before_the_sweep_ran(self):
        inv = await self.invoice()
        r = await self.ledger.payments.apply_payment(fields("op1", inv.label), "notification", T0 + 3 * DAY + 1)
        self.assertEqual(r.outcome, "late")
        self.assertIsNotNone(r.subscription)

    async def test_unmatched_kept_as_donation(self):
        cases = [("op-nolabel", ""), ("op-unknown", "UnknownLabel123"), ("op-foreign", "order #5; DROP TABLE")]
        for op, label in cases:
            r = await self.ledger.payments.apply_payment(fields(op, label, withdraw="50.00"), "notification", T0)
            self.assertEqual(r.outcome, "unmatched")
            self.assertIsNone(r.invoice)
            self.assertIsNone(r.subscription)
        page = await self.ledger.payments.list_payments(status="unmatched")
        self.assertEqual(sorted(p.operation_id for p in page.payments), sorted(op for op, _ in cases))
        self.assertEqual((await self.ledger.payments.get_payment("op-foreign")).label, "order #5; DROP TABLE")
        self.assertEqual((await self.ledger.audit.stats(T0)).payments_today, 3)

    async def test_donation_invoice(self):
        inv = await self.ledger.invoices.create_invoice("donation", Decimal("500.00"), T0, 3 * DAY,
                                               metadata={"name": "Ann", "message": "thanks"})
        r = await self.ledger.payments.apply_payment(fields("op1", inv.label, withdraw="500.00"), "notification", T0)
        self.assertEqual(r.outcome, "paid")
        self.assertEqual(r.invoice.kind, "donation")
        self.assertEqual(r.invoice.metadata, {"name": "Ann", "message": "thanks"})
        self.assertIsNone(r.subscription)

    async def test_held_then_released_by_later_notification(self):
        inv = await self.invoice()
        r = await self.ledger.payments.apply_payment(fields("op1", inv.label, unaccepted="true"), "notification", T0)
        self.assertEqual(r.outcome, "held")
        self.assertEqual(r.invoice.status, "held")
        self.assertIsNone(r.subscription)
        self.assertTrue(r.payment.held)
        again = await self.ledger.payments.apply_payment(fields("op1", inv.label, unaccepted="true"), "notification", T0 + 10)
        self.assertEqual(again.outcome, "duplicate")
        released = await self.ledger.payments.apply_payment(fields("op1", inv.label), "notification", T0 + 600)
        self.assertEqual(released.outcome, "paid")
        self.assertTrue(released.released)
        self.assertFalse(released.is_new)
        self.assertFalse(released.payment.held)
        self.assertEqual(released.payment.accepted_at, T0 + 600)
        self.assertEqual(released.invoice.status, "paid")
        self.assertEqual(released.subscription.ends_at, T0 + 600 + 30 * DAY)
        dup = await self.ledger.payments.apply_payment(fields("op1", inv.label), "notification", T0 + 700)
        self.assertEqual(dup.outcome, "duplicate")
        self.assertEqual((await self.ledger.subscriptions.subscription(42)).ends_at, T0 + 600 + 30 * DAY)
        self.assertIn("payment_released", [e.kind for e in await self.ledger.audit.events(operation_id="op1")])

    async def test_codepro_is_held_and_released_by_api(self):
        inv = await self.invoice()
        r = await self.ledger.payments.apply_payment(fields("op1", inv.label, codepro="true"), "notification", T0)
        self.assertEqual(r.outcome, "held")
        self.assertIsNone(await self.ledger.payments.release_payment("no-such-op", T0))
        released = await self.ledger.payments.release_payment("op1", T0 + 60, source="reconcile")
        self.assertEqual(released.outcome, "paid")
        self.assertEqual(released.subscription.ends_at, T0 + 60 + 30 * DAY)
        self.assertEqual((await self.ledger.payments.release_payment("op1", T0 + 70)).outcome, "duplicate")

    async def test_held_override(self):
        inv = await self.invoice()
        r = await self.ledger.payments.apply_payment(fields("op1", inv.label), "notification", T0, held=True)
        self.assertEqual(r.outcome, "held")
        r = await self.ledger.payments.apply_payment(fields("op1", inv.label), "reconcile", T0 + 5, held=False)
        self.assertEqual(r.outcome, "paid")

    async def test_held_unmatched_released_as_unmatched(self):
        await self.ledger.payments.apply_payment(fields("op1", "", unaccepted="true"), "notification", T0)
        r = await self.ledger.payments.apply_payment(fields("op1", ""), "notification", T0 + 1)
        self.assertEqual(r.outcome, "unmatched")

    async def test_test_notification_changes_nothing(self):
        inv = await self.invoice()
        r = await self.ledger.payments.apply_payment(fields("test-notification", inv.label, test_notification="true"),
                                            "notification", T0)
        self.assertEqual(r.outcome, "test")
        self.assertIsNone(await self.ledger.payments.get_payment("test-notification"))
        self.assertEqual((await self.ledger.invoices.get_invoice(inv.label)).status, "open")

    async def test_duplicate_is_idempotent(self):
        inv = await self.invoice()
        first = await self.ledger.payments.apply_payment(fields("op1", inv.label), "notification", T0)
        for source in ("notification", "reconcile", "manual"):
            r = await self.ledger.payments.apply_payment(fields("op1", inv.label), source, T0 + 3600)
            self.assertEqual(r.outcome, "duplicate")
            self.assertFalse(r.is_new)
            self.assertEqual(r.payment.status, "paid")
            self.assertEqual(r.subscription.ends_at, first.subscription.ends_at)
            self.assertEqual(r.invoice.label, inv.label)
        self.assertEqual(len((await self.ledger.payments.list_payments()).payments), 1)
        self.assertEqual((await self.ledger.subscriptions.subscription(42)).ends_at, T0 + 30 * DAY)

    async def test_duplicate_with_other_money_is_flagged_not_credited(self):
        inv = await self.invoice()
        await self.ledger.payments.apply_payment(fields("op1", inv.label), "notification", T0)
        r = await self.ledger.payments.apply_payment(fields("op1", inv.label, withdraw="9999.00"), "notification", T0)
        self.assertEqual(r.outcome, "duplicate")
        self.assertEqual(r.payment.withdraw_amount, Decimal("199.00"))
        self.assertIn("duplicate_mismatch", [e.kind for e in await self.ledger.audit.events(operation_id="op1")])

    async def test_second_payment_for_paid_invoice_grants_again(self):
        inv = await self.invoice()
        await self.ledger.payments.apply_payment(fields("op1", inv.label), "notification", T0)
        r = await self.ledger.payments.apply_payment(fields("op2", inv.label), "notification", T0 + 60)
        self.assertEqual(r.outcome, "paid")
        self.assertEqual(r.invoice.operation_id, "op1")  # the invoice keeps its first payment
        self.assertEqual(r.subscription.ends_at, T0 + 60 * DAY)

    async def test_malformed_fields_refused(self):
        bad = [
            {"amount": "1.00"},  # no operation_id
            fields("op 1"),  # space in operation_id
            fields("x" * 65),
            fields("op1", withdraw="1e5"),
            fields("op1", withdraw="-1.00"),
            fields("op1", withdraw="1.234"),
            fields("op1", withdraw="NaN"),
            fields("op1", withdraw="12345678901.00"),
            fields("op1", unaccepted="maybe"),
            fields("op1", withdraw="100.00", amount="100.01"),  # credited more than paid
            fields("op1", currency="840"),
            {"operation_id": "op1", "amount": 1.5},  # not text
        ]
        for f in bad:
            with self.assertRaises(BadPaymentFields, msg=repr(f)):
                await self.ledger.payments.apply_payment(f, "notification", T0)
        with self.assertRaises(LedgerError):
            await self.ledger.payments.apply_payment(fields("op1"), "carrier-pigeon", T0)
        self.assertEqual((await self.ledger.payments.list_payments()).payments, ())

    async def test_personal_fields_kept_only_in_payment_row(self):
        inv = await self.invoice()
        await self.ledger.payments.apply_payment(fields("op1", inv.label, email="a@example.org", firstname="Ann"),
                                        "notification", T0)
        payment = await self.ledger.payments.get_payment("op1")
        self.assertEqual(payment.raw["email"], "a@example.org")
        for event in await self.ledger.audit.events(operation_id="op1"):
            self.assertNotIn("a@example.org", json.dumps(dict(event.data)))

    async def test_concurrent_burst_in_one_process(self):
        """Many calls at once (on SQLite they share group commits): each operation once."""
        invoices = [await self.invoice(chat=5) for _ in range(30)]
        calls = [self.ledger.payments.apply_payment(fields(f"burst-{i % 30}", invoices[i % 30].label), "notification", T0)
                 for i in range(60)]
        outcomes = [r.outcome for r in await defer.gatherResults(calls)]
        self.assertEqual(outcomes[:30], ["paid"] * 30)
        self.assertEqual(outcomes[30:], ["duplicate"] * 30)
        self.assertEqual((await self.ledger.subscriptions.subscription(5)).ends_at, T0 + 30 * 30 * DAY)

    async def test_close_finishes_what_was_handed_in(self):
        ledger = await self.open()
        invoices = [await self.invoice(chat=6) for _ in range(5)]
        calls = [ledger.payments.apply_payment(fields(f"c{i}", inv.label), "notification", T0) for i, inv in enumerate(invoices)]
        closing = ledger.close()
        again = ledger.close()
        self.assertEqual([r.outcome for r in await defer.gatherResults(calls)], ["paid"] * 5)
        await closing
        await again
        with self.assertRaises(LedgerError):
            await ledger.payments.apply_payment(fields("late-call"), "notification", T0)
        with self.assertRaises(LedgerError):
            await ledger.audit.stats(T0)
        self.assertEqual((await self.ledger.subscriptions.subscription(6)).ends_at, T0 + 150 * DAY)

    # --- listing and stats -----------------------------------------------------------

    async def test_list_payments_pages_with_cursor(self):
        for i in range(25):
            await self.ledger.payments.apply_payment(fields(f"op{i:02d}", "", withdraw="10.00"), "notification", T0 + i)
        seen, cursor, pages = [], None, 0
        while True:
            page = await self.ledger.payments.list_payments(after_cursor=cursor, limit=10)
            seen += [p.operation_id for p in page.payments]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        self.assertEqual(seen, [f"op{i:02d}" for i in range(25)])
        self.assertEqual(pages, 3)
        window = await self.ledger.payments.list_payments(since=T0 + 5, until=T0 + 8)
        self.assertEqual([p.operation_id for p in window.payments], ["op05", "op06", "op07"])
        self.assertEqual(len((await self.ledger.payments.list_payments(label="nothing")).payments), 0)

    async def test_list_payments_by_chat(self):
        inv = await self.invoice(chat=9)
        await self.ledger.payments.apply_payment(fields("op1", inv.label), "notification", T0)
        await self.ledger.payments.apply_payment(fields("op2", ""), "notification", T0)
        page = await self.ledger.payments.list_payments(chat_id=9)
        self.assertEqual([p.operation_id for p in page.payments], ["op1"])

    async def test_stats_are_exact(self):
        for i, amount in enumerate(["0.10", "0.20", "1000000.01"]):
            await self.ledger.payments.apply_payment(fields(f"op{i}", "", withdraw=amount), "notification", T0)
        await self.ledger.payments.apply_payment(fields("old", "", withdraw="5.00"), "notification", T0 - 40 * DAY)
        await self.ledger.payments.apply_payment(fields("held", "", withdraw="7.00", unaccepted="true"), "notification", T0)
        inv = await self.invoice()
        await self.ledger.payments.apply_payment(fields("sub", inv.label, withdraw="199.00", amount="193.03"), "notification", T0)
        await self.ledger.quarantine.quarantine_add("x=1", "bad signature", "203.0.113.5", T0)
        s = await self.ledger.audit.stats(T0 + 60)
        self.assertEqual(s.payments_today, 4)
        self.assertEqual(s.sum_today, Decimal("1000193.34"))
        self.assertIsInstance(s.sum_today, Decimal)
        self.assertEqual(s.payments_month, 4)
        self.assertEqual(s.active_subscribers, 1)
        self.assertEqual(s.quarantined, 1)

    async def test_apply_result_says_whether_the_chat_blocked_the_bot(self):
        a = await self.invoice(chat=11)
        b = await self.invoice(chat=12)
        await self.ledger.subscriptions.mark_blocked(12, T0)
        self.assertFalse((await self.ledger.payments.apply_payment(fields("op-a", a.label), "notification", T0)).chat_blocked)
        self.assertTrue((await self.ledger.payments.apply_payment(fields("op-b", b.label), "notification", T0)).chat_blocked)
        self.assertTrue((await self.ledger.payments.apply_payment(fields("op-b", b.label), "notification", T0)).chat_blocked)
        self.assertFalse((await self.ledger.payments.apply_payment(fields("op-c", ""), "notification", T0)).chat_blocked)

    async def test_cursor_blocked(self):
        self.assertIsNone(await self.ledger.cursors.get_cursor("history"))
        await self.ledger.cursors.set_cursor("history", "2026-05-28T10:00:00Z")
        await self.ledger.cursors.set_cursor("history", "2026-05-29T10:00:00Z")
        self.assertEqual(await self.ledger.cursors.get_cursor("history"), "2026-05-29T10:00:00Z")
        self.assertFalse(await self.ledger.subscriptions.is_blocked(5))
        self.assertTrue(await self.ledger.subscriptions.mark_blocked(5, T0))
        self.assertFalse(await self.ledger.subscriptions.mark_blocked(5, T0))
        self.assertTrue(await self.ledger.subscriptions.is_blocked(5))

    async def test_events_need_a_key(self):
        with self.assertRaises(LedgerError):
            await self.ledger.audit.events()

    # --- reminders and expiry --------------------------------------------------------

    async def subscribe(self, chat, now, days=30):
        inv = await self.invoice(chat=chat, now=now, days=days)
        r = await self.ledger.payments.apply_payment(fields(f"op-{chat}-{now}", inv.label), "notification", now)
        return r.subscription

    async def test_reminders_claimed_once_per_window(self):
        sub = await self.subscribe(1, T0)
        ends = sub.ends_at
        self.assertEqual(await self.ledger.subscriptions.due_reminders(ends - 4 * DAY, 3 * DAY), [])
        due = await self.ledger.subscriptions.due_reminders(ends - 2.5 * DAY, 3 * DAY)
        self.assertEqual([s.chat_id for s in due], [1])
        self.assertEqual(await self.ledger.subscriptions.mark_reminded([(1, ends)], 3 * DAY), [1])
        self.assertEqual(await self.ledger.subscriptions.mark_reminded([(1, ends)], 3 * DAY), [])  # a second process gets nothing
        self.assertEqual([e.data for e in await self.ledger.audit.events(chat_id=1) if e.kind == "subscription_reminded"],
                         [{"window": 3 * 86400}])
        self.assertEqual(await self.ledger.subscriptions.due_reminders(ends - 2 * DAY, 3 * DAY), [])
        self.assertEqual(await self.ledger.subscriptions.due_reminders(ends - 2 * DAY, DAY), [])
        self.assertEqual([s.chat_id for s in await self.ledger.subscriptions.due_reminders(ends - 0.5 * DAY, DAY)], [1])
        self.assertEqual(await self.ledger.subscriptions.mark_reminded([(1, ends)], DAY), [1])
        # after the 1-day reminder the 3-day window is not due again
        self.assertEqual(await self.ledger.subscriptions.due_reminders(ends - 0.4 * DAY, 3 * DAY), [])
        # a stale claim (the subscription was extended meanwhile) fails
        self.assertEqual(await self.ledger.subscriptions.mark_reminded([(1, ends - 1)], DAY), [])

    async def test_unmark_reminded_gives_claim_back(self):
        ends = (await self.subscribe(1, T0)).ends_at
        await self.ledger.subscriptions.mark_reminded([(1, ends)], 3 * DAY)
        self.assertTrue(await self.ledger.subscriptions.unmark_reminded(1, ends, 3 * DAY))
        self.assertEqual(len(await self.ledger.subscriptions.due_reminders(ends - DAY * 2, 3 * DAY)), 1)

    async def test_extension_rearms_reminders_and_expiry(self):
        ends = (await self.subscribe(1, T0)).ends_at
        await self.ledger.subscriptions.mark_reminded([(1, ends)], DAY)
        self.assertEqual(await self.ledger.subscriptions.mark_expired([(1, ends)], ends + 1), [1])
        sub = await self.subscribe(1, ends + 10)
        self.assertFalse(sub.expired)
        self.assertIsNone(sub.reminded_window)
        self.assertEqual(len(await self.ledger.subscriptions.due_reminders(sub.ends_at - DAY / 2, DAY)), 1)

    async def test_expiry_claimed_once(self):
        a = (await self.subscribe(1, T0)).ends_at
        await self.subscribe(2, T0 + 5 * DAY)
        self.assertEqual(await self.ledger.subscriptions.expired_subscriptions(a - 1), [])
        expired = await self.ledger.subscriptions.expired_subscriptions(a + 1)
        self.assertEqual([s.chat_id for s in expired], [1])
        self.assertEqual(await self.ledger.subscriptions.mark_expired([(1, a)], a + 1), [1])
        self.assertEqual(await self.ledger.subscriptions.mark_expired([(1, a)], a + 1), [])
        self.assertEqual(await self.ledger.subscriptions.expired_subscriptions(a + 1), [])
        self.assertTrue(await self.ledger.subscriptions.unmark_expired(1, a))
        self.assertEqual(len(await self.ledger.subscriptions.expired_subscriptions(a + 1)), 1)
        self.assertIn("subscription_expired", [e.kind for e in await self.ledger.audit.events(chat_id=1)])

    # --- quarantine ------------------------------------------------------------------

    async def test_quarantine_store_repeat_resolve(self):
        r1 = await self.ledger.quarantine.quarantine_add("operation_id=1&sha1_hash=x", "bad signature", "203.0.113.5", T0)
        self.assertEqual((r1.action, r1.unresolved), ("stored", 1))
        r2 = await self.ledger.quarantine.quarantine_add("operation_id=1&sha1_hash=x", "bad signature", "203.0.113.5", T0 + 1)
        self.assertEqual((r2.id, r2.action, r2.unresolved), (r1.id, "repeated", 1))
        [q] = await self.ledger.quarantine.quarantine_list()
        self.assertEqual((q.count, q.body, q.reason, q.last_seen), (2, "operation_id=1&sha1_hash=x", "bad signature", T0 + 1))
        self.assertTrue(await self.ledger.quarantine.quarantine_resolve(q.id, "rejected", T0 + 2))
        self.assertFalse(await self.ledger.quarantine.quarantine_resolve(q.id, "rejected", T0 + 3))
        self.assertEqual(await self.ledger.quarantine.quarantine_list(), [])
        [done] = await self.ledger.quarantine.quarantine_list(unresolved_only=False)
        self.assertEqual(done.resolution, "rejected")

    async def test_quarantine_is_bounded(self):
        small = await self.open(quarantine_max_rows=3, quarantine_max_bytes=1000)
        for i in range(3):
            self.assertEqual((await small.quarantine.quarantine_add(f"body{i}", "bad signature", "x", T0)).action, "stored")
        for i in range(3, 50):
            r = await small.quarantine.quarantine_add(f"body{i}", "bad signature", "x", T0)
            self.assertEqual(r.action, "aggregated")
        rows = await small.quarantine.quarantine_list(limit=100)
        self.assertEqual(len(rows), 4)  # three bodies and one counter
        overflow = [q for q in rows if q.body == ""]
        self.assertEqual(overflow[0].count, 47)
        # the byte cap: one body that alone exceeds it is aggregated
        roomy = await self.open(quarantine_max_rows=1000, quarantine_max_bytes=100)
        await roomy.quarantine.quarantine_resolve(overflow[0].id, "seen", T0)
        for q in await roomy.quarantine.quarantine_list():
            await roomy.quarantine.quarantine_resolve(q.id, "seen", T0)
        self.assertEqual((await roomy.quarantine.quarantine_add("y" * 101, "too big", "x", T0)).action, "aggregated")
        self.assertEqual((await roomy.quarantine.quarantine_add("y" * 99, "fits", "x", T0)).action, "stored")

    async def test_quarantine_cuts_long_input(self):
        r = await self.ledger.quarantine.quarantine_add("z" * 200_000, "r" * 1000, "h" * 500, T0)
        [q] = await self.ledger.quarantine.quarantine_list()
        self.assertEqual(q.id, r.id)
        self.assertEqual(len(q.body), 65_536)
        self.assertEqual(len(q.reason), 200)
        self.assertEqual(len(q.remote), 64)

    # --- two processes at once -------------------------------------------------------

    def test_two_processes_apply_the_same_operations_once(self):
        """Two OS processes apply the same 40 operations at the same moment: every operation
        is credited once and the subscription is extended exactly 40 times."""
        from twisted.internet.defer import Deferred

        async def prepare():
            return [await self.invoice(chat=77, now=T0) for _ in range(40)]

        def run(invoices):
            payments = [fields(f"race-{i}", inv.label) for i, inv in enumerate(invoices)]
            return race_two_processes(self, CHILD % {"url": self.url, "payments": json.dumps(payments), "now": T0})

        async def check():
            outcomes = run(await prepare())
            for i in range(40):
                pair = sorted([outcomes[0][i], outcomes[1][i]])
                self.assertEqual(pair, ["duplicate", "paid"], f"operation {i}")
            page = await self.ledger.payments.list_payments(limit=1000)
            self.assertEqual(len(page.payments), 40)
            sub = await self.ledger.subscriptions.subscription(77)
            self.assertEqual(sub.ends_at, T0 + 40 * 30 * DAY)
            extended = [e for e in await self.ledger.audit.events(chat_id=77) if e.kind == "subscription_extended"]
            self.assertEqual(len(extended), 40)
        return Deferred.fromCoroutine(check())


CHILD = r"""
import json, sys
from twisted.internet import defer, task
from ymds.billing.open import open_ledger

async def main(reactor):
    ledger = open_ledger(%(url)r, reactor)
    await ledger.migrate()
    await ledger.invoices.get_invoice("warm-up-label")
    print("ready", flush=True)
    sys.stdin.readline()  # the starting gun: both children are ready
    pending = [ledger.payments.apply_payment(f, "notification", %(now)r) for f in json.loads(%(payments)r)]
    results = await defer.gatherResults(pending)
    print(json.dumps([r.outcome for r in results]), flush=True)
    await ledger.close()

task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
"""


class SQLiteLedgerTests(SQLiteLedgerMixin, LedgerContract, unittest.TestCase):
    async def test_wal_mode(self):
        def mode(txn):
            txn.execute("PRAGMA journal_mode")
            return txn.fetchone()[0]
        self.assertEqual(await self.ledger.db.pool.runInteraction(mode), "wal")

    async def test_group_commit_isolates_a_failing_payment(self):
        from ymds.billing.sqlite import SQLiteLedger
        from ymds.billing.stores import PaymentStore

        class FlakyPayments(PaymentStore):
            def apply_in(self, txn, pf, *rest):
                result = super().apply_in(txn, pf, *rest)
                if pf.operation_id == "boom":
                    raise RuntimeError("disk on fire")  # after its writes: they must be rolled back
                return result

        class Flaky(SQLiteLedger):
            payment_store = FlakyPayments

        ledger = Flaky(self.url[len("sqlite:///"):], reactor)
        self.addCleanup(ledger.close)
        inv = [await self.invoice(chat=c) for c in (1, 2, 3)]
        calls = [ledger.payments.apply_payment(fields(op, i.label), "notification", T0) for op, i in zip(("a", "boom", "c"), inv)]
        results = await defer.DeferredList(calls, consumeErrors=True)
        self.assertEqual([ok for ok, _ in results], [True, False, True])
        self.assertTrue(results[1][1].check(RuntimeError))
        self.assertIsNone(await ledger.payments.get_payment("boom"))
        self.assertIsNone(await ledger.subscriptions.subscription(2))
        self.assertEqual((await ledger.invoices.get_invoice(inv[1].label)).status, "open")
        self.assertIsNotNone(await ledger.subscriptions.subscription(1))
        self.assertIsNotNone(await ledger.subscriptions.subscription(3))

    def test_missing_directory_is_a_clear_error(self):
        with self.assertRaises(LedgerError) as caught:
            open_ledger("sqlite:////nonexistent/dir/ledger.sqlite3", reactor)
        self.assertIn("/nonexistent/dir does not exist", str(caught.exception))


class PostgresLedgerTests(PostgresLedgerMixin, LedgerContract, unittest.TestCase):
    """Needs a PostgreSQL server (YMDS_TEST_PG); errors, never skips, when there is none."""

    async def test_money_is_numeric(self):
        def column_type(txn):
            txn.execute("SELECT data_type, numeric_precision, numeric_scale FROM information_schema.columns "
                        "WHERE table_name = 'payments' AND column_name = 'withdraw_amount'")
            return txn.fetchone()
        self.assertEqual(tuple(await self.ledger.db.pool.runInteraction(column_type)), ("numeric", 12, 2))


    async def test_same_operation_under_two_labels_at_once_extends_nothing_twice(self):
        """A transaction recording operation X under label A is still open when X arrives
        under label B: B's attempt must roll back whole (no extension without a payment)."""
        import psycopg
        from twisted.internet import task
        a = await self.invoice(chat=1)
        b = await self.invoice(chat=2)
        holder = psycopg.connect(self.url)
        self.addCleanup(holder.close)
        holder.execute("INSERT INTO payments (operation_id, label, amount, withdraw_amount, status, source, received_at) "
                       "VALUES ('X', %s, 199, 199, 'paid', 'manual', 0)", (a.label,))
        racing = self.ledger.payments.apply_payment(fields("X", b.label), "notification", T0)
        watcher = psycopg.connect(self.url, autocommit=True)
        self.addCleanup(watcher.close)
        for _ in range(1000):  # until B's statement waits for A's uncommitted row (real IO)
            waiting = watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                      "AND wait_event_type = 'Lock'").fetchone()[0]
            if waiting:
                break
            await task.deferLater(reactor, 0.01)
        self.assertTrue(waiting, "the racing apply_payment never waited for the open transaction")
        holder.commit()
        from ymds.billing.postgres import ConcurrentLabelChange
        with self.assertRaises(ConcurrentLabelChange):
            await racing
        self.assertIsNone(await self.ledger.subscriptions.subscription(2))
        retried = await self.ledger.payments.apply_payment(fields("X", b.label), "notification", T0)
        self.assertEqual(retried.outcome, "duplicate")
        self.assertIsNone(await self.ledger.subscriptions.subscription(2))


class OpenLedgerTests(unittest.TestCase):
    def test_dotted_path_factory(self):
        ledger = open_ledger("tests.test_ledger:third_party_ledger", reactor)
        self.addCleanup(ledger.close)
        self.assertIsInstance(ledger, ILedger)
        self.assertEqual(missing_members(ledger), [])

    def test_dotted_path_must_provide_iledger(self):
        with self.assertRaises(LedgerError) as caught:
            open_ledger("tests.test_ledger:not_a_ledger", reactor)
        self.assertIn("did not return an ILedger provider", str(caught.exception))

    def test_unknown_module(self):
        with self.assertRaises(LedgerError) as caught:
            open_ledger("nosuchpackage.ledgers:factory", reactor)
        self.assertIn("cannot import", str(caught.exception))


def third_party_ledger(url, reactor_):
    from ymds.billing.sqlite import SQLiteLedger
    return SQLiteLedger(":memory:", reactor_)


def not_a_ledger(url, reactor_):
    return object()
