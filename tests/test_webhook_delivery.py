"""Webhook delivery against a real receiver (twisted.web on loopback) through TreqSender,
with the backoff and the 24-hour limit on a task.Clock; the outbox events billing writes."""

from __future__ import annotations

import json

from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from tests.support.ledgers import sqlite_url
from tests.support.queues import RecordingQueue, run_task
from tests.test_billing_tasks import make_config, note
from ymds.billing.open import open_ledger
from ymds.billing.tasks import BillingTasks
from ymds.billing.timers import BillingTimers
from ymds.client import verify_webhook
from ymds.webhooks.delivery import TASK, TreqSender, WebhookDeliverer, default_backoff

T0 = 1_780_000_000.0
DAY = 86400.0
SECRET = "whsec_test-secret"


class Receiver(Resource):
    """Answers each POST with the next planned status (default 200) and records it."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.received: list[dict] = []
        self.plan: list[int] = []
        self.status_for = None  # event id -> status, overrides plan
        self.hang = False
        self.body = b"ok"
        self.redirect = False

    def render_POST(self, request):
        body = request.content.read()
        self.received.append({"headers": {k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()},
                              "body": body, "event": json.loads(body), "path": request.path.decode()})
        if self.hang:
            return NOT_DONE_YET
        if self.redirect:
            request.setResponseCode(302)
            request.setHeader(b"location", b"/elsewhere")
            return b""
        status = self.plan.pop(0) if self.plan else 200
        if self.status_for is not None:
            status = self.status_for(self.received[-1]["event"]["id"], self.received[-1]["path"])
        request.setResponseCode(status)
        return self.body

    def ids(self):
        return [r["event"]["id"] for r in self.received]


class DeliveryTestBase(unittest.TestCase):
    timeout = 60

    def setUp(self):
        self.ledger = open_ledger(sqlite_url(self), reactor)
        self.addCleanup(self.ledger.close)
        self.clock = task.Clock()
        self.clock.advance(T0)
        self.queue = RecordingQueue(with_delay=True)
        self.receiver = Receiver()
        self.port = reactor.listenTCP(0, Site(self.receiver), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.url = f"http://127.0.0.1:{self.port.getHost().port}/hook"
        self.sender = TreqSender(reactor, timeout=2.0)
        self.addCleanup(self.sender.close)
        self.deliverer = WebhookDeliverer(self.ledger, self.queue, self.clock, self.sender, reactor)
        return self.ledger.migrate()

    async def endpoint(self, endpoint_id="we_1", events=("*",), url=None):
        return await self.ledger.webhooks.webhook_endpoint_add(endpoint_id, url or self.url, list(events), SECRET,
                                                      self.clock.seconds())

    async def emit(self, n, event_type="invoice.paid"):
        return await self.deliverer.emit([(event_type, f"{event_type}:op{n}", {"n": n})])

    async def run_jobs(self):
        """Run the deliver jobs that are due now (as the worker would); returns their results."""
        results = []
        for job in self.queue.take(TASK):
            _, _, args, key, delay = job
            if delay:
                self.queue.jobs.append(job)  # not yet: the delayed set keeps it
                continue
            results.append(await run_task(self.deliverer, TASK, args))
        return results

    async def advance(self, seconds):
        """Move the clock; delayed jobs that fall due become immediate."""
        self.clock.advance(seconds)
        kept = []
        for (queue, name, args, key, delay) in self.queue.jobs:
            if name == TASK and delay:
                delay = max(0.0, delay - seconds) or None
            kept.append((queue, name, args, key, delay))
        self.queue.jobs = kept


class Delivery(DeliveryTestBase):
    async def test_signed_body_and_headers(self):
        await self.endpoint()
        await self.emit(1)
        self.assertEqual(await self.run_jobs(), [{"outcome": "idle", "sent": 1}])
        [got] = self.receiver.received
        event = verify_webhook(SECRET, got["headers"]["ymds-signature"], got["body"], now=self.clock.seconds())
        self.assertEqual((event["type"], event["data"], event["created"]), ("invoice.paid", {"n": 1}, int(T0)))
        self.assertTrue(event["id"].startswith("evt_"))
        self.assertEqual(got["headers"]["ymds-event-id"], event["id"])
        self.assertEqual(got["headers"]["content-type"], "application/json")
        self.assertTrue(got["headers"]["ymds-signature"].startswith(f"t={int(T0)},v1="))
        [attempt] = await self.ledger.webhooks.webhook_attempts()
        self.assertEqual((attempt.status_code, attempt.outcome, attempt.error), (200, "delivered", None))

    async def test_retries_with_backoff_until_the_receiver_succeeds(self):
        await self.endpoint()
        await self.emit(1)
        self.receiver.plan = [500, 503]
        self.assertEqual(await self.run_jobs(), [{"outcome": "retry", "sent": 0}])
        [(_, _, _, _, delay)] = self.queue.jobs
        self.assertEqual(delay, default_backoff(1))
        self.assertEqual(default_backoff(1), 10.0)
        # a wake-up before it is due sends nothing and re-arms the delayed job
        self.assertEqual(await run_task(self.deliverer, TASK, {"endpoint_id": "we_1"}), {"outcome": "waiting", "sent": 0})
        self.assertEqual(len(self.receiver.received), 1)
        await self.advance(10)
        self.assertEqual(await self.run_jobs(), [{"outcome": "retry", "sent": 0}])
        self.assertEqual([j[4] for j in self.queue.jobs], [30.0])
        await self.advance(30)
        self.assertEqual(await self.run_jobs(), [{"outcome": "idle", "sent": 1}])
        ids = self.receiver.ids()
        self.assertEqual(len(ids), 3)
        self.assertEqual(len(set(ids)), 1)  # the same event id each time: receivers dedup on it
        stamps = [int(r["headers"]["ymds-signature"].split(",")[0][2:]) for r in self.receiver.received]
        self.assertEqual(stamps, [int(T0), int(T0) + 10, int(T0) + 40])  # signed at send time
        log = await self.ledger.webhooks.webhook_attempts(endpoint_id="we_1")
        self.assertEqual([(a.status_code, a.outcome) for a in log], [(500, "retry"), (503, "retry"), (200, "delivered")])
        self.assertTrue(log[0].error.startswith("HTTP 500"))
        self.assertEqual(await self.ledger.webhooks.webhook_deliveries(status="pending"), [])

    async def test_per_endpoint_order(self):
        await self.endpoint(url=self.url + "/one")
        await self.endpoint("we_2", url=self.url + "/two")
        for n in range(3):
            await self.emit(n)
        # endpoint one fails its first event twice; endpoint two is not held up by it
        self.receiver.status_for = lambda event_id, path: 500 if path.endswith("/one") and self.fail_one else 200
        self.fail_one = True
        results = await self.run_jobs()
        self.assertIn({"outcome": "retry", "sent": 0}, results)
        self.assertIn({"outcome": "idle", "sent": 3}, results)
        one = [r["event"]["data"]["n"] for r in self.receiver.received if r["path"].endswith("/one")]
        two = [r["event"]["data"]["n"] for r in self.receiver.received if r["path"].endswith("/two")]
        self.assertEqual((one, two), ([0], [0, 1, 2]))  # later events of endpoint one wait
        await self.advance(5)
        await run_task(self.deliverer, TASK, {"endpoint_id": "we_1"})  # early wake-ups send nothing
        await self.advance(5)
        await self.run_jobs()
        one = [r["event"]["data"]["n"] for r in self.receiver.received if r["path"].endswith("/one")]
        self.assertEqual(one, [0, 0])
        self.fail_one = False
        await self.advance(30)
        self.assertEqual(await self.run_jobs(), [{"outcome": "idle", "sent": 3}])
        one = [r["event"]["data"]["n"] for r in self.receiver.received if r["path"].endswith("/one")]
        self.assertEqual(one, [0, 0, 0, 1, 2])
        self.assertEqual(await self.ledger.webhooks.webhook_deliveries(status="pending"), [])

    async def test_one_deliverer_per_endpoint(self):
        await self.endpoint()
        await self.emit(1)
        self.receiver.hang = True
        self.sender.timeout = 0.5
        first = defer.Deferred.fromCoroutine(run_task(self.deliverer, TASK, {"endpoint_id": "we_1"}))
        while not self.receiver.received:  # the first deliverer is sending (real IO)
            await task.deferLater(reactor, 0.01)
        second = await run_task(self.deliverer, TASK, {"endpoint_id": "we_1"})
        self.assertEqual(second, {"outcome": "busy"})
        self.assertEqual(await first, {"outcome": "retry", "sent": 0})
        [attempt] = await self.ledger.webhooks.webhook_attempts()
        self.assertIsNone(attempt.status_code)
        self.assertIn("no answer in time", attempt.error)

    async def test_gives_up_after_24_hours_alerts_and_the_next_proceeds(self):
        await self.endpoint()
        await self.emit(1)
        await self.emit(2)
        doomed = (await self.ledger.webhooks.webhook_deliveries())[0].event_id
        self.receiver.status_for = lambda event_id, path: 500 if event_id == doomed else 200
        rounds = 0
        while await self.ledger.webhooks.webhook_deliveries(status="pending"):
            await self.run_jobs()
            delays = [j[4] for j in self.queue.jobs if j[1] == TASK and j[4]]
            if delays:
                await self.advance(min(delays))
            rounds += 1
            self.assertLess(rounds, 100)
        attempts = await self.ledger.webhooks.webhook_attempts(event_id=doomed)
        self.assertEqual(attempts[-1].outcome, "failed")
        self.assertEqual(attempts[-1].at - attempts[0].at, DAY)  # the last try exactly at the 24-hour mark
        self.assertTrue(all(a.outcome == "retry" for a in attempts[:-1]))
        gaps = [b.at - a.at for a, b in zip(attempts, attempts[1:])]
        self.assertEqual(gaps[:5], [10.0, 30.0, 90.0, 270.0, 810.0])
        self.assertLessEqual(max(gaps), 3600.0)
        [alert] = self.queue.take("notify_admins")
        self.assertEqual((alert[0], alert[2]["message"], alert[2]["params"]["event_id"]), ("bot", "webhook_failed", doomed))
        self.assertEqual(self.receiver.ids()[-1], (await self.ledger.webhooks.webhook_deliveries())[1].event_id)
        [failed] = await self.ledger.webhooks.webhook_deliveries(status="failed")
        self.assertEqual(failed.event_id, doomed)

    async def test_redirects_are_not_followed_and_bodies_are_bounded(self):
        await self.endpoint()
        await self.emit(1)
        self.receiver.redirect = True
        await self.run_jobs()
        [attempt] = await self.ledger.webhooks.webhook_attempts()
        self.assertEqual((attempt.status_code, attempt.outcome), (302, "retry"))
        self.assertEqual(len(self.receiver.received), 1)
        self.receiver.redirect = False
        self.receiver.plan = [500]
        self.receiver.body = b"x" * 1_000_000
        await self.advance(10)
        await self.run_jobs()
        last = (await self.ledger.webhooks.webhook_attempts())[-1]
        self.assertEqual(last.status_code, 500)
        self.assertLessEqual(len(last.error), 500)

    async def test_unreachable_endpoint_is_an_error_not_a_crash(self):
        await self.endpoint(url="http://127.0.0.1:1/nothing-listens")
        await self.emit(1)
        self.assertEqual(await self.run_jobs(), [{"outcome": "retry", "sent": 0}])
        [attempt] = await self.ledger.webhooks.webhook_attempts()
        self.assertIsNone(attempt.status_code)
        self.assertTrue(attempt.error)

    async def test_sweep_recovers_a_lost_wake_up(self):
        await self.endpoint()
        await self.emit(1)
        self.receiver.plan = [500]
        await self.run_jobs()
        self.queue.jobs.clear()  # the process died: its delayed wake-up is gone
        self.assertEqual(await self.deliverer.sweep(), 0)  # not due yet
        await self.advance(10)
        self.assertEqual(await self.deliverer.sweep(), 1)
        self.assertEqual(await self.run_jobs(), [{"outcome": "idle", "sent": 1}])
        self.assertEqual(await self.deliverer.sweep(), 0)

    async def test_removed_endpoint_gets_nothing_more(self):
        await self.endpoint()
        await self.emit(1)
        await self.ledger.webhooks.webhook_endpoint_remove("we_1", T0)
        self.assertEqual(await self.run_jobs(), [{"outcome": "busy"}])
        self.assertEqual(self.receiver.received, [])

    async def test_bad_task_arguments(self):
        from ymds.queue.errors import PermanentJobError
        for args in ({}, {"endpoint_id": 5}, {"endpoint_id": "x" * 100}, None):
            with self.assertRaises(PermanentJobError):
                await run_task(self.deliverer, TASK, args)

    async def test_a_long_backlog_continues_in_fresh_jobs(self):
        self.deliverer.max_per_job = 2
        await self.endpoint()
        for n in range(5):
            await self.emit(n)
        self.queue.jobs.clear()
        self.assertEqual(await run_task(self.deliverer, TASK, {"endpoint_id": "we_1"}), {"outcome": "more", "sent": 2})
        self.assertEqual(await self.run_jobs(), [{"outcome": "more", "sent": 2}])
        self.assertEqual(await self.run_jobs(), [{"outcome": "idle", "sent": 1}])
        self.assertEqual([r["event"]["data"]["n"] for r in self.receiver.received], [0, 1, 2, 3, 4])


class BillingEvents(DeliveryTestBase):
    """What billing puts in the outbox: once per cause, however often it is re-derived."""

    def setUp(self):
        d = super().setUp()
        self.config = make_config()
        self.tasks = BillingTasks(self.config, self.ledger, self.queue, self.clock, webhooks=self.deliverer)
        return d

    async def outbox(self):
        return [(d.type, d.data) for d in await self.ledger.webhooks.webhook_deliveries(endpoint_id="we_1")]

    async def test_paid_plan_invoice(self):
        await self.endpoint()
        inv = await run_task(self.tasks, "create_invoice", {"plan": "month", "chat_id": 42, "metadata": {"order": "A-1"}})
        await run_task(self.tasks, "apply_payment", {"fields": note("op-1", inv["label"]), "source": "notification"})
        events = await self.outbox()
        self.assertEqual([t for t, _ in events], ["invoice.paid", "subscription.extended"])
        paid = events[0][1]
        self.assertEqual((paid["invoice"]["label"], paid["invoice"]["status"], paid["invoice"]["metadata"],
                          paid["payment"]["amount"], paid["payment"]["operation_id"]),
                         (inv["label"], "paid", {"order": "A-1"}, "199.00", "op-1"))
        self.assertNotIn("sender", paid["payment"])
        self.assertEqual(events[1][1]["subscription"], {"chat_id": 42, "plan": "month",
                                                        "ends_at": "2026-06-27T20:26:40+00:00", "active": True})
        self.assertEqual(len(self.queue.take(TASK)), 1)  # one wake-up for the endpoint
        # billing crashed before marking the payment notified: the redelivered job re-derives
        await self.ledger.db.run(lambda txn: txn.execute("UPDATE payments SET notified = 0"))
        again = await run_task(self.tasks, "apply_payment", {"fields": note("op-1", inv["label"]), "source": "notification"})
        self.assertEqual(again["outcome"], "duplicate")
        self.assertEqual(len(await self.outbox()), 2)
        self.assertEqual(self.queue.take(TASK), [])  # same causes: same wake-up key, nothing new

    async def test_underpaid_unmatched_held_and_released(self):
        await self.endpoint()
        inv = await run_task(self.tasks, "create_invoice", {"amount": "500.00", "description": "d"})
        await run_task(self.tasks, "apply_payment", {"fields": note("op-u", inv["label"], withdraw="100.00"), "source": "notification"})
        await run_task(self.tasks, "apply_payment", {"fields": note("op-x", "not-ours"), "source": "notification"})
        inv2 = await run_task(self.tasks, "create_invoice", {"amount": "10.00"})
        await run_task(self.tasks, "apply_payment", {"fields": note("op-h", inv2["label"], withdraw="10.00", unaccepted="true"),
                                        "source": "notification"})
        self.assertEqual([t for t, _ in await self.outbox()], ["invoice.underpaid", "payment.unmatched"])
        result = await self.ledger.payments.release_payment("op-h", T0)
        await self.tasks.follow_up(result)
        self.assertEqual([t for t, _ in await self.outbox()], ["invoice.underpaid", "payment.unmatched", "invoice.paid"])

    async def test_expiry_once(self):
        await self.endpoint()
        inv = await run_task(self.tasks, "create_invoice", {"plan": "month", "chat_id": 7})
        await run_task(self.tasks, "apply_payment", {"fields": note("op-1", inv["label"]), "source": "notification"})
        timers = BillingTimers(self.config, self.ledger, self.queue, self.clock, self.tasks, webhooks=self.deliverer)
        self.clock.advance(31 * DAY)
        await timers.tick()
        await timers.tick()
        types = [t for t, _ in await self.outbox()]
        self.assertEqual(types, ["invoice.paid", "subscription.extended", "subscription.expired"])
        expired = (await self.outbox())[-1][1]
        self.assertEqual(expired["subscription"]["chat_id"], 7)
        self.assertFalse(expired["subscription"]["active"])

    async def test_endpoint_filters_event_types(self):
        await self.endpoint(events=["payment.unmatched"])
        inv = await run_task(self.tasks, "create_invoice", {"amount": "5.00"})
        await run_task(self.tasks, "apply_payment", {"fields": note("op-1", inv["label"], withdraw="5.00"), "source": "notification"})
        await run_task(self.tasks, "apply_payment", {"fields": note("op-2", "zzz", withdraw="5.00"), "source": "notification"})
        self.assertEqual([t for t, _ in await self.outbox()], ["payment.unmatched"])

    async def test_tasks_without_a_deliverer_still_write_the_outbox(self):
        """ymds reverify/reconcile build BillingTasks without one: their payments still get events."""
        await self.endpoint()
        plain = BillingTasks(self.config, self.ledger, self.queue, self.clock)
        inv = await run_task(plain, "create_invoice", {"amount": "5.00"})
        await run_task(plain, "apply_payment", {"fields": note("op-1", inv["label"], withdraw="5.00"), "source": "manual"})
        self.assertEqual([t for t, _ in await self.outbox()], ["invoice.paid"])
        self.assertEqual([(q, name, args) for q, name, args, _, _ in self.queue.take(TASK)],
                         [("billing", TASK, {"endpoint_id": "we_1"})])

    async def test_no_outbox_transaction_without_endpoints(self):
        inv = await run_task(self.tasks, "create_invoice", {"amount": "5.00"})
        await run_task(self.tasks, "apply_payment", {"fields": note("op-1", inv["label"], withdraw="5.00"), "source": "notification"})
        self.assertEqual(await self.ledger.webhooks.webhook_deliveries(), [])
        count = await self.ledger.db.run(lambda txn: txn.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0])
        self.assertEqual(count, 0)

