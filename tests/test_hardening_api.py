"""Issue 14, API keys and JSON: the per-address failure bucket is checked before a key is
looked up, unknown keys are remembered briefly (guessing costs no billing call), and deeply
nested JSON answers 400, not 500.  Web + Redis + billing as in tests/test_api.py."""

from __future__ import annotations

from twisted.trial import unittest

from tests.test_api import ApiStack, ApiTestBase
from ymds.api.keys import new_key
from ymds.api.resource import MAX_JSON_DEPTH, UNKNOWN_KEY_TTL, json_depth


class KeyGuessingTests(ApiTestBase):
    async def test_unknown_key_is_refused_from_memory_without_billing(self):
        s = self.stack
        guess = new_key()
        self.assertError(await s.request("GET", "/api/v1/payments", key=guess), 401, "invalid_api_key")
        await s.billing.stopService()  # from now on, any lookup would wait for billing and answer 503
        self.assertError(await s.request("GET", "/api/v1/payments", key=guess), 401, "invalid_api_key")


class BucketBeforeLookupTests(unittest.TestCase):
    timeout = 60

    async def test_blocked_address_gets_429_before_any_lookup(self):
        stack = await ApiStack(self, billing=False).start()  # no billing: a lookup could only time out
        stack.api.failure_limiter.burst = 2.0
        for _ in range(2):
            stack.api.failure_limiter.allow("127.0.0.1")  # this address spent its failures already
        status, value, _ = await stack.request("GET", "/api/v1/payments", key=new_key())
        self.assertEqual((status, value["error"]["code"]), (429, "rate_limited"))


class NestedJsonTests(ApiTestBase):
    async def test_deeply_nested_json_is_400(self):
        s = self.stack
        key, _ = await s.key()
        for raw in (b"[" * 8000 + b"]" * 8000, b'{"amount": "1.00", "metadata": ' + b"[" * 40 + b"]" * 40 + b"}"):
            answer = await s.request("POST", "/api/v1/invoices", key, raw=raw,
                                     headers={"Content-Type": "application/json"})
            self.assertError(answer, 400, "malformed_json")

    def test_json_depth(self):
        self.assertEqual(json_depth({"a": [1, {"b": []}]}), 4)
        self.assertEqual(json_depth("x"), 0)
        self.assertGreater(MAX_JSON_DEPTH, json_depth({"metadata": {"order": {"id": 1}}}))
