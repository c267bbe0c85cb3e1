"""The REST API end to end: a live web Site on loopback with /api mounted, the real Redis
job queue, and the billing role (worker + SQLite ledger) answering its calls.  The web and
billing clocks are one task.Clock (key cache, rate limits, invoice times)."""

from __future__ import annotations

import atexit
import json
import os
from decimal import Decimal

from jsonschema import Draft202012Validator
from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from tests.support.ledgers import sqlite_url
from tests.support.redis_server import RedisServer, free_port
from tests.test_billing_tasks import note
from tests.support.queues import RecordingQueue
from tests.test_web_support import Client, header
from ymds.api.keys import key_hash, new_key, new_key_id
from ymds.api.openapi import openapi_document
from ymds.api.resource import ROUTES, make_api_resource
from ymds.billing.ledger import API_SCOPES
from ymds.billing.open import open_ledger
from ymds.billing.service import make_billing_service
from ymds.config import load_config
from ymds.links import verify_token
from ymds.metrics import Registry
from ymds.queue.client import RedisJobQueue
from ymds.web.site import make_site

T0 = 1_780_000_000.0
LINK_SECRET = "link-secret-0123456789abcdef"
_server: RedisServer | None = None


def redis_server() -> RedisServer:
    global _server
    if _server is None:
        _server = RedisServer(appendonly=False).start()
        atexit.register(_server.cleanup)
    return _server


def api_config(port: int, redis_url: str, prefix: str, **sections):
    raw = {
        "server": {"endpoint": f"tcp:{port}:interface=127.0.0.1", "public_url": f"http://127.0.0.1:{port}"},
        "links": {"secret": LINK_SECRET, "ttl": "3d"},
        "yoomoney": {"wallet": "4100111122223333", "notification_secret": "s3cret"},
        "redis": {"url": redis_url, "prefix": prefix},
        "queue": {"visibility_timeout": 30},
        "plans": [{"id": "month", "title": "1 month", "price": "199.00", "days": 30}],
    }
    raw.update(sections)
    return load_config(raw=raw, env={})


class ApiStack:
    """Web (with the API) + queue + billing on one Clock; ``key(scopes)`` makes an API key."""

    def __init__(self, testcase, api_options=None, billing=True):
        self.testcase = testcase
        self.port = free_port()
        self.config = api_config(self.port, redis_server().url, "api" + os.urandom(4).hex())
        self.clock = task.Clock()
        self.clock.advance(T0)
        self.queue = RedisJobQueue(reactor, self.config.redis, clock=self.clock)
        self.queue.startService()
        testcase.addCleanup(self.queue.stopService)
        self.ledger = open_ledger(sqlite_url(testcase), reactor)
        self.billing = None
        self.want_billing = billing
        metrics = Registry()
        self.api = make_api_resource(reactor, self.config, self.queue, metrics, clock=self.clock,
                                     **(api_options or {}))
        site = make_site(reactor, self.config, self.queue, metrics, {}, clock=self.clock, api=self.api)
        self.listening = reactor.listenTCP(self.port, site, interface="127.0.0.1")
        testcase.addCleanup(self.listening.stopListening)
        self.client = Client(f"http://127.0.0.1:{self.port}")

    async def start(self):
        await self.ledger.migrate()
        if self.want_billing:
            self.billing = make_billing_service(reactor, self.config, self.queue, self.ledger, clock=self.clock,
                                                worker_options={"block": 0.2})
            self.billing.startService()
            self.testcase.addCleanup(self.billing.stopService)
            if self.billing.timers._running is not None:  # the first sweep runs at start
                await self.billing.timers._running
        else:
            self.testcase.addCleanup(self.ledger.close)
        return self

    async def key(self, scopes=API_SCOPES, name="test") -> tuple[str, str]:
        key, key_id = new_key(), new_key_id()
        await self.ledger.api_keys.api_key_create(key_id, key_hash(key), name, scopes, self.clock.seconds())
        return key, key_id

    async def request(self, method, path, key=None, body=None, headers=None, raw=None):
        h = dict(headers or {})
        if key is not None:
            h["Authorization"] = f"Bearer {key}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        response, content = await self.client.request(method, path, data, h)
        try:
            value = json.loads(content) if content else None
        except ValueError:
            value = content
        return response.code, value, response


def schema_validator(name: str) -> Draft202012Validator:
    doc = json.loads(openapi_document("http://x", ["month"]))
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": doc["components"]})


class ApiTestBase(unittest.TestCase):
    timeout = 60

    def setUp(self):
        self.stack = ApiStack(self)
        return defer.Deferred.fromCoroutine(self.stack.start())

    def assertError(self, answer, status, code):
        got_status, value, _ = answer
        self.assertEqual((got_status, value["error"]["code"] if isinstance(value, dict) and "error" in value else value),
                         (status, code))
        schema_validator("Error").validate(value)


class Authentication(ApiTestBase):
    async def test_missing_malformed_unknown_keys(self):
        s = self.stack
        answer = await s.request("GET", "/api/v1/payments")
        self.assertError(answer, 401, "missing_api_key")
        self.assertEqual(header(answer[2], "www-authenticate"), 'Bearer realm="ymds"')
        self.assertError(await s.request("GET", "/api/v1/payments", headers={"Authorization": "Basic abc"}),
                         401, "invalid_api_key")
        self.assertError(await s.request("GET", "/api/v1/payments", key="ymds_short"), 401, "invalid_api_key")
        self.assertError(await s.request("GET", "/api/v1/payments", key=new_key()), 401, "invalid_api_key")

    async def test_each_key_is_limited_to_its_scopes(self):
        s = self.stack
        writer, _ = await s.key(["invoices:write"])
        reader, _ = await s.key(["invoices:read", "payments:read"])
        status, invoice, _ = await s.request("POST", "/api/v1/invoices", writer, {"amount": "150.00"})
        self.assertEqual(status, 201)
        self.assertError(await s.request("GET", f"/api/v1/invoices/{invoice['label']}", writer), 403,
                         "insufficient_scope")
        self.assertError(await s.request("GET", "/api/v1/payments", writer), 403, "insufficient_scope")
        self.assertError(await s.request("POST", "/api/v1/invoices", reader, {"amount": "1.00"}), 403,
                         "insufficient_scope")
        self.assertError(await s.request("GET", "/api/v1/subscriptions/42", reader), 403, "insufficient_scope")
        status, got, _ = await s.request("GET", f"/api/v1/invoices/{invoice['label']}", reader)
        self.assertEqual((status, got["label"], got["amount"]), (200, invoice["label"], "150.00"))
        self.assertEqual((await s.request("GET", "/api/v1/payments", reader))[0], 200)

    async def test_revoked_key_stops_working_after_the_cache_ttl(self):
        s = self.stack
        key, key_id = await s.key()
        self.assertEqual((await s.request("GET", "/api/v1/payments", key))[0], 200)
        self.assertTrue(await s.ledger.api_keys.api_key_revoke(key_id, s.clock.seconds()))
        # positive answers are cached for 5 s in the web process (documented) ...
        self.assertEqual((await s.request("GET", "/api/v1/payments", key))[0], 200)
        s.clock.advance(5)
        # ... then the key is refused everywhere
        self.assertError(await s.request("GET", "/api/v1/payments", key), 401, "invalid_api_key")
        self.assertError(await s.request("POST", "/api/v1/invoices", key, {"amount": "1.00"}), 401, "invalid_api_key")

    async def test_failed_keys_are_rate_limited_per_address(self):
        s = self.stack
        s.api.failure_limiter.burst = 3.0
        s.api.failure_limiter._buckets.clear()
        codes = [(await s.request("GET", "/api/v1/payments", key=new_key()))[0] for _ in range(4)]
        self.assertEqual(codes, [401, 401, 401, 429])
        answer = await s.request("GET", "/api/v1/payments", key=new_key())
        self.assertError(answer, 429, "rate_limited")
        self.assertTrue(int(header(answer[2], "retry-after")) >= 1)
        good, _ = await s.key()
        # the bucket is checked before any lookup (issue 14): a valid key waits for a token too
        self.assertError(await s.request("GET", "/api/v1/payments", good), 429, "rate_limited")
        s.clock.advance(1)
        self.assertEqual((await s.request("GET", "/api/v1/payments", good))[0], 200)  # and then passes


class Invoices(ApiTestBase):
    async def test_create_amount_invoice(self):
        s = self.stack
        key, _ = await s.key()
        status, invoice, response = await s.request("POST", "/api/v1/invoices", key, {
            "amount": "250.50", "description": "Order A-17", "customer": "user-9", "metadata": {"order": "A-17"},
            "expires_in": 3600})
        self.assertEqual(status, 201)
        schema_validator("Invoice").validate(invoice)
        self.assertEqual((invoice["amount"], invoice["kind"], invoice["status"], invoice["customer"], invoice["metadata"]),
                         ("250.50", "donation", "open", "user-9", {"order": "A-17", "customer": "user-9"}))
        self.assertEqual(invoice["expires_at"], "2026-05-28T21:26:40+00:00")
        self.assertEqual(header(response, "location"), f"/api/v1/invoices/{invoice['label']}")
        token = invoice["pay_url"].rsplit("/", 1)[1]
        self.assertTrue(invoice["pay_url"].startswith(f"{s.config.server.public_url}/pay/"))
        self.assertEqual(verify_token(LINK_SECRET.encode(), token, T0), invoice["label"])
        stored = await s.ledger.invoices.get_invoice(invoice["label"])
        self.assertEqual((stored.amount, stored.description), (Decimal("250.50"), "Order A-17"))
        # metadata comes back as given (numbers stay numbers); customer wins over metadata.customer
        status, other, _ = await s.request("POST", "/api/v1/invoices", key, {
            "amount": 7, "customer": "c-1", "metadata": {"rate": 0.125, "n": [1, None], "customer": "old"}})
        self.assertEqual((status, other["amount"], other["metadata"]),
                         (201, "7.00", {"rate": 0.125, "n": [1, None], "customer": "c-1"}))

    async def test_create_plan_invoice_and_read_it_back(self):
        s = self.stack
        key, _ = await s.key()
        status, invoice, _ = await s.request("POST", "/api/v1/invoices", key, {"plan": "month", "chat_id": 42})
        self.assertEqual((status, invoice["kind"], invoice["plan"], invoice["amount"], invoice["chat_id"]),
                         (201, "subscription", "month", "199.00", 42))
        status, got, _ = await s.request("GET", f"/api/v1/invoices/{invoice['label']}", key)
        self.assertEqual(status, 200)
        self.assertEqual(got, invoice)
        self.assertError(await s.request("GET", "/api/v1/invoices/nosuchlabel", key), 404, "not_found")
        self.assertError(await s.request("GET", "/api/v1/invoices/" + "%2F" * 3, key), 404, "not_found")

    async def test_idempotent_create(self):
        s = self.stack
        key, _ = await s.key()
        other_key, _ = await s.key()
        body = {"amount": "99.00", "description": "retry me"}
        first = await s.request("POST", "/api/v1/invoices", key, body, headers={"Idempotency-Key": "order-1"})
        again = await s.request("POST", "/api/v1/invoices", key, body, headers={"Idempotency-Key": "order-1"})
        self.assertEqual((first[0], again[0]), (201, 201))
        self.assertEqual(again[1], first[1])
        self.assertIsNone(header(first[2], "idempotent-replayed"))
        self.assertEqual(header(again[2], "idempotent-replayed"), "true")
        # the first answer even after the invoice changed (paid meanwhile)
        await s.queue.call("billing", "apply_payment", {"fields": note("op-i", first[1]["label"], withdraw="99.00"),
                                                        "source": "notification"})
        third = await s.request("POST", "/api/v1/invoices", key, body, headers={"Idempotency-Key": "order-1"})
        self.assertEqual(third[1], first[1])
        self.assertEqual((await s.request("GET", f"/api/v1/invoices/{first[1]['label']}", key))[1]["status"], "paid")
        # same key, another body: 409
        self.assertError(await s.request("POST", "/api/v1/invoices", key, {"amount": "98.00", "description": "retry me"},
                                         headers={"Idempotency-Key": "order-1"}), 409, "idempotency_conflict")
        # another Idempotency-Key, or another API key: a new invoice
        fresh = await s.request("POST", "/api/v1/invoices", key, body, headers={"Idempotency-Key": "order-2"})
        theirs = await s.request("POST", "/api/v1/invoices", other_key, body, headers={"Idempotency-Key": "order-1"})
        self.assertEqual(len({first[1]["label"], fresh[1]["label"], theirs[1]["label"]}), 3)
        # without the header every POST is a new invoice
        a = await s.request("POST", "/api/v1/invoices", key, body)
        b = await s.request("POST", "/api/v1/invoices", key, body)
        self.assertNotEqual(a[1]["label"], b[1]["label"])
        self.assertError(await s.request("POST", "/api/v1/invoices", key, body, headers={"Idempotency-Key": "a b"}),
                         422, "invalid_request")

    async def test_refusals(self):
        s = self.stack
        key, _ = await s.key()
        post = "/api/v1/invoices"
        self.assertError(await s.request("POST", post, key, raw=b"amount=1", headers={
            "Content-Type": "application/x-www-form-urlencoded"}), 415, "unsupported_media_type")
        self.assertError(await s.request("POST", post, key, raw=b"{not json", headers={"Content-Type": "application/json"}),
                         400, "malformed_json")
        self.assertError(await s.request("POST", post, key, raw=b"[1]", headers={"Content-Type": "application/json"}),
                         422, "invalid_request")
        big = json.dumps({"amount": "1.00", "description": "x" * 20000}).encode()
        self.assertError(await s.request("POST", post, key, raw=big, headers={"Content-Type": "application/json"}),
                         413, "payload_too_large")
        for body, param in (({}, "amount"), ({"amount": "1.00", "plan": "month", "chat_id": 1}, "amount"),
                            ({"amount": "1.001"}, "amount"), ({"amount": 1.5}, "amount"), ({"amount": "-1"}, "amount"),
                            ({"amount": "1000000"}, "amount"), ({"amount": "01.00"}, "amount"), ({"amount": ""}, "amount"),
                            ({"amount": "0"}, "amount"), ({"amount": True}, "amount"), ({"plan": "month"}, "chat_id"),
                            ({"plan": "nope", "chat_id": 1}, "plan"), ({"amount": "1", "bogus": 1}, "bogus"),
                            ({"amount": "1", "expires_in": 5}, "expires_in"),
                            ({"amount": "1", "expires_at": "2026-12-01T00:00:00Z"}, "expires_at"),
                            ({"amount": "1", "chat_id": "42"}, "chat_id"),
                            ({"amount": "1", "metadata": {"k": "x" * 5000}}, "metadata"),
                            ({"amount": "1", "customer": ""}, "customer"), ({"amount": "1", "description": None}, "description")):
            status, value, _ = await s.request("POST", post, key, body)
            self.assertEqual((status, value["error"]["code"], value["error"].get("param")),
                             (422, "invalid_request", param), body)
        self.assertError(await s.request("GET", "/api/v1/nothing", key), 404, "not_found")
        self.assertError(await s.request("GET", "/api", key), 404, "not_found")
        answer = await s.request("DELETE", "/api/v1/invoices", key)
        self.assertError(answer, 405, "method_not_allowed")
        self.assertEqual(header(answer[2], "allow"), "POST")

    async def test_billing_unreachable_is_503(self):
        down = RecordingQueue()
        down.down = True
        port = free_port()
        config = api_config(port, "redis://127.0.0.1:1/0", "x")
        metrics = Registry()
        site = make_site(reactor, config, down, metrics, {}, api=make_api_resource(reactor, config, down, metrics))
        listening = reactor.listenTCP(port, site, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        response, content = await Client(f"http://127.0.0.1:{port}").request(
            "GET", "/api/v1/payments", None, {"Authorization": f"Bearer {new_key()}"})
        self.assertEqual((response.code, json.loads(content)["error"]["code"]), (503, "unavailable"))
        self.assertEqual(header(response, "retry-after"), "5")


class PaymentsAndSubscriptions(ApiTestBase):
    async def test_payments_pages_filters_and_subscription(self):
        s = self.stack
        key, _ = await s.key()
        labels = []
        for n in range(3):
            status, invoice, _ = await s.request("POST", "/api/v1/invoices", key, {"plan": "month", "chat_id": 42})
            labels.append(invoice["label"])
        # recorded at three moments, a minute apart
        await s.ledger.payments.apply_payment(note("op-1", labels[0]), "notification", T0)
        await s.ledger.payments.apply_payment(note("op-2", labels[1], withdraw="100.00"), "notification", T0 + 60)
        await s.ledger.payments.apply_payment(note("op-3", "foreign-label"), "notification", T0 + 120)
        seen, cursor, pages = [], None, 0
        while True:
            path = "/api/v1/payments?limit=2" + (f"&cursor={cursor}" if cursor else "")
            status, page, _ = await s.request("GET", path, key)
            self.assertEqual(status, 200)
            schema_validator("PaymentPage").validate(page)
            seen += [p["operation_id"] for p in page["data"]]
            pages += 1
            cursor = page["next_cursor"]
            self.assertEqual(page["has_more"], cursor is not None)
            if cursor is None:
                break
        self.assertEqual((seen, pages), (["op-1", "op-2", "op-3"], 2))
        _, page, _ = await s.request("GET", "/api/v1/payments?status=underpaid", key)
        self.assertEqual([(p["operation_id"], p["amount"], p["status"]) for p in page["data"]],
                         [("op-2", "100.00", "underpaid")])
        _, page, _ = await s.request("GET", f"/api/v1/payments?since={int(T0 + 30)}&until=2026-05-28T20:28:30Z", key)
        self.assertEqual([p["operation_id"] for p in page["data"]], ["op-2"])
        _, page, _ = await s.request("GET", "/api/v1/payments?chat_id=42", key)
        self.assertEqual([p["operation_id"] for p in page["data"]], ["op-1", "op-2"])
        self.assertNotIn("sender", page["data"][0])  # no payer data through the API
        for query, param in (("limit=0", "limit"), ("limit=501", "limit"), ("status=nope", "status"),
                             ("cursor=abc", "cursor"), ("since=tomorrow", "since"), ("foo=1", "foo"),
                             ("limit=1&limit=2", "limit"), ("chat_id=x", "chat_id")):
            status, value, _ = await s.request("GET", "/api/v1/payments?" + query, key)
            self.assertEqual((status, value["error"]["code"], value["error"].get("param")),
                             (422, "invalid_request", param), query)
        status, sub, _ = await s.request("GET", "/api/v1/subscriptions/42", key)
        self.assertEqual(status, 200)
        schema_validator("Subscription").validate(sub)
        self.assertEqual(sub, {"chat_id": 42, "plan": "month", "ends_at": "2026-06-27T20:26:40+00:00", "active": True})
        self.assertError(await s.request("GET", "/api/v1/subscriptions/43", key), 404, "not_found")
        self.assertError(await s.request("GET", "/api/v1/subscriptions/abc", key), 404, "not_found")


class OpenAPI(ApiTestBase):
    def document(self):
        return json.loads(openapi_document(self.stack.config.server.public_url, ["month"]))

    def test_document_validates(self):
        from openapi_spec_validator import validate
        validate(self.document())
        self.assertEqual(self.document()["openapi"], "3.1.0")

    def test_document_lists_exactly_the_routes(self):
        documented = {(method.upper(), path) for path, item in self.document()["paths"].items() for method in item}
        self.assertEqual(documented, {(method, path) for method, path, _, _ in ROUTES})

    async def test_every_documented_route_answers_on_the_server(self):
        s = self.stack
        status, served, _ = await s.request("GET", "/api/v1/openapi.json")
        self.assertEqual(status, 200)
        self.assertEqual(served, self.document())
        for path, item in served["paths"].items():
            concrete = path.replace("{label}", "x").replace("{chat_id}", "1")
            for method in item:
                status, value, _ = await s.request(method.upper(), concrete)
                expected = 200 if item[method].get("security") == [] else 401
                self.assertEqual(status, expected, f"{method} {path}")
                self.assertIn(str(status), item[method]["responses"])
        # and nothing undocumented answers
        for method, path in (("GET", "/api/v1/invoices"), ("PUT", "/api/v1/payments"), ("GET", "/api/v2/payments")):
            status, _, _ = await s.request(method, path)
            self.assertIn(status, (404, 405), f"{method} {path}")


class Schemathesis(unittest.TestCase):
    """schemathesis (PyPI) generates requests from /api/v1/openapi.json against the live
    server and checks the answers against the document (a subprocess: it is blocking)."""

    timeout = 120

    def setUp(self):
        self.stack = ApiStack(self, api_options={"key_rate": (10000.0, 100000), "failure_rate": (10000.0, 100000)})
        return defer.Deferred.fromCoroutine(self.stack.start())

    async def test_generated_requests_conform(self):
        import shutil
        import sys
        from twisted.internet.utils import getProcessOutputAndValue
        key, _ = await self.stack.key()
        st = shutil.which("st", path=os.path.dirname(sys.executable))
        self.assertIsNotNone(st, "schemathesis is not installed in this environment")
        base = f"http://127.0.0.1:{self.stack.port}"
        out, err, code = await getProcessOutputAndValue(st, [
            "run", f"{base}/api/v1/openapi.json", "--url", base, "-H", f"Authorization: Bearer {key}",
            "--max-examples", "30", "--seed", "1", "--workers", "1", "--checks", "all",
            "--request-timeout", "10", "--no-color"], env={**os.environ, "NO_COLOR": "1"}, reactor=reactor)
        self.assertEqual(code, 0, (out + err).decode("utf-8", "replace")[-6000:])
