"""The request checks every API route group shares (ymds.api.routes); the routes themselves
are tested over HTTP in test_api, test_subscribers_api and test_selling_api."""

from __future__ import annotations

from twisted.trial import unittest
from twisted.web.test.requesthelper import DummyRequest

from ymds.api.routes import ApiError, idempotency_key, query_parameters, refuse_unknown_fields


def request(uri: bytes, **headers: str) -> DummyRequest:
    made = DummyRequest([])
    made.uri = uri
    for name, value in headers.items():
        made.requestHeaders.addRawHeader(name.replace("_", "-").encode(), value.encode("latin-1"))
    return made


class RouteChecksTests(unittest.TestCase):
    def refused(self, call, *args) -> ApiError:
        with self.assertRaises(ApiError) as caught:
            call(*args)
        self.assertEqual((caught.exception.status, caught.exception.code), (422, "invalid_request"))
        return caught.exception

    def test_unknown_field_is_named_and_cut_to_40_characters(self):
        refuse_unknown_fields({"plan": "month"}, {"plan", "days"})
        e = self.refused(refuse_unknown_fields, {"plan": 1, "z": 1, "b" * 100: 1}, {"plan"})
        self.assertEqual(e.param, "b" * 40)
        self.assertNotIn("b" * 41, e.message)

    def test_query_parameters_once_each_and_known(self):
        self.assertEqual(query_parameters(request(b"/x?limit=5&status="), {"limit", "status"}),
                         {"limit": "5", "status": ""})
        self.assertEqual(query_parameters(request(b"/x"), {"limit"}), {})
        self.assertEqual(self.refused(query_parameters, request(b"/x?limit=1&limit=2"), {"limit"}).param, "limit")
        self.assertEqual(self.refused(query_parameters, request(b"/x?" + b"q" * 90 + b"=1"), {"limit"}).param, "q" * 40)

    def test_idempotency_key_is_printable_ascii(self):
        self.assertIsNone(idempotency_key(request(b"/x")))
        self.assertEqual(idempotency_key(request(b"/x", idempotency_key="order-7")), "order-7")
        for bad in ("a b", "é", "x" * 256):
            self.assertEqual(self.refused(idempotency_key, request(b"/x", idempotency_key=bad)).param,
                             "Idempotency-Key")
