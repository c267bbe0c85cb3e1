"""Billing's overlay side (issue 17): a donation applied as paid becomes one overlay event in
a real Redis (private donors without name and message, moderated), then a goal event; a
redelivered payment adds nothing; Redis being down neither fails nor delays the payment and
the outbox sends the event later; the creators' RPCs (token, board, public)."""

from __future__ import annotations

from decimal import Decimal

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from tests.support.ledgers import sqlite_url
from tests.support.queues import RecordingQueue, run_task
from tests.support.redis_server import RedisServer
from tests.test_billing_tasks import make_config, note
from ymds.billing import overlay_jobs
from ymds.billing.jobs import APPLY_PAYMENT, CREATE_DONATION
from ymds.billing.open import open_ledger
from ymds.billing.overlay import OverlayPublisher
from ymds.billing.tasks import BillingTasks
from ymds.overlay.events import DonationEvent, GoalEvent, decode
from ymds.overlay.stream import OverlayStreamWriter, open_redis, stream_key

T0 = 1_780_000_000.0
PREFIX = "t17"


class BrokenRedis:
    """A Redis that is down (every command fails as a lost connection would)."""

    def execute(self, *args, timeout=None):
        from ymds.queue.redis import RedisUnavailable
        return defer.fail(RedisUnavailable("down"))


class OverlayBillingTests(unittest.TestCase):
    def setUp(self):
        self.redis = RedisServer(appendonly=False).start()
        self.addCleanup(self.redis.cleanup)
        self.commands, blocking = open_redis(reactor, self.redis.url, "test")
        blocking.close()
        self.addCleanup(self.commands.close)
        self.ledger = open_ledger(sqlite_url(self), reactor)
        self.addCleanup(self.ledger.close)
        self.clock = task.Clock()
        self.clock.advance(T0)
        self.config = make_config(donations={"goal": "1000.00", "goal_title": "Микрофон", "show_supporters": True},
                                  overlay={"min_alert_amount": "20.00"})
        self.tasks = BillingTasks(self.config, self.ledger, RecordingQueue(), self.clock)
        self.publisher = OverlayPublisher(self.config, self.ledger, OverlayStreamWriter(self.commands, PREFIX),
                                          self.clock)
        self.tasks.payments.overlay = self.publisher
        return self.ledger.migrate()

    async def entries(self):
        reply = await self.commands.execute("XRANGE", stream_key(PREFIX), "-", "+")
        return [(str(i), decode(f)) for i, f in reply or []]

    async def donate(self, op, amount, name="", message="", public=False, pay=True):
        created = await run_task(self.tasks, CREATE_DONATION, {"amount": amount, "name": name, "message": message})
        if public:
            marked = await run_task(self.tasks, overlay_jobs.DONATION_PUBLIC, {"label": created["label"], "name": name})
            self.assertEqual(marked, {"public": True})
        if pay:
            await self.pay(op, created["label"], amount)
        return created["label"]

    async def pay(self, op, label, amount):
        await run_task(self.tasks, APPLY_PAYMENT, {"fields": note(op, label, withdraw=amount)})
        await self.settle()

    async def settle(self):
        await self.publisher.idle()  # the publish runs on the side

    async def test_public_and_private_donations_become_events_once(self):
        await self.donate("op-pub", "300.00", "Аня", "<b>привет</b>", public=True)
        await self.donate("op-priv", "200.00", "Тайный Боб", "private words")
        events = [e for _, e in await self.entries()]
        donations = [e for e in events if isinstance(e, DonationEvent)]
        goals = [e for e in events if isinstance(e, GoalEvent)]
        self.assertEqual([(d.amount, d.name, d.message) for d in donations],
                         [(Decimal("300.00"), "Аня", "<b>привет</b>"), (Decimal("200.00"), None, None)])
        self.assertEqual([g.raised for g in goals], [Decimal("300.00"), Decimal("500.00")])
        self.assertEqual(goals[-1].goal, Decimal("1000.00"))
        everything = repr(await self.commands.execute("XRANGE", stream_key(PREFIX), "-", "+"))
        self.assertNotIn("Боб", everything)
        self.assertNotIn("private words", everything)
        self.assertEqual(await self.ledger.overlay.outbox_pending(T0 + 100), [])

    async def test_redelivered_payment_and_drain_add_no_second_alert(self):
        label = await self.donate("op1", "100.00", "Ann", public=True)
        await self.pay("op1", label, "100.00")  # the job delivered again
        await self.ledger.overlay.outbox_add("op1", T0)  # even a row re-queued by hand
        await self.ledger.db.run(lambda txn: txn.execute("UPDATE overlay_outbox SET sent_at = NULL"))
        await self.publisher.drain()
        donations = [e for _, e in await self.entries() if isinstance(e, DonationEvent)]
        self.assertEqual(len(donations), 1)

    async def test_below_min_alert_amount_no_alert_but_the_goal_moves(self):
        await self.donate("op-small", "15.00", "Ann", public=True)
        events = [e for _, e in await self.entries()]
        self.assertFalse([e for e in events if isinstance(e, DonationEvent)])
        self.assertEqual([e.raised for e in events if isinstance(e, GoalEvent)], [Decimal("15.00")])

    async def test_redis_down_the_payment_is_applied_and_the_outbox_sends_later(self):
        self.publisher.writer = OverlayStreamWriter(BrokenRedis(), PREFIX, attempts=1)
        label = await self.donate("op-down", "100.00", "Ann", public=True)
        self.assertEqual((await self.ledger.invoices.get_invoice(label)).status, "paid")
        self.assertEqual(await self.ledger.overlay.outbox_pending(T0 + 100), ["op-down"])
        self.assertEqual(await self.entries(), [])
        self.publisher.writer = OverlayStreamWriter(self.commands, PREFIX)
        self.clock.advance(60)
        self.assertEqual(await self.publisher.drain(), 1)
        donations = [e for _, e in await self.entries() if isinstance(e, DonationEvent)]
        self.assertEqual([(d.name, d.amount) for d in donations], [("Ann", Decimal("100.00"))])
        self.assertEqual(await self.ledger.overlay.outbox_pending(T0 + 1000), [])

    async def test_token_and_board(self):
        self.assertEqual(await run_task(self.tasks, overlay_jobs.OVERLAY_TOKEN, {}), {"token": None})
        await self.ledger.overlay.set_overlay_token("t" * 32, T0)
        self.assertEqual(await run_task(self.tasks, overlay_jobs.OVERLAY_TOKEN, {}), {"token": "t" * 32})
        await self.donate("op1", "300.00", "Ann", "hi", public=True)
        await self.donate("op2", "200.00", "Hidden", "secret")
        board = await run_task(self.tasks, overlay_jobs.DONATION_BOARD, {})
        self.assertEqual((board["raised"], board["goal"], board["goal_title"]), ("500.00", "1000.00", "Микрофон"))
        self.assertEqual([(d["name"], d["amount"], d["message"]) for d in board["latest"]], [("Ann", "300.00", "hi")])
        self.assertEqual(board["top"], [{"name": "Ann", "total": "300.00"}])
        self.assertNotIn("Hidden", repr(board))
        self.assertNotIn("secret", repr(board))

    async def test_public_refused_for_bad_args_and_unknown_invoices(self):
        from ymds.jobwire import InvalidTaskArgs
        with self.assertRaises(InvalidTaskArgs):
            await run_task(self.tasks, overlay_jobs.DONATION_PUBLIC, {"label": "", "name": "x"})
        self.assertEqual(await run_task(self.tasks, overlay_jobs.DONATION_PUBLIC, {"label": "nope", "name": "x"}),
                         {"public": False})

    async def test_the_timer_drains_what_was_left(self):
        self.tasks.payments.overlay = None  # as if the billing node crashed before publishing
        await self.donate("op-left", "120.00", "Ann", public=True)
        self.assertEqual(await self.entries(), [])
        self.publisher.startService()
        self.addCleanup(self.publisher.stopService)
        await self.publisher.draining
        self.assertEqual(self.publisher.last_drained, 0)  # not yet settled: a live publish may be running
        self.assertEqual(await self.entries(), [])
        drained = []
        for _ in range(3):  # each tick's drain finishes (ledger threads) before the next is due
            self.clock.advance(self.publisher.interval)
            await self.publisher.draining
            drained.append(self.publisher.last_drained)
        self.assertEqual(drained, [0, 1, 0])  # once the row is older than settle, then never again
        donations = [e for _, e in await self.entries() if isinstance(e, DonationEvent)]
        self.assertEqual([(d.name, d.amount) for d in donations], [("Ann", Decimal("120.00"))])
