"""Billing against the sandbox's wallet API over real HTTP on loopback: reconciliation finds
payments whose notifications never arrived, confirm_with_api credits only what
operation-details confirms, and reverify applies quarantined notifications that pass."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qsl

from twisted.internet import reactor, task
from twisted.internet.defer import Deferred
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.support.ledgers import sqlite_url
from tests.support.queues import RecordingQueue, run_task
from ymds.billing.open import open_ledger
from ymds.billing.reverify import reverify
from ymds.billing.tasks import BillingTasks
from ymds.billing.timers import BillingTimers
from ymds.config import load_config
from ymds.sandbox import SandboxResource
from ymds.sandbox.resource import QuickpayForm
from ymds.yoomoney.notification import encode_form
from ymds.yoomoney.signature import add_signatures
from ymds.yoomoney.wallet_api import WalletAPI

SECRET = "sandbox-test-secret-0123456789"
TOKEN = "sandbox-api-token-4100117000000000.ABCDEF"
WALLET = "4100117000000000"
T0 = 1_780_000_000.0
DAY = 86400.0


class Unreachable(Resource):
    """The shop's endpoint while it is down: every notification gets a 503 and is kept here."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.bodies = []

    def render_POST(self, request):
        request.content.seek(0)
        self.bodies.append(request.content.read())
        request.setResponseCode(503)
        return b"down"

    def fields(self, index=-1):
        return dict(parse_qsl(self.bodies[index].decode("utf-8"), keep_blank_values=True))


class SandboxBillingBase(unittest.TestCase):
    yoomoney: dict = {}

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(T0)
        self.endpoint = Unreachable()
        endpoint_port = self.listen(self.endpoint)
        self.config = load_config(raw={
            "server": {"public_url": "http://127.0.0.1:1"},
            "links": {"secret": "link-secret-0123456789abcdef"},
            "yoomoney": {"wallet": WALLET, "notification_secret": SECRET, "api_token": TOKEN, "sandbox": True,
                         **self.yoomoney},
            "telegram": {"channel_id": -100123},
            "plans": [{"id": "month", "title": "1 month", "price": "199.00", "days": 30}],
        }, env={})
        resource = SandboxResource(reactor, self.config, clock=self.clock,
                                   notify_url=f"http://127.0.0.1:{endpoint_port.getHost().port}/yoomoney/notify")
        self.sandbox = resource.sandbox
        self.addCleanup(lambda: Deferred.fromCoroutine(resource.stop()))
        root = Resource()
        root.putChild(b"sandbox", resource)
        self.api_url = f"http://127.0.0.1:{self.listen(root).getHost().port}/sandbox"
        self.api = self.wallet_api(self.api_url)
        self.ledger = open_ledger(sqlite_url(self), reactor)
        self.addCleanup(self.ledger.close)
        self.queue = RecordingQueue()
        self.tasks = BillingTasks(self.config, self.ledger, self.queue, self.clock, wallet_api=self.api)
        self.timers = BillingTimers(self.config, self.ledger, self.queue, self.clock, self.tasks, wallet_api=self.api)
        return self.ledger.migrate()

    def wallet_api(self, url, token=TOKEN):
        api = WalletAPI(reactor, url, token, timeout=5.0)
        self.addCleanup(lambda: Deferred.fromCoroutine(api.close()))
        return api

    def listen(self, resource):
        port = reactor.listenTCP(0, Site(resource), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return port

    async def pay(self, label, amount="199.00", payment_type="AC", **switches):
        form = QuickpayForm(WALLET, payment_type, Decimal(amount), label, "")
        operation, delivery = await self.sandbox.pay(form, **switches)
        self.assertFalse(delivery.delivered)  # the notification did not get through
        return operation

    async def invoice(self, chat=42):
        return (await run_task(self.tasks, "create_invoices", {"chat_id": chat}))["invoices"][0]["label"]


class ReconcileTests(SandboxBillingBase):
    async def test_reconcile_finds_a_payment_whose_notifications_never_arrived(self):
        label = await self.invoice()
        operation = await self.pay(label)
        self.clock.advance(120)
        self.assertIsNone(await self.ledger.payments.get_payment(operation.operation_id))
        report = await self.timers.tick()
        self.assertEqual(report["reconciled"], {"seen": 1, "applied": 1, "released": 0})
        payment = await self.ledger.payments.get_payment(operation.operation_id)
        self.assertEqual((payment.source, payment.status), ("reconcile", "paid"))
        self.assertEqual(payment.withdraw_amount, Decimal("199.00"))
        self.assertEqual(payment.amount, operation.amount)
        self.assertEqual((await self.ledger.subscriptions.subscription(42)).ends_at, T0 + 120 + 30 * DAY)
        self.assertEqual([(t, a.get("message")) for _, t, a, _ in self.queue.take()],
                         [("notify", "payment_confirmed"), ("grant_access", None)])
        # the cursor moved; the next pass finds nothing new, even with the overlap
        self.assertIsNotNone(await self.ledger.cursors.get_cursor("operation-history"))
        self.clock.advance(600)
        report = await self.timers.tick()
        self.assertEqual(report["reconciled"], {"seen": 1, "applied": 0, "released": 0})
        self.assertEqual(self.queue.take(), [])
        # the notification finally arrives (YooMoney's retry): a duplicate, nothing sent again
        result = await run_task(self.tasks, "apply_payment", {"fields": self.endpoint.fields(), "source": "notification"})
        self.assertEqual(result["outcome"], "duplicate")
        self.assertEqual(self.queue.take(), [])

    async def test_reconcile_wallet_payment_and_unmatched(self):
        label = await self.invoice()
        await self.pay(label, payment_type="PC")
        stranger = await self.pay("", amount="55.00")
        await self.timers.reconcile(self.clock.seconds())
        self.assertEqual((await self.ledger.invoices.get_invoice(label)).status, "paid")
        unmatched = await self.ledger.payments.get_payment(stranger.operation_id)
        self.assertEqual((unmatched.status, unmatched.withdraw_amount), ("unmatched", Decimal("55.00")))

    async def test_reconcile_records_held_and_releases_when_accepted(self):
        label = await self.invoice()
        operation = await self.pay(label, codepro=True)
        counts = await self.timers.reconcile(self.clock.seconds())
        self.assertEqual(counts["applied"], 1)
        self.assertEqual((await self.ledger.payments.get_payment(operation.operation_id)).status, "held")
        self.assertEqual([a["message"] for _, _, a, _ in self.queue.take()], ["payment_held"])
        operation.codepro = False  # the payer entered the protection code
        self.clock.advance(300)
        counts = await self.timers.reconcile(self.clock.seconds())
        self.assertEqual(counts["released"], 1)
        self.assertEqual((await self.ledger.payments.get_payment(operation.operation_id)).status, "paid")
        self.assertEqual([a.get("message") for _, _, a, _ in self.queue.take()], ["payment_confirmed", None])

    async def test_held_outside_the_history_window_released_by_details(self):
        label = await self.invoice()
        operation = await self.pay(label, unaccepted=True)
        await run_task(self.tasks, "apply_payment", {"fields": self.endpoint.fields(), "source": "notification"})
        self.assertEqual((await self.ledger.payments.get_payment(operation.operation_id)).status, "held")
        operation.unaccepted = False
        self.clock.advance(10 * DAY)  # far beyond the lookback
        await self.ledger.cursors.set_cursor("operation-history", "2026-06-20T00:00:00+00:00")
        counts = await self.timers.reconcile(self.clock.seconds())
        self.assertEqual(counts, {"seen": 0, "applied": 0, "released": 1})
        # the money arrived while the invoice was open: paid, not late, though accepted later
        self.assertEqual((await self.ledger.payments.get_payment(operation.operation_id)).status, "paid")

    async def test_api_down_does_not_break_the_sweep_forever(self):
        self.timers.wallet_api = self.wallet_api("http://127.0.0.1:1/sandbox")
        label = await self.invoice()
        await self.pay(label)
        with self.assertRaises(Exception):
            await self.timers.reconcile(self.clock.seconds())
        self.timers.wallet_api = self.api
        counts = await self.timers.reconcile(self.clock.seconds())
        self.assertEqual(counts["applied"], 1)


class ConfirmWithAPITests(SandboxBillingBase):
    yoomoney = {"confirm_with_api": True}

    async def apply(self, fields):
        return await run_task(self.tasks, "apply_payment", {"fields": fields, "source": "notification"})

    async def test_confirmed_payment_is_credited(self):
        label = await self.invoice()
        await self.pay(label)
        result = await self.apply(self.endpoint.fields())
        self.assertEqual(result["outcome"], "paid")

    async def test_notification_disagreeing_with_the_api_is_quarantined(self):
        label = await self.invoice()
        await self.pay(label, amount="10.00")
        forged = dict(self.endpoint.fields(), amount="193.03", withdraw_amount="199.00")
        result = await self.apply(forged)
        self.assertEqual(result["outcome"], "quarantined")
        self.assertIsNone(await self.ledger.payments.get_payment(forged["operation_id"]))
        [q] = await self.ledger.quarantine.quarantine_list()
        self.assertIn("operation-details disagrees", q.reason)
        self.assertEqual([a["message"] for _, _, a, _ in self.queue.take()], ["quarantine"])

    async def test_unknown_operation_is_quarantined(self):
        label = await self.invoice()
        await self.pay(label)
        invented = dict(self.endpoint.fields(), operation_id="999999999999")
        self.assertEqual((await self.apply(invented))["outcome"], "quarantined")

    async def test_in_progress_is_held(self):
        label = await self.invoice()
        await self.pay(label)
        fields = self.endpoint.fields()
        self.sandbox.store.get(fields["operation_id"]).unaccepted = True
        self.assertEqual((await self.apply(fields))["outcome"], "held")

    async def test_api_unreachable_records_held(self):
        self.tasks.wallet_api = self.wallet_api("http://127.0.0.1:1/sandbox")
        label = await self.invoice()
        await self.pay(label)
        result = await self.apply(self.endpoint.fields())
        self.assertEqual(result["outcome"], "held")
        self.assertIsNone(await self.ledger.subscriptions.subscription(42))
        # reconciliation (API back) releases it
        counts = await self.timers.reconcile(self.clock.seconds())
        self.assertEqual(counts["released"], 1)
        self.assertIsNotNone(await self.ledger.subscriptions.subscription(42))


class ReverifyTests(SandboxBillingBase):
    def signed(self, op, label, secret, amount="199.00"):
        fields = {"notification_type": "card-incoming", "operation_id": op, "amount": amount,
                  "withdraw_amount": amount, "currency": "643", "datetime": "2026-05-28T10:00:00Z", "sender": "",
                  "codepro": "false", "label": label}
        return encode_form(add_signatures(fields, secret, "sha1")).decode()

    async def test_reverify_with_the_corrected_secret(self):
        label = await self.invoice()
        await self.ledger.quarantine.quarantine_add(self.signed("700", label, SECRET), "sha1_mismatch", "198.51.100.1", T0)
        await self.ledger.quarantine.quarantine_add(self.signed("701", "", "attacker-secret"), "sha1_mismatch", "203.0.113.66", T0)
        await self.ledger.quarantine.quarantine_add("%%%not a form", "parse", "203.0.113.66", T0)
        counts = await reverify(self.ledger, self.config, clock=self.clock, tasks=self.tasks)
        self.assertEqual(counts, {"checked": 3, "applied": 1, "api_confirmed": 0, "still_quarantined": 1, "unparseable": 1})
        # sha1 alone does not cover acceptance and no API was given: held (issue 14)
        self.assertEqual((await self.ledger.payments.get_payment("700")).status, "held")
        self.assertIsNone(await self.ledger.payments.get_payment("701"))
        self.assertEqual(len(await self.ledger.quarantine.quarantine_list()), 2)
        self.assertEqual([a.get("message") for _, _, a, _ in self.queue.take()], ["payment_held"])
        # running it again changes nothing
        again = await reverify(self.ledger, self.config, clock=self.clock)
        self.assertEqual(again["applied"] + again["api_confirmed"], 0)

    async def test_reverify_with_operation_details(self):
        label = await self.invoice()
        operation = await self.pay(label)
        body = self.signed(operation.operation_id, label, "some-unknown-scheme-secret", amount=f"{operation.amount:.2f}")
        body = body.replace(f"withdraw_amount={operation.amount:.2f}", "withdraw_amount=199.00")
        await self.ledger.quarantine.quarantine_add(body, "sign_mismatch", "198.51.100.1", T0)
        forged = self.signed("123456", label, "attacker")
        await self.ledger.quarantine.quarantine_add(forged, "sha1_mismatch", "203.0.113.66", T0)
        counts = await reverify(self.ledger, self.config, wallet_api=self.api, clock=self.clock)
        self.assertEqual((counts["api_confirmed"], counts["still_quarantined"]), (1, 1))
        self.assertEqual((await self.ledger.payments.get_payment(operation.operation_id)).status, "paid")
        [left] = await self.ledger.quarantine.quarantine_list()
        self.assertIn("123456", left.body)
        [done] = [q for q in await self.ledger.quarantine.quarantine_list(unresolved_only=False) if q.resolved_at]
        self.assertEqual(done.resolution, "api_confirmed:paid")
