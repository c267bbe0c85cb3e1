"""The sandbox and the wallet API client together, over real HTTP on loopback.

A small twisted.web Site in the test receives the sandbox's notifications; the retry
schedule runs on a twisted.internet.task.Clock.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timezone
from decimal import Decimal
from urllib.parse import parse_qsl

from treq.client import HTTPClient
from twisted.internet import defer, reactor, ssl
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial import unittest
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from ymds.config import load_config
from ymds.sandbox import SandboxResource
from ymds.sandbox.resource import FormError, QuickpayForm, parse_quickpay
from ymds.yoomoney.notification import notification_from_fields, parse_notification
from ymds.sandbox.secret import sandbox_secret
from ymds.yoomoney.signature import verify
from ymds.yoomoney.test_notification import send_test_notification
from ymds.yoomoney.wallet_api import (
    HTTPFailure, IllegalParam, InsufficientScope, InvalidToken, Timeout, WalletAPI,
)

SECRET = "sandbox-test-secret-0123456789"
MINTED = sandbox_secret(SECRET)  # what the sandbox signs with (issue 14: never the real secret)
TOKEN = "sandbox-api-token-4100117000000000.ABCDEF"
WALLET = "4100117000000000"


def make_config(**yoomoney):
    values = {"wallet": WALLET, "notification_secret": SECRET, "api_token": TOKEN, "sandbox": True}
    values.update(yoomoney)
    return load_config(raw={"server": {"public_url": "http://127.0.0.1:1"}, "yoomoney": values}, env={})


class Receiver(Resource):
    """A shop's notification endpoint: records (clock time, body), answers scripted statuses."""

    isLeaf = True

    def __init__(self, clock, statuses=()):
        super().__init__()
        self.clock = clock
        self.statuses = list(statuses)
        self.received: list[tuple[float, bytes]] = []
        self.hang = False

    def render_POST(self, request):
        request.content.seek(0)
        self.received.append((self.clock.seconds(), request.content.read()))
        if self.hang:
            return NOT_DONE_YET
        request.setResponseCode(self.statuses.pop(0) if self.statuses else 200)
        return b"OK"

    def times(self) -> list[float]:
        return [t for t, _ in self.received]

    def fields(self, index: int = -1) -> dict[str, str]:
        return dict(parse_qsl(self.received[index][1].decode("utf-8"), keep_blank_values=True))


class SandboxTestCase(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.receiver = Receiver(self.clock)
        self.receiver_port = self.listen(self.receiver)
        self.notify_url = f"http://127.0.0.1:{self.receiver_port.getHost().port}/yoomoney/notify"
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = HTTPClient(Agent(reactor, pool=self.pool))
        self.start_sandbox()

    def start_sandbox(self, config=None, **options):
        options.setdefault("notify_url", self.notify_url)
        self.config = config or make_config()
        self.resource = SandboxResource(reactor, self.config, clock=self.clock, **options)
        self.sandbox = self.resource.sandbox
        root = Resource()
        root.putChild(b"sandbox", self.resource)
        port = self.listen(root)
        self.base = f"http://127.0.0.1:{port.getHost().port}/sandbox"
        resource = self.resource
        self.addCleanup(lambda: Deferred.fromCoroutine(resource.stop()))
        self.api = self.wallet_api(TOKEN)

    def wallet_api(self, token, **kwargs):
        api = WalletAPI(reactor, self.base, token, **kwargs)
        self.addCleanup(lambda: Deferred.fromCoroutine(api.close()))
        return api

    def listen(self, resource, tls=None):
        site = Site(resource)
        if tls is None:
            port = reactor.listenTCP(0, site, interface="127.0.0.1")
        else:
            port = reactor.listenSSL(0, site, tls, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return port

    def tearDown(self):
        return self.pool.closeCachedConnections()

    def quickpay(self, **changes):
        form = {"receiver": WALLET, "quickpay-form": "button", "paymentType": "AC", "sum": "100.00",
                "label": "abcdefgh12345", "successURL": "http://127.0.0.1:1/thanks?x=1"}
        form.update(changes)
        return [(k, v) for k, v in form.items() if v is not None]

    async def post(self, path, data):
        response = await self.http.post(self.base + path, data=data, allow_redirects=False)
        return response, await response.content()

    async def pay(self, **changes):
        switches = {k: changes.pop(k) for k in list(changes) if k in
                    ("unaccepted", "codepro", "test_notification", "duplicate", "fail_first", "action")}
        data = self.quickpay(**changes) + [("action", switches.pop("action", "pay"))]
        data += [(name, "true") for name, on in switches.items() if on]
        data.append(("csrf", self.csrf_for(data)))
        return await self.post("/quickpay/pay", data)

    def csrf_for(self, data) -> str:
        """The token the confirm page would have given for these fields ("" if they are bad)."""
        try:
            form = parse_quickpay(dict(data), self.config.yoomoney.wallet, self.config.server.public_url)
        except FormError:
            return ""
        return self.sandbox.csrf_token(form)


def inline(f):
    """Run an async test method as a Deferred."""
    def wrapper(self, *args, **kwargs):
        return Deferred.fromCoroutine(f(self, *args, **kwargs))
    wrapper.__name__ = f.__name__
    return wrapper


class ConfirmPageTests(SandboxTestCase):
    @inline
    async def test_confirm_page_shows_the_form(self):
        response, body = await self.post("/quickpay/confirm", self.quickpay(label="lbl<b>&x", sum="199"))
        self.assertEqual(response.code, 200)
        html = body.decode("utf-8")
        self.assertIn("TEST WALLET", html)
        self.assertIn(WALLET, html)
        self.assertIn("199.00", html)
        self.assertIn("193.03", html)  # credited after the 3 % card fee
        self.assertIn("lbl&lt;b&gt;&amp;x", html)
        self.assertNotIn("lbl<b>", html)
        self.assertIn("Bank card", html)
        self.assertIn('value="decline"', html)
        for switch in ("unaccepted", "codepro", "test_notification", "duplicate", "fail_first"):
            self.assertIn(f'name="{switch}"', html)
        self.assertIn(b"default-src 'none'", response.headers.getRawHeaders(b"content-security-policy")[0])

    @inline
    async def test_confirm_refusals(self):
        for changes, needle in (
            ({"paymentType": "MC"}, "no longer accepted"),
            ({"paymentType": "XX"}, "paymentType"),
            ({"sum": "0"}, "sum"), ({"sum": "1.001"}, "sum"), ({"sum": "-5"}, "sum"), ({"sum": None}, "sum"),
            ({"receiver": "4100999999999999"}, "only holds wallet"),
            ({"receiver": None}, "receiver"),
            ({"label": "x" * 65}, "64"),
            ({"successURL": "javascript:alert(1)"}, "successURL"),
        ):
            response, body = await self.post("/quickpay/confirm", self.quickpay(**changes))
            self.assertEqual(response.code, 400, changes)
            self.assertIn(needle, body.decode("utf-8"), changes)

    @inline
    async def test_duplicated_form_field_refused(self):
        response, body = await self.post("/quickpay/confirm", self.quickpay() + [("sum", "1.00")])
        self.assertEqual(response.code, 400)
        self.assertIn("more than once", body.decode("utf-8"))

    @inline
    async def test_index_lists_operations(self):
        await self.pay(label="indexlabel1")
        response = await self.http.get(self.base + "/")
        html = (await response.content()).decode("utf-8")
        self.assertEqual(response.code, 200)
        self.assertIn("indexlabel1", html)
        self.assertIn("0s: 200", html)


    @inline
    async def test_bare_mount_point_redirects(self):
        response = await self.http.get(self.base, allow_redirects=False)
        await response.content()
        self.assertEqual(response.code, 302)
        self.assertEqual(response.headers.getRawHeaders(b"location"), [b"/sandbox/"])


class PayTests(SandboxTestCase):
    @inline
    async def test_card_payment(self):
        response, _ = await self.pay(paymentType="AC", sum="100.00")
        self.assertEqual(response.code, 303)
        self.assertEqual(response.headers.getRawHeaders(b"location"), [b"http://127.0.0.1:1/thanks?x=1"])
        self.assertEqual(self.receiver.times(), [0])
        note = parse_notification(self.receiver.received[0][1])
        self.assertEqual(note.notification_type, "card-incoming")
        self.assertEqual(note.amount, Decimal("97.00"))
        self.assertEqual(note.withdraw_amount, Decimal("100.00"))
        self.assertEqual(note.sender, "")
        self.assertEqual(note.label, "abcdefgh12345")
        self.assertTrue(note.label_is_ours)
        self.assertFalse(note.held or note.is_test)
        self.assertIsNotNone(note.sign)
        self.assertIsNotNone(note.sha1_hash)
        for policy, scheme in (("auto", "sign"), ("sign", "sign"), ("sha1", "sha1")):
            self.assertEqual(verify(note, MINTED, policy).scheme, scheme)
        self.assertFalse(verify(note, "another secret", "auto"))
        self.assertEqual(len(self.sandbox.store), 1)

    @inline
    async def test_wallet_payment(self):
        response, _ = await self.pay(paymentType="PC", sum="101.00")
        self.assertEqual(response.code, 303)
        note = parse_notification(self.receiver.received[0][1])
        self.assertEqual(note.notification_type, "p2p-incoming")
        self.assertEqual(note.amount, Decimal("100.00"))
        self.assertTrue(note.sender.startswith("41001"))
        self.assertTrue(verify(note, MINTED, "sign"))

    @inline
    async def test_operation_ids_unique_and_both_datetime_forms(self):
        ids, forms = set(), set()
        for _ in range(4):
            await self.pay()
            note = parse_notification(self.receiver.received[-1][1])
            ids.add(note.operation_id)
            forms.add("Z" if note.datetime_raw.endswith("Z") else note.datetime_raw[-10:])
            self.assertEqual(note.datetime, datetime(1970, 1, 1, tzinfo=timezone.utc))
            self.assertTrue(verify(note, MINTED, "auto"))
        self.assertEqual(len(ids), 4)
        self.assertEqual(forms, {"Z", ".000+03:00"})

    @inline
    async def test_decline(self):
        response, body = await self.pay(action="decline")
        self.assertEqual(response.code, 200)
        self.assertIn("Payment declined", body.decode("utf-8"))
        self.assertIn("http://127.0.0.1:1/thanks?x=1", body.decode("utf-8"))
        self.assertEqual(self.receiver.received, [])
        self.assertEqual(len(self.sandbox.store), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    @inline
    async def test_unknown_action(self):
        response, _ = await self.pay(action="steal")
        self.assertEqual(response.code, 400)
        self.assertEqual(self.receiver.received, [])

    @inline
    async def test_without_success_url_shows_paid_page(self):
        response, body = await self.pay(successURL=None)
        self.assertEqual(response.code, 200)
        self.assertIn("Notification delivered", body.decode("utf-8"))

    @inline
    async def test_switches(self):
        await self.pay(unaccepted=True)
        self.assertEqual(self.receiver.fields()["unaccepted"], "true")
        self.assertTrue(parse_notification(self.receiver.received[-1][1]).held)
        await self.pay(codepro=True)
        self.assertEqual(self.receiver.fields()["codepro"], "true")
        note = parse_notification(self.receiver.received[-1][1])
        self.assertTrue(note.held)
        self.assertTrue(verify(note, MINTED, "sha1"))
        await self.pay(test_notification=True)
        note = parse_notification(self.receiver.received[-1][1])
        self.assertTrue(note.is_test)
        self.assertTrue(verify(note, MINTED, "sign"))
        self.assertEqual(len(self.sandbox.store), 2)  # a test notification is no operation
        history = await self.api.operation_history()
        self.assertEqual([op.status for op in history.operations], ["in_progress", "in_progress"])

    @inline
    async def test_duplicate_delivery(self):
        await self.pay(duplicate=True)
        self.assertEqual(self.receiver.times(), [0, 0])
        self.assertEqual(self.receiver.received[0][1], self.receiver.received[1][1])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    @inline
    async def test_sign_only_and_sha1_only(self):
        self.start_sandbox(signature_scheme="sign")
        await self.pay()
        fields = self.receiver.fields()
        self.assertIn("sign", fields)
        self.assertNotIn("sha1_hash", fields)
        self.assertTrue(verify(fields, MINTED, "sign"))
        self.start_sandbox(signature_scheme="sha1")
        await self.pay()
        fields = self.receiver.fields()
        self.assertNotIn("sign", fields)
        self.assertEqual(verify(fields, MINTED, "auto").scheme, "sha1")
        self.assertFalse(verify(fields, MINTED, "sign"))


class RetryTests(SandboxTestCase):
    @inline
    async def test_retries_at_0_600_3600_then_nothing(self):
        self.receiver.statuses = [500, 503, 404, 500]
        response, _ = await self.pay()
        self.assertEqual(response.code, 303)
        delivery = self.sandbox.notifier.deliveries[-1]
        self.assertEqual(self.receiver.times(), [0])
        self.clock.advance(599)
        self.assertEqual(len(delivery.attempts), 1)
        self.clock.advance(1)
        await delivery.when_attempted(1)
        self.assertEqual(self.receiver.times(), [0, 600])
        self.clock.advance(2999)
        self.assertEqual(len(delivery.attempts), 2)
        self.clock.advance(1)
        await delivery.when_attempted(2)
        self.assertEqual(self.receiver.times(), [0, 600, 3600])
        self.assertTrue(delivery.gave_up)
        self.assertFalse(delivery.delivered)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10**6)
        self.assertEqual(len(self.receiver.received), 3)
        self.assertEqual([a.statuses for a in delivery.attempts], [[500], [503], [404]])
        bodies = {body for _, body in self.receiver.received}
        self.assertEqual(len(bodies), 1)  # every attempt carries the same signed notification

    @inline
    async def test_stops_after_success(self):
        self.receiver.statuses = [503]
        await self.pay()
        delivery = self.sandbox.notifier.deliveries[-1]
        self.clock.advance(600)
        await delivery.when_attempted(1)
        self.assertTrue(delivery.delivered)
        self.assertEqual(self.receiver.times(), [0, 600])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    @inline
    async def test_fail_first_delivery(self):
        response, _ = await self.pay(fail_first=True)
        self.assertEqual(response.code, 303)
        self.assertEqual(self.receiver.received, [])
        delivery = self.sandbox.notifier.deliveries[-1]
        self.assertTrue(delivery.attempts[0].simulated_failure)
        self.clock.advance(600)
        await delivery.when_attempted(1)
        self.assertEqual(self.receiver.times(), [600])
        self.assertTrue(delivery.delivered)

    @inline
    async def test_unreachable_endpoint_is_retried(self):
        port = self.listen(Resource())
        url = f"http://127.0.0.1:{port.getHost().port}/x"
        await port.stopListening()
        self.start_sandbox(notify_url=url)
        await self.pay()
        delivery = self.sandbox.notifier.deliveries[-1]
        self.assertEqual(delivery.attempts[0].statuses, [None])
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.assertEqual(self.clock.getDelayedCalls()[0].getTime(), 600)

    @inline
    async def test_stop_cancels_retries(self):
        self.receiver.statuses = [500]
        await self.pay()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        await self.resource.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class WalletAPITests(SandboxTestCase):
    async def pay_many(self, count, step=60):
        for i in range(count):
            await self.pay(label=f"label{i:05d}abc", paymentType="AC" if i % 2 else "PC")
            self.clock.advance(step)

    @inline
    async def test_history_paging(self):
        await self.pay_many(7)
        first = await self.api.operation_history(records=3)
        self.assertEqual(len(first.operations), 3)
        self.assertEqual(first.next_record, "3")
        self.assertEqual(first.operations[0].label, "label00006abc")  # newest first
        last = await self.api.operation_history(records=3, start_record=6)
        self.assertEqual(len(last.operations), 1)
        self.assertIsNone(last.next_record)
        everything = await self.api.all_operations(records=3)
        self.assertEqual([op.label for op in everything], [f"label{i:05d}abc" for i in reversed(range(7))])
        self.assertEqual(len({op.operation_id for op in everything}), 7)
        for op in everything:
            self.assertIsInstance(op.amount, Decimal)
            self.assertEqual(op.direction, "in")
            self.assertEqual(op.status, "success")
        self.assertEqual(everything[0].amount, Decimal("99.01"))   # PC 100.00
        self.assertEqual(everything[1].amount, Decimal("97.00"))   # AC 100.00

    @inline
    async def test_history_filters(self):
        await self.pay_many(5, step=100)  # created at 0, 100, 200, 300, 400
        by_label = await self.api.operation_history(label="label00002abc")
        self.assertEqual([op.label for op in by_label.operations], ["label00002abc"])
        self.assertEqual((await self.api.operation_history(type="payment")).operations, ())
        self.assertEqual(len((await self.api.operation_history(type=["deposition", "payment"])).operations), 5)
        window = await self.api.operation_history(from_=datetime.fromtimestamp(100, timezone.utc),
                                                  till=datetime.fromtimestamp(300, timezone.utc))
        self.assertEqual([op.label for op in window.operations], ["label00002abc", "label00001abc"])
        detailed = await self.api.operation_history(details=True, records=1)
        self.assertEqual(detailed.operations[0].amount_due, Decimal("99.01"))
        self.assertEqual(detailed.operations[0].fee, Decimal("0.99"))
        self.assertTrue(detailed.operations[0].sender.startswith("41001"))
        self.assertIsNone((await self.api.operation_history(records=1)).operations[0].sender)

    @inline
    async def test_history_illegal_params(self):
        for kwargs, code in (({"records": 0}, "illegal_param_records"), ({"records": 101}, "illegal_param_records"),
                             ({"start_record": "x"}, "illegal_param_start_record"),
                             ({"type": "everything"}, "illegal_param_type"),
                             ({"from_": "yesterday"}, "illegal_param_from"), ({"till": "soon"}, "illegal_param_till")):
            with self.assertRaises(IllegalParam) as caught:
                await self.api.operation_history(**kwargs)
            self.assertEqual(caught.exception.code, code)

    @inline
    async def test_details(self):
        await self.pay(paymentType="PC", sum="50.50", label="detailslabel1")
        operation_id = parse_notification(self.receiver.received[-1][1]).operation_id
        operation = await self.api.operation_details(operation_id)
        self.assertEqual(operation.operation_id, operation_id)
        self.assertEqual(operation.amount, Decimal("50.00"))
        self.assertEqual(operation.label, "detailslabel1")
        self.assertEqual(operation.codepro, False)
        self.assertEqual(operation.datetime, datetime(1970, 1, 1, tzinfo=timezone.utc))
        with self.assertRaises(IllegalParam) as caught:
            await self.api.operation_details("999")
        self.assertEqual(caught.exception.code, "illegal_param_operation_id")

    @inline
    async def test_bad_token(self):
        await self.pay()
        bad = self.wallet_api("not-the-token")
        with self.assertRaises(InvalidToken):
            await bad.operation_history()
        with self.assertRaises(InvalidToken):
            await bad.operation_details("1")
        with self.assertRaises(InvalidToken):
            await self.wallet_api("").operation_history()

    @inline
    async def test_no_token_configured_refuses_everyone(self):
        self.start_sandbox(config=make_config(api_token=""))
        with self.assertRaises(InvalidToken):
            await self.wallet_api(TOKEN).operation_history()

    @inline
    async def test_insufficient_scope(self):
        self.start_sandbox(api_scopes=("operation-history",))
        await self.api.operation_history()
        with self.assertRaises(InsufficientScope):
            await self.api.operation_details("1")

    @inline
    async def test_api_get_is_refused(self):
        response = await self.http.get(self.base + "/api/operation-history",
                                       headers={"Authorization": f"Bearer {TOKEN}"})
        self.assertEqual(response.code, 405)
        await response.content()


    @inline
    async def test_operations_become_notification_fields_for_reconciliation(self):
        await self.pay(paymentType="PC", sum="101.00", label="reconcilepc1")
        pc_note = parse_notification(self.receiver.received[-1][1])
        await self.pay(paymentType="AC", sum="100.00", label="reconcileac1", codepro=True)
        ac_note = parse_notification(self.receiver.received[-1][1])
        card, wallet = (await self.api.operation_history(details=True)).operations
        brief_card, brief_wallet = (await self.api.operation_history()).operations  # no fee: estimated
        for operation, note, detailed in ((wallet, pc_note, True), (card, ac_note, True),
                                          (brief_wallet, pc_note, False), (brief_card, ac_note, False)):
            rebuilt = notification_from_fields(operation.notification_fields(self.config.yoomoney))
            self.assertEqual(rebuilt.operation_id, note.operation_id)
            self.assertEqual(rebuilt.notification_type, note.notification_type)
            self.assertEqual(rebuilt.amount, note.amount)
            self.assertEqual(rebuilt.withdraw_amount, note.withdraw_amount)
            self.assertEqual(rebuilt.label, note.label)
            self.assertEqual(rebuilt.held, note.held)
            self.assertIsNone(rebuilt.sign)
            if detailed:  # sender and codepro come only with details
                self.assertEqual(rebuilt.sender, note.sender)
                self.assertEqual(rebuilt.codepro, note.codepro)

    def test_refused_or_outgoing_operations_are_not_payments(self):
        from ymds.yoomoney.wallet_api import parse_operation
        base = {"operation_id": "1", "status": "success", "datetime": "2020-01-01T00:00:00Z", "amount": Decimal("1.00"),
                "direction": "in", "type": "deposition"}
        self.assertEqual(parse_operation(base).notification_fields(self.config.yoomoney)["amount"], "1.00")
        given = parse_operation(base).notification_fields(self.config.yoomoney, withdraw_amount=Decimal("1.5"))
        self.assertEqual(given["withdraw_amount"], "1.50")
        for change in ({"status": "refused"}, {"direction": "out"}):
            self.assertRaises(ValueError, parse_operation({**base, **change}).notification_fields, self.config.yoomoney)


class WalletAPIFailureTests(SandboxTestCase):
    def serve(self, render):
        class Answer(Resource):
            isLeaf = True

            def render_POST(self, request):
                return render(request)
        port = self.listen(Answer())
        return f"http://127.0.0.1:{port.getHost().port}"

    @inline
    async def test_http_status_failure(self):
        def render(request):
            request.setResponseCode(502)
            return b"bad gateway"
        api = WalletAPI(reactor, self.serve(render), TOKEN)
        self.addCleanup(lambda: Deferred.fromCoroutine(api.close()))
        with self.assertRaises(HTTPFailure) as caught:
            await api.operation_history()
        self.assertEqual(caught.exception.status, 502)

    @inline
    async def test_not_json(self):
        api = WalletAPI(reactor, self.serve(lambda request: b"<html>"), TOKEN)
        self.addCleanup(lambda: Deferred.fromCoroutine(api.close()))
        with self.assertRaises(HTTPFailure) as caught:
            await api.operation_history()
        self.assertEqual(caught.exception.code, "bad_response")

    @inline
    async def test_amount_must_be_a_number(self):
        body = b'{"operations": [{"operation_id": "1", "status": "success", "datetime": "2020-01-01T00:00:00Z", "amount": true}]}'
        api = WalletAPI(reactor, self.serve(lambda request: body), TOKEN)
        self.addCleanup(lambda: Deferred.fromCoroutine(api.close()))
        with self.assertRaises(HTTPFailure):
            await api.operation_history()

    @inline
    async def test_too_large(self):
        # a pool of our own, not persistent: the refused body must not leave a cached connection behind
        api = WalletAPI(reactor, self.serve(lambda request: b" " * 5000), TOKEN, max_response=1000,
                        pool=HTTPConnectionPool(reactor, persistent=False))
        self.addCleanup(lambda: Deferred.fromCoroutine(api.close()))
        with self.assertRaises(HTTPFailure) as caught:
            await api.operation_history()
        self.assertEqual(caught.exception.code, "too_large")

    @inline
    async def test_connection_refused(self):
        port = self.listen(Resource())
        url = f"http://127.0.0.1:{port.getHost().port}"
        await port.stopListening()
        api = WalletAPI(reactor, url, TOKEN)
        self.addCleanup(lambda: Deferred.fromCoroutine(api.close()))
        with self.assertRaises(HTTPFailure) as caught:
            await api.operation_history()
        self.assertEqual(caught.exception.code, "connection_failed")

    @inline
    async def test_timeout(self):
        arrived: Deferred = Deferred()

        def render(request):
            arrived.callback(None)
            return NOT_DONE_YET  # never answers
        clock = Clock()
        api = WalletAPI(reactor, self.serve(render), TOKEN, timeout=30, clock=clock)
        self.addCleanup(lambda: Deferred.fromCoroutine(api.close()))
        call = Deferred.fromCoroutine(api.operation_history())
        await arrived
        clock.advance(30)
        with self.assertRaises(Timeout):
            await call

    @inline
    async def test_pager_refuses_a_loop(self):
        body = b'{"operations": [], "next_record": "5"}'
        api = WalletAPI(reactor, self.serve(lambda request: body), TOKEN)
        self.addCleanup(lambda: Deferred.fromCoroutine(api.close()))
        with self.assertRaises(HTTPFailure):
            await api.all_operations()


def write_demo_certificate(directory: str) -> tuple[bytes, ssl.PrivateCertificate]:
    from ymds.demo import ensure_certificate
    key_path, cert_path = ensure_certificate(directory)
    cert_pem = open(cert_path, "rb").read()
    key_pem = open(key_path, "rb").read()
    return cert_pem, ssl.PrivateCertificate.loadPEM(key_pem + cert_pem)


class TLSTests(SandboxTestCase):
    def setUp(self):
        super().setUp()
        directory = tempfile.mkdtemp()
        self.addCleanup(lambda: [os.remove(os.path.join(directory, f)) for f in os.listdir(directory)] and os.rmdir(directory))
        self.cert_pem, certificate = write_demo_certificate(directory)
        port = self.listen(self.receiver, tls=certificate.options())
        self.tls_url = f"https://localhost:{port.getHost().port}/yoomoney/notify"

    @inline
    async def test_trusted_pem(self):
        self.start_sandbox(notify_url=self.tls_url, trust_pem=self.cert_pem)
        await self.pay()
        delivery = self.sandbox.notifier.deliveries[-1]
        self.assertTrue(delivery.delivered)
        fields = self.receiver.fields()
        self.assertEqual(fields["email"], "")  # HTTPS endpoints get the personal fields
        self.assertTrue(verify(fields, MINTED, "sign"))

    @inline
    async def test_untrusted_certificate_fails(self):
        self.start_sandbox(notify_url=self.tls_url)
        await self.pay()
        delivery = self.sandbox.notifier.deliveries[-1]
        self.assertEqual(delivery.attempts[0].statuses, [None])
        self.assertEqual(self.receiver.received, [])

    @inline
    async def test_insecure_local(self):
        self.start_sandbox(notify_url=self.tls_url.replace("localhost", "127.0.0.1"), insecure_local_tls=True)
        await self.pay()
        self.assertTrue(self.sandbox.notifier.deliveries[-1].delivered)


class TestNotificationTests(SandboxTestCase):
    @inline
    async def test_sends_signed_test_notification(self):
        for scheme, policy in (("both", "auto"), ("sign", "sign"), ("sha1", "sha1")):
            status, body = await send_test_notification(reactor, self.notify_url, SECRET, scheme)
            self.assertEqual((status, body), (200, b"OK"))
            note = parse_notification(self.receiver.received[-1][1])
            self.assertTrue(note.is_test)
            self.assertEqual(note.operation_id, "test-notification")
            self.assertEqual(verify(note, SECRET, policy).scheme, {"both": "sign"}.get(scheme, scheme))

    @inline
    async def test_reports_refusal(self):
        self.receiver.statuses = [403]
        status, _ = await send_test_notification(reactor, self.notify_url, SECRET)
        self.assertEqual(status, 403)

    @inline
    async def test_times_out(self):
        self.receiver.hang = True
        with self.assertRaises(defer.TimeoutError):
            await send_test_notification(reactor, self.notify_url, SECRET, timeout=0.5)


class SandboxFormSafetyTests(SandboxTestCase):
    """Issue 14: the pay form needs the confirm page's CSRF token, and the sandbox never
    redirects a browser outside server.public_url."""

    @inline
    async def test_pay_without_token_is_refused(self):
        data = self.quickpay() + [("action", "pay")]
        response, body = await self.post("/quickpay/pay", data)
        self.assertEqual(response.code, 400)
        self.assertIn("confirm page", body.decode("utf-8"))
        self.assertEqual(list(self.sandbox.store.newest_first()), [])
        self.assertEqual(self.receiver.received, [])

    @inline
    async def test_token_is_bound_to_the_form(self):
        data = self.quickpay() + [("action", "pay")]
        token = self.csrf_for(data)
        changed = self.quickpay(sum="5000.00") + [("action", "pay"), ("csrf", token)]
        response, _ = await self.post("/quickpay/pay", changed)
        self.assertEqual(response.code, 400)
        self.assertEqual(self.receiver.received, [])

    @inline
    async def test_confirm_page_carries_the_token(self):
        response, body = await self.post("/quickpay/confirm", self.quickpay())
        self.assertEqual(response.code, 200)
        self.assertIn(f'name="csrf" value="{self.csrf_for(self.quickpay())}"', body.decode("utf-8"))

    @inline
    async def test_success_url_outside_public_url_is_refused(self):
        for url in ("https://evil.example/thanks", "http://127.0.0.1:2/thanks", "https://127.0.0.1:1/thanks",
                    "http://127.0.0.1:1@evil.example/"):
            response, _ = await self.post("/quickpay/confirm", self.quickpay(successURL=url))
            self.assertEqual(response.code, 400, url)
            data = self.quickpay(successURL=url) + [("action", "pay")]
            data.append(("csrf", self.sandbox.csrf_token(QuickpayForm(WALLET, "AC", Decimal("100.00"), "abcdefgh12345", url))))
            response, _ = await self.post("/quickpay/pay", data)
            self.assertEqual(response.code, 400, url)
            self.assertIsNone(response.headers.getRawHeaders(b"location"))
        self.assertEqual(self.receiver.received, [])
