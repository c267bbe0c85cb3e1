"""Billing timers under a fake Clock: invoice expiry, reminders, subscription expiry, pruning,
and two billing processes sweeping the same ledger at once."""

from __future__ import annotations

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from tests.support.ledgers import PostgresLedgerMixin, SQLiteLedgerMixin
from tests.support.queues import RecordingQueue, run_task
from tests.test_billing_tasks import make_config, note
from ymds.billing.open import open_ledger
from ymds.billing.tasks import BillingTasks
from ymds.billing.timers import BillingTimers

T0 = 1_780_000_000.0
DAY = 86400.0
CHANNEL = make_config().telegram.channel_id


class TimersTestBase(SQLiteLedgerMixin, unittest.TestCase):

    def setUp(self):
        self.url = self.make_url()
        self.ledger = self.open()
        self.clock = task.Clock()
        self.clock.advance(T0)
        # every enqueue recorded, keys ignored: the ledger's claims alone keep two processes
        # from sending the same message
        self.queue = RecordingQueue(honour_keys=False)
        self.config = make_config()
        self.tasks = BillingTasks(self.config, self.ledger, self.queue, self.clock)
        self.timers = BillingTimers(self.config, self.ledger, self.queue, self.clock, self.tasks)
        return self.ledger.migrate()

    def open(self):
        ledger = open_ledger(self.url, reactor)
        self.addCleanup(ledger.close)
        return ledger

    async def subscribe(self, chat, plan=0):
        inv = (await run_task(self.tasks, "create_invoices", {"chat_id": chat}))["invoices"][plan]
        result = await run_task(self.tasks, "apply_payment", {"fields": note(f"op-{chat}-{self.clock.seconds()}", inv["label"]),
                                                 "source": "notification"})
        self.queue.take()
        return (await self.ledger.subscriptions.subscription(chat)).ends_at

    def at(self, when):
        self.clock.advance(when - self.clock.seconds())


class SweepTests(TimersTestBase):
    async def test_reminders_then_expiry(self):
        ends = await self.subscribe(42)
        self.at(ends - 4 * DAY)
        await self.timers.tick()
        self.assertEqual(self.queue.take(), [])
        self.at(ends - 3 * DAY + 60)
        await self.timers.tick()
        [(queue, name, args, key)] = self.queue.take()
        self.assertEqual((queue, name, args["message"], args["chat_id"]), ("bot", "notify", "reminder", 42))
        self.assertEqual(args["params"]["days_left"], 3)
        self.assertEqual(args["params"]["ends_at"], "2026-06-27T20:26:40+00:00")
        self.assertEqual(key, f"reminder:42:{int(ends)}:{3 * 86400}")
        await self.timers.tick()
        self.assertEqual(self.queue.take(), [])  # once
        self.at(ends - DAY + 60)
        await self.timers.tick()
        [(_, _, args, key)] = self.queue.take()
        self.assertEqual((args["message"], args["params"]["days_left"]), ("reminder", 1))
        self.assertEqual(key, f"reminder:42:{int(ends)}:86400")
        self.at(ends + 1)
        await self.timers.tick()
        jobs = self.queue.take()
        self.assertEqual([(t, a.get("message"), k) for _, t, a, k in jobs],
                         [("notify", "expired", f"expired:42:{int(ends)}"),
                          ("access_remove", None, f"access_remove:42:{CHANNEL}:{int(ends)}")])
        self.assertEqual(jobs[1][2], {"chat_id": CHANNEL, "user_id": 42, "reason": "expired",
                                      "key": f"access_remove:42:{CHANNEL}:{int(ends)}"})
        await self.timers.tick()
        self.assertEqual(self.queue.take(), [])

    async def test_short_subscription_gets_only_the_one_day_reminder(self):
        ends = await self.subscribe(42)
        self.at(ends - DAY / 2)
        await self.timers.tick()
        [(_, _, args, _)] = self.queue.take()
        self.assertEqual(args["params"]["days_left"], 1)
        await self.timers.tick()
        self.assertEqual(self.queue.take(), [])

    async def test_renewal_before_the_end_cancels_expiry(self):
        ends = await self.subscribe(42)
        self.at(ends - DAY + 60)
        await self.timers.tick()
        self.queue.take()
        new_end = await self.subscribe(42)
        self.assertEqual(new_end, ends + 30 * DAY)
        self.at(ends + 1)
        await self.timers.tick()
        self.assertEqual(self.queue.take(), [])  # no expiry, no revoke

    async def test_no_channel_no_revoke(self):
        self.timers.config = make_config(telegram={"channel_id": 0})
        ends = await self.subscribe(42)
        self.at(ends + 1)
        await self.timers.tick()
        self.assertEqual([a["message"] for _, _, a, _ in self.queue.take()], ["expired"])

    async def test_blocked_chat_is_revoked_but_not_messaged(self):
        ends = await self.subscribe(42)
        await self.ledger.subscriptions.mark_blocked(42, self.clock.seconds())
        self.at(ends - DAY + 60)
        await self.timers.tick()
        self.assertEqual(self.queue.take(), [])
        self.at(ends + 1)
        await self.timers.tick()
        self.assertEqual([t for _, t, _, _ in self.queue.take()], ["access_remove"])

    async def test_failed_enqueue_is_retried_next_tick(self):
        ends = await self.subscribe(42)
        self.at(ends - 2 * DAY)
        self.queue.fail_next = 1
        with self.assertRaises(ConnectionError):
            await self.timers.tick()
        self.assertEqual(self.queue.take(), [])
        await self.timers.tick()
        self.assertEqual([a["message"] for _, _, a, _ in self.queue.take()], ["reminder"])
        self.at(ends + 1)
        self.queue.fail_next = 1
        with self.assertRaises(ConnectionError):
            await self.timers.tick()
        await self.timers.tick()
        self.assertEqual([a.get("message") for _, _, a, _ in self.queue.take()], ["expired", None])

    async def test_invoices_expire_and_are_pruned_after_30_days(self):
        inv = (await run_task(self.tasks, "create_invoices", {"chat_id": 42}))["invoices"][0]
        self.at(T0 + 3 * DAY + 1)
        report = await self.timers.tick()
        self.assertEqual(report["expired_invoices"], 2)
        self.assertEqual((await self.ledger.invoices.get_invoice(inv["label"])).status, "expired")
        self.at(T0 + 20 * DAY)
        await self.timers.tick()
        self.assertIsNotNone(await self.ledger.invoices.get_invoice(inv["label"]))
        self.at(T0 + 34 * DAY)
        report = await self.timers.tick()
        self.assertEqual(report["pruned"], 2)
        self.assertIsNone(await self.ledger.invoices.get_invoice(inv["label"]))

    async def test_batches_larger_than_one_query(self):
        self.timers.batch = 7
        ends = [await self.subscribe(chat) for chat in range(1, 21)]
        self.at(max(ends) - 2 * DAY)
        await self.timers.tick()
        self.assertEqual(sorted(a["chat_id"] for _, _, a, _ in self.queue.take()), list(range(1, 21)))

    async def test_two_processes_never_double_send(self):
        """Two timer services on two ledger connections sweep the same moment together."""
        for chat in range(1, 31):
            await self.subscribe(chat)
        other_ledger = self.open()
        other_queue = RecordingQueue(honour_keys=False)
        other = BillingTimers(self.config, other_ledger, other_queue, self.clock,
                              BillingTasks(self.config, other_ledger, other_queue, self.clock), batch=5)
        self.timers.batch = 5
        ends = (await self.ledger.subscriptions.subscription(1)).ends_at
        for moment in (ends - 2 * DAY, ends - DAY / 2, ends + 1):
            self.at(moment)
            await defer.gatherResults([defer.Deferred.fromCoroutine(self.timers.tick()),
                                       defer.Deferred.fromCoroutine(other.tick())])
        jobs = self.queue.take() + other_queue.take()
        keys = [k for _, _, _, k in jobs]
        self.assertEqual(len(keys), len(set(keys)))
        self.assertEqual(len(keys), 30 * 4)  # 3-day and 1-day reminders, expired, access_remove


class PostgresSweepTests(PostgresLedgerMixin, SweepTests):
    """The same sweeps on PostgreSQL (errors, never skips, without a server)."""


class ServiceTests(TimersTestBase):
    async def test_looping_service_runs_on_the_clock(self):
        ends = await self.subscribe(42)
        self.at(ends - 2 * DAY)
        self.timers.startService()
        self.assertIsNotNone(self.timers._running)  # the first sweep started at once
        await self.timers._running
        self.assertEqual([a["message"] for _, _, a, _ in self.queue.take()], ["reminder"])
        self.clock.advance(60)
        if self.timers._running is not None:
            await self.timers._running
        self.assertEqual(self.queue.take(), [])
        await self.timers.stopService()
        self.assertFalse(self.timers._loop.running)

    async def test_a_failing_sweep_does_not_stop_the_loop(self):
        ends = await self.subscribe(42)
        self.at(ends - 2 * DAY)
        self.queue.fail_next = 1
        self.timers.startService()
        self.addCleanup(self.timers.stopService)
        await self.timers._running
        self.assertEqual(len(self.flushLoggedErrors(ConnectionError)), 1)
        self.clock.advance(60)
        await self.timers._running
        self.assertEqual([a["message"] for _, _, a, _ in self.queue.take()], ["reminder"])
