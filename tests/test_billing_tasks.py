"""Billing task handlers, run as a worker runs them (wire arguments in, wire result out) with
a recording IJobQueue (a test double of the queue interface) and a real SQLite ledger."""

from __future__ import annotations

from decimal import Decimal

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from tests.support.ledgers import sqlite_url
from tests.support.queues import RecordingQueue, run_task
from ymds.billing.open import open_ledger
from ymds.billing.tasks import BillingTasks, InvalidTaskArgs
from ymds.config import load_config
from ymds.links import verify_token
from ymds.queue.errors import PermanentJobError

T0 = 1_780_000_000.0
DAY = 86400.0
SECRET = "link-secret-0123456789abcdef"


def make_config(**sections):
    raw = {
        "server": {"public_url": "https://pay.example.org"},
        "links": {"secret": SECRET, "ttl": "3d"},
        "yoomoney": {"wallet": "4100111122223333", "notification_secret": "s3cret"},
        "telegram": {"channel_id": -1001234567890, "admins": [1]},
        "plans": [{"id": "month", "title": "1 month", "price": "199.00", "days": 30},
                  {"id": "year", "title": "1 year", "price": "1990.00", "days": 365}],
        "donations": {"min": "10.00", "max": "5000.00"},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values} if isinstance(values, dict) else values
    return load_config(raw=raw, env={})


def note(op, label="", withdraw="199.00", amount=None, **extra):
    f = {"notification_type": "p2p-incoming", "operation_id": op, "amount": amount or withdraw,
         "withdraw_amount": withdraw, "currency": "643", "datetime": "2026-05-28T10:00:00Z", "sender": "41001000",
         "codepro": "false", "label": label, "unaccepted": "false"}
    f.update(extra)
    return f


class TasksTestBase(unittest.TestCase):
    config_sections: dict = {}

    def setUp(self):
        self.ledger = open_ledger(sqlite_url(self), reactor)
        self.addCleanup(self.ledger.close)
        self.clock = task.Clock()
        self.clock.advance(T0)
        self.queue = RecordingQueue()
        self.config = make_config(**self.config_sections)
        self.tasks = BillingTasks(self.config, self.ledger, self.queue, self.clock)
        return self.ledger.migrate()


class InvoiceTaskTests(TasksTestBase):
    async def test_create_invoices_one_per_plan_with_signed_links(self):
        result = await run_task(self.tasks, "create_invoices", {"chat_id": 42, "user_id": 42})
        invoices = result["invoices"]
        self.assertEqual([i["plan"] for i in invoices], ["month", "year"])
        self.assertEqual([i["amount"] for i in invoices], [Decimal("199.00"), Decimal("1990.00")])
        for inv in invoices:
            self.assertTrue(inv["url"].startswith("https://pay.example.org/pay/"))
            token = inv["url"].rsplit("/", 1)[1]
            self.assertEqual(verify_token(SECRET.encode(), token, T0), inv["label"])
            self.assertEqual(inv["expires_at"], "2026-05-31T20:26:40+00:00")
        again = await run_task(self.tasks, "create_invoices", {"chat_id": 42, "user_id": 42})
        self.assertEqual([i["label"] for i in again["invoices"]], [i["label"] for i in invoices])
        other = await run_task(self.tasks, "create_invoices", {"chat_id": 43, "user_id": None})
        self.assertNotEqual(other["invoices"][0]["label"], invoices[0]["label"])

    async def test_create_invoices_bad_args(self):
        for args in ({}, {"chat_id": "42"}, {"chat_id": True}, {"chat_id": 2**70}, {"chat_id": 1, "user_id": "x"}):
            with self.assertRaises(InvalidTaskArgs, msg=repr(args)):
                await run_task(self.tasks, "create_invoices", args)
        self.assertTrue(issubclass(InvalidTaskArgs, PermanentJobError))

    async def test_create_donation(self):
        result = await run_task(self.tasks, "create_donation", {"amount": Decimal("100.50"), "name": "Ann", "message": "Thank you"})
        inv = await self.ledger.invoices.get_invoice(result["label"])
        self.assertEqual((inv.kind, inv.amount, inv.metadata), ("donation", Decimal("100.50"), {"name": "Ann", "message": "Thank you"}))
        self.assertEqual(verify_token(SECRET.encode(), result["url"].rsplit("/", 1)[1], T0), result["label"])
        self.assertEqual((await run_task(self.tasks, "create_donation", {"amount": "25", "name": "", "message": ""}))["url"][:28],
                         "https://pay.example.org/pay/")

    async def test_create_donation_refusals(self):
        bad = [{"amount": Decimal("9.99")}, {"amount": Decimal("5000.01")}, {"amount": Decimal("10.001")},
               {"amount": 10.5}, {"amount": "1e3"}, {"amount": Decimal("NaN")}, {"amount": None},
               {"amount": Decimal("20"), "name": "x" * 101}, {"amount": Decimal("20"), "message": "x" * 1001},
               {"amount": Decimal("20"), "name": 5}]
        for args in bad:
            with self.assertRaises(InvalidTaskArgs, msg=repr(args)):
                await run_task(self.tasks, "create_donation", args)

    async def test_donations_disabled(self):
        tasks = BillingTasks(make_config(donations={"enabled": False}), self.ledger, self.queue, self.clock)
        with self.assertRaises(InvalidTaskArgs):
            await run_task(tasks, "create_donation", {"amount": Decimal("20")})

    async def test_create_invoice_for_the_api(self):
        by_plan = await run_task(self.tasks, "create_invoice", {"plan": "year", "chat_id": 5, "description": "", "metadata": {"order": 7}})
        self.assertEqual((by_plan["kind"], by_plan["amount"], by_plan["status"]), ("subscription", Decimal("1990.00"), "open"))
        self.assertEqual(by_plan["description"], "1 year")
        by_amount = await run_task(self.tasks, "create_invoice", {"amount": Decimal("12.34"), "description": "order 7", "ttl": 3600})
        self.assertEqual((by_amount["kind"], by_amount["amount"]), ("donation", Decimal("12.34")))
        self.assertEqual(by_amount["expires_at"], "2026-05-28T21:26:40+00:00")
        self.assertIn("/pay/", by_amount["url"])
        for args in ({"plan": "decade", "chat_id": 1}, {"plan": "month"}, {"amount": Decimal("0")},
                     {"amount": Decimal("1"), "ttl": 5}, {"amount": Decimal("1"), "metadata": {"x": "y" * 5000}},
                     {"amount": Decimal("1"), "metadata": [1]}, {"amount": Decimal("1"), "description": "d" * 501}):
            with self.assertRaises(InvalidTaskArgs, msg=repr(args)):
                await run_task(self.tasks, "create_invoice", args)

    async def test_invoice_status(self):
        created = (await run_task(self.tasks, "create_invoices", {"chat_id": 42}))["invoices"][0]
        status = await run_task(self.tasks, "invoice_status", {"label": created["label"]})
        self.assertEqual(status["status"], "open")
        self.assertEqual(status["kind"], "subscription")
        self.assertIsNone(status["paid_at"])
        await run_task(self.tasks, "apply_payment", {"fields": note("op1", created["label"]), "source": "notification"})
        status = await run_task(self.tasks, "invoice_status", {"label": created["label"]})
        self.assertEqual(status["status"], "paid")
        self.assertEqual(status["paid_at"], "2026-05-28T20:26:40+00:00")
        self.assertIsNone(await run_task(self.tasks, "invoice_status", {"label": "UnknownLabel1234"}))
        self.assertIsNone(await run_task(self.tasks, "invoice_status", {"label": "../etc/passwd"}))
        self.assertIsNone(await run_task(self.tasks, "invoice_status", {"label": "x" * 1000}))
        self.assertIsNone(await run_task(self.tasks, "invoice_status", {"label": 5}))


class ApplyPaymentTaskTests(TasksTestBase):
    async def subscription_invoice(self, chat=42, plan=0):
        return (await run_task(self.tasks, "create_invoices", {"chat_id": chat}))["invoices"][plan]

    async def apply(self, fields, source="notification"):
        return await run_task(self.tasks, "apply_payment", {"fields": fields, "source": source})

    async def test_paid_confirms_and_grants(self):
        inv = await self.subscription_invoice()
        result = await self.apply(note("op1", inv["label"]))
        self.assertEqual(result["outcome"], "paid")
        self.assertEqual(result["ends_at"], "2026-06-27T20:26:40+00:00")
        jobs = self.queue.take()
        self.assertEqual([(q, t, k) for q, t, _, k in jobs],
                         [("bot", "notify", "notify:op1"), ("bot", "grant_access", "grant:op1")])
        self.assertEqual(jobs[0][2]["message"], "payment_confirmed")
        self.assertEqual(jobs[0][2]["chat_id"], 42)
        self.assertEqual(jobs[0][2]["params"]["ends_at"], "2026-06-27T20:26:40+00:00")
        self.assertEqual(jobs[0][2]["params"]["plan_title"], "1 month")
        self.assertNotIn("sender", jobs[0][2]["params"])
        self.assertEqual(jobs[1][2], {"chat_id": 42, "ends_at": "2026-06-27T20:26:40+00:00", "key": "grant:op1"})
        self.assertEqual(jobs[0][2]["key"], "notify:op1")  # the bot dedups its sends by it
        # the same job delivered again: duplicate, no second message
        again = await self.apply(note("op1", inv["label"]))
        self.assertEqual(again["outcome"], "duplicate")
        self.assertEqual(self.queue.take(), [])

    async def test_crash_between_commit_and_enqueue_is_recovered(self):
        inv = await self.subscription_invoice()
        self.queue.fail_next = 1  # Redis fails right after the ledger committed
        with self.assertRaises(ConnectionError):
            await self.apply(note("op1", inv["label"]))
        self.assertEqual(self.queue.take(), [])
        redelivered = await self.apply(note("op1", inv["label"]))
        self.assertEqual(redelivered["outcome"], "duplicate")
        self.assertEqual([t for _, t, _, _ in self.queue.take()], ["notify", "grant_access"])
        self.assertTrue((await self.ledger.payments.get_payment("op1")).notified)
        self.assertEqual((await self.ledger.subscriptions.subscription(42)).ends_at, T0 + 30 * DAY)

    async def test_no_channel_no_invite(self):
        tasks = BillingTasks(make_config(telegram={"channel_id": 0}), self.ledger, self.queue, self.clock)
        inv = await self.subscription_invoice()
        await run_task(tasks, "apply_payment", {"fields": note("op1", inv["label"]), "source": "notification"})
        self.assertEqual([t for _, t, _, _ in self.queue.take()], ["notify"])

    async def test_donation_alerts_owner(self):
        d = await run_task(self.tasks, "create_donation", {"amount": Decimal("300.00"), "name": "Ann", "message": "Keep going"})
        result = await self.apply(note("op1", d["label"], withdraw="300.00", amount="291.00"))
        self.assertEqual(result["outcome"], "paid")
        [(queue, name, args, key)] = self.queue.take()
        self.assertEqual((queue, name, key), ("bot", "notify_admins", "admins:op1"))
        self.assertEqual(args["message"], "donation")
        self.assertEqual(args["params"]["name"], "Ann")
        self.assertEqual(args["params"]["message"], "Keep going")
        self.assertEqual(args["params"]["amount"], Decimal("300.00"))
        self.assertEqual(args["params"]["received"], Decimal("291.00"))

    async def test_underpaid_tells_user_and_admins(self):
        inv = await self.subscription_invoice()
        result = await self.apply(note("op1", inv["label"], withdraw="150.00"))
        self.assertEqual(result["outcome"], "underpaid")
        self.assertIsNone(result["ends_at"])
        jobs = self.queue.take()
        self.assertEqual([(t, a["message"]) for _, t, a, _ in jobs],
                         [("notify", "payment_underpaid"), ("notify_admins", "underpaid")])
        self.assertEqual(jobs[0][2]["params"]["price"], Decimal("199.00"))
        self.assertIsNone(await self.ledger.subscriptions.subscription(42))

    async def test_overpaid_grants_and_alerts(self):
        inv = await self.subscription_invoice()
        result = await self.apply(note("op1", inv["label"], withdraw="500.00"))
        self.assertEqual(result["outcome"], "overpaid")
        jobs = self.queue.take()
        self.assertEqual([(t, a.get("message")) for _, t, a, _ in jobs],
                         [("notify", "payment_confirmed"), ("grant_access", None), ("notify_admins", "overpaid")])

    async def test_unmatched_alerts_admins(self):
        result = await self.apply(note("op1", "someone else's order", withdraw="77.00"))
        self.assertEqual(result["outcome"], "unmatched")
        [(_, name, args, key)] = self.queue.take()
        self.assertEqual((name, args["message"], key), ("notify_admins", "unmatched", "admins:op1"))
        self.assertEqual(args["params"]["amount"], Decimal("77.00"))

    async def test_late_is_granted(self):
        inv = await self.subscription_invoice()
        self.clock.advance(4 * DAY)
        await self.ledger.invoices.expire_invoices(self.clock.seconds())
        result = await self.apply(note("op1", inv["label"]))
        self.assertEqual(result["outcome"], "late")
        self.assertEqual([t for _, t, _, _ in self.queue.take()], ["notify", "grant_access"])

    async def test_held_then_accepted(self):
        inv = await self.subscription_invoice()
        held = await self.apply(note("op1", inv["label"], codepro="true"))
        self.assertEqual(held["outcome"], "held")
        [(_, name, args, key)] = self.queue.take()
        self.assertEqual((name, args["message"], key), ("notify", "payment_held", "notify:op1:held"))
        self.clock.advance(3600)
        accepted = await self.apply(note("op1", inv["label"], codepro="false"))
        self.assertEqual(accepted["outcome"], "paid")
        self.assertTrue(accepted["released"])
        self.assertEqual([(t, a.get("message")) for _, t, a, _ in self.queue.take()],
                         [("notify", "payment_confirmed"), ("grant_access", None)])
        self.assertEqual((await self.ledger.subscriptions.subscription(42)).ends_at, T0 + 3600 + 30 * DAY)

    async def test_test_notification_changes_nothing(self):
        inv = await self.subscription_invoice()
        result = await self.apply(note("test-op", inv["label"], test_notification="true"))
        self.assertEqual(result["outcome"], "test")
        self.assertEqual(self.queue.take(), [])
        self.assertIsNone(await self.ledger.payments.get_payment("test-op"))

    async def test_blocked_user_gets_no_messages(self):
        inv = await self.subscription_invoice()
        await run_task(self.tasks, "mark_blocked", {"chat_id": 42})
        await self.apply(note("op1", inv["label"], withdraw="150.00"))
        self.assertEqual([a["message"] for _, _, a, _ in self.queue.take()], ["underpaid"])

    async def test_malformed_fields_are_quarantined_not_dropped(self):
        result = await self.apply({"operation_id": "op1", "amount": "ten"})
        self.assertEqual(result["outcome"], "quarantined")
        [q] = await self.ledger.quarantine.quarantine_list()
        self.assertIn("billing refused fields", q.reason)
        self.assertIn("ten", q.body)
        result = await self.apply("not even a dict")
        self.assertEqual(result["outcome"], "quarantined")
        with self.assertRaises(InvalidTaskArgs):
            await self.apply(note("op2"), source="telepathy")

    async def test_reconcile_source_recorded(self):
        inv = await self.subscription_invoice()
        await self.apply(note("op1", inv["label"]), source="reconcile")
        self.assertEqual((await self.ledger.payments.get_payment("op1")).source, "reconcile")


class OtherTaskTests(TasksTestBase):
    async def test_quarantine_alerts_are_rate_limited(self):
        first = await run_task(self.tasks, "quarantine", {"body": "a=1", "reason": "sha1_mismatch", "remote": "203.0.113.9"})
        self.assertEqual((first["action"], first["unresolved"]), ("stored", 1))
        await run_task(self.tasks, "quarantine", {"body": "a=2", "reason": "sha1_mismatch", "remote": "203.0.113.9"})
        await run_task(self.tasks, "quarantine", {"body": "a=1", "reason": "sha1_mismatch", "remote": "203.0.113.9"})
        alerts = self.queue.take()
        self.assertEqual(len(alerts), 1)
        self.assertEqual(alerts[0][2]["message"], "quarantine")
        self.assertEqual(alerts[0][2]["params"]["reason"], "sha1_mismatch")
        self.clock.advance(600)
        await run_task(self.tasks, "quarantine", {"body": "a=3", "reason": "sign_mismatch", "remote": "203.0.113.9"})
        [alert] = self.queue.take()
        self.assertEqual(alert[2]["params"]["unresolved"], 3)
        with self.assertRaises(InvalidTaskArgs):
            await run_task(self.tasks, "quarantine", {"body": 5, "reason": "x"})

    async def test_subscription_status(self):
        self.assertIsNone(await run_task(self.tasks, "subscription_status", {"chat_id": 42}))
        inv = (await run_task(self.tasks, "create_invoices", {"chat_id": 42}))["invoices"][0]
        await run_task(self.tasks, "apply_payment", {"fields": note("op1", inv["label"]), "source": "notification"})
        status = await run_task(self.tasks, "subscription_status", {"chat_id": 42})
        self.assertEqual(status, {"plan": "month", "ends_at": "2026-06-27T20:26:40+00:00", "active": True})
        self.clock.advance(31 * DAY)
        self.assertFalse((await run_task(self.tasks, "subscription_status", {"chat_id": 42}))["active"])

    async def test_mark_blocked(self):
        self.assertEqual(await run_task(self.tasks, "mark_blocked", {"chat_id": 9}), {"blocked": True, "new": True})
        self.assertEqual(await run_task(self.tasks, "mark_blocked", {"chat_id": 9}), {"blocked": True, "new": False})
        self.assertTrue(await self.ledger.subscriptions.is_blocked(9))

    async def test_stats(self):
        inv = (await run_task(self.tasks, "create_invoices", {"chat_id": 42}))["invoices"][0]
        await run_task(self.tasks, "apply_payment", {"fields": note("op1", inv["label"], amount="197.03"), "source": "notification"})
        await run_task(self.tasks, "apply_payment", {"fields": note("op2", "", withdraw="0.10"), "source": "notification"})
        stats = await run_task(self.tasks, "stats", {})
        self.assertEqual(stats, {"payments_today": 2, "sum_today": Decimal("197.13"), "payments_month": 2,
                                 "sum_month": Decimal("197.13"), "active_subscribers": 1, "quarantined": 0})

    async def test_registered_handlers_refuse_non_object_arguments(self):
        from ymds.queue.registry import TaskRegistry
        registry = TaskRegistry()
        self.tasks.register(registry)
        for task_name in registry.tasks():
            with self.assertRaises(InvalidTaskArgs, msg=task_name):
                await registry.lookup(task_name)(["not", "an", "object"])
        self.assertEqual((await registry.lookup("stats")({}))["quarantined"], 0)

    def test_registers_every_contract_task(self):
        from ymds.queue.registry import TaskRegistry
        registry = TaskRegistry()
        self.tasks.register(registry)
        self.assertEqual(registry.tasks(), sorted([
            "create_invoices", "create_donation", "create_invoice", "invoice_status", "apply_payment",
            "quarantine", "subscription_status", "mark_blocked", "stats",
            "access_covers", "access_live_invite", "access_swap_invite", "access_member_seen",
            "overlay_token", "donation_board", "donation_public",
            "apply_promo", "start_trial", "redeem_code", "gift_invoices", "promo_add", "promo_list", "promo_disable",
            "codes_add"]))
