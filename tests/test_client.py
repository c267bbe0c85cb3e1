"""ymds.client: webhook verification (known answers, replays, forgeries) and the asyncio and
Twisted invoice clients against the live API (tests/test_api.py's stack)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.test_api import ApiStack
from ymds.client import ApiError, AsyncClient, InvalidSignature, TwistedClient, verify_webhook
from ymds.webhooks.signing import event_body, signature, signature_header

SECRET = "whsec_test"
T = 1780000000
BODY = b'{"created":1780000000,"data":{"a":"1.00"},"id":"evt_1","type":"invoice.paid"}'
# computed once (and checked with: printf '%s' "1780000000.$BODY" | openssl dgst -sha256 -hmac whsec_test)
KNOWN = "13caf775b31b78656d3b113c5f06838cfac88addac5993af6ebdb4b2ae46b8f3"
HEADER = f"t={T},v1={KNOWN}"


class Signing(unittest.TestCase):
    def test_known_answer(self):
        self.assertEqual(event_body("evt_1", "invoice.paid", T, {"a": "1.00"}), BODY)
        self.assertEqual(signature(SECRET, T, BODY), KNOWN)
        self.assertEqual(signature_header(SECRET, T, BODY), HEADER)
        self.assertEqual(hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest(), KNOWN)

    def test_verify_accepts_and_decodes(self):
        event = verify_webhook(SECRET, HEADER, BODY, now=T + 10)
        self.assertEqual((event["id"], event["type"], event["data"]["a"]), ("evt_1", "invoice.paid", "1.00"))
        self.assertEqual(verify_webhook(SECRET.encode(), HEADER.encode(), BODY.decode(), now=T)["id"], "evt_1")
        # a second v1 (a rotated secret) is fine as long as one matches
        self.assertEqual(verify_webhook(SECRET, f"t={T},v1={'0' * 64},v1={KNOWN}", BODY, now=T)["id"], "evt_1")
        self.assertEqual(verify_webhook(SECRET, f" t={T} , v1={KNOWN.upper()} ", BODY, now=T)["id"], "evt_1")

    def test_rejects_replays_and_future_stamps(self):
        verify_webhook(SECRET, HEADER, BODY, now=T + 300)
        with self.assertRaises(InvalidSignature):
            verify_webhook(SECRET, HEADER, BODY, now=T + 301)
        with self.assertRaises(InvalidSignature):
            verify_webhook(SECRET, HEADER, BODY, now=T - 301)
        self.assertEqual(verify_webhook(SECRET, HEADER, BODY, tolerance=3600, now=T + 3000)["id"], "evt_1")

    def test_rejects_forgeries_and_garbage(self):
        tampered = BODY.replace(b"1.00", b"9.00")
        cases = [
            (SECRET, HEADER, tampered), ("whsec_other", HEADER, BODY), (SECRET, None, BODY), (SECRET, "", BODY),
            (SECRET, f"t={T}", BODY), (SECRET, f"v1={KNOWN}", BODY), (SECRET, f"t=abc,v1={KNOWN}", BODY),
            (SECRET, f"t={T},t={T},v1={KNOWN}", BODY), (SECRET, f"t={T},v1={KNOWN[:-1]}", BODY),
            (SECRET, "garbage", BODY), (SECRET, f"t={T},v1={KNOWN}," + "x=1," * 500, BODY),
            (SECRET, f"t={T + 1},v1={KNOWN}", BODY),  # the stamp is inside the signed text
        ]
        for secret, header, body in cases:
            with self.assertRaises(InvalidSignature, msg=repr(header)[:80]):
                verify_webhook(secret, header, body, now=T)
        not_json = b"hello"
        with self.assertRaises(InvalidSignature):
            verify_webhook(SECRET, signature_header(SECRET, T, not_json), not_json, now=T)


class Clients(unittest.TestCase):
    timeout = 60

    def setUp(self):
        self.stack = ApiStack(self)
        return defer.Deferred.fromCoroutine(self.stack.start())

    async def test_asyncio_client(self):
        key, _ = await self.stack.key()
        base = f"http://127.0.0.1:{self.stack.port}"

        def in_asyncio():
            async def go():
                client = AsyncClient(base, key)
                invoice = await client.create_invoice(amount="120.00", description="x", idempotency_key="o-1")
                again = await client.create_invoice(amount="120.00", description="x", idempotency_key="o-1")
                got = await client.get_invoice(invoice["label"])
                none = await client.get_subscription(777)
                assert none is None, none
                try:
                    await client.create_invoice(amount="1.001")
                except ApiError as e:
                    error = (e.status, e.code)
                return invoice, again, got, error
            return asyncio.run(go())

        invoice, again, got, error = await threads.deferToThread(in_asyncio)
        self.assertEqual(invoice["amount"], "120.00")
        self.assertEqual(again["label"], invoice["label"])
        self.assertEqual(got["label"], invoice["label"])
        self.assertTrue(invoice["pay_url"].startswith(base + "/pay/"))
        self.assertEqual(error, (422, "invalid_request"))

    async def test_twisted_client(self):
        key, _ = await self.stack.key(["invoices:write"])
        from treq.client import HTTPClient
        from twisted.internet import reactor
        from twisted.web.client import Agent, HTTPConnectionPool
        http = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))
        client = TwistedClient(f"http://127.0.0.1:{self.stack.port}", key, http=http)
        invoice = await client.create_invoice(plan="month", chat_id=5, metadata={"order": 1})
        self.assertEqual((invoice["plan"], invoice["amount"], invoice["metadata"]), ("month", "199.00", {"order": 1}))
        with self.assertRaises(ApiError) as caught:
            await client.get_invoice(invoice["label"])
        self.assertEqual((caught.exception.status, caught.exception.code), (403, "insufficient_scope"))


class Examples(unittest.TestCase):
    """The examples need aiogram/aiohttp (not ymds's dependencies): check they compile and
    that the receiver verifies with ymds.client.verify_webhook, which is tested above."""

    def test_examples_compile_and_verify_signatures(self):
        import ast
        import os
        root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
        for name in ("aiogram_bot.py", "webhook_receiver.py"):
            with open(os.path.join(root, name), encoding="utf-8") as f:
                tree = ast.parse(f.read(), name)
            compile(tree, name, "exec")
            if name == "webhook_receiver.py":
                calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
                self.assertIn("verify_webhook", calls)
