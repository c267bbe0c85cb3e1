"""Issue 19 in the REST API: promo codes (promo:read / promo:write) and access codes
(codes:write) through the web role and the real billing role; a paid payment shows the
promo code fixed into its invoice."""
from __future__ import annotations

from decimal import Decimal

from tests.test_api import ApiTestBase, schema_validator


class SellingApiTests(ApiTestBase):
    async def test_promo_codes_create_list_disable(self):
        s = self.stack
        writer, _ = await s.key(["promo:write"])
        reader, _ = await s.key(["promo:read"])
        body = {"code": "spring", "percent": 20, "plans": ["month"], "uses": 5, "per_user": 1,
                "ends_at": s.clock.seconds() + 86400, "first_only": True}
        status, created, _ = await s.request("POST", "/api/v1/promo-codes", writer, body)
        self.assertEqual((status, created["code"], created["percent"]), (201, "SPRING", 20))
        schema_validator("PromoCodeCreated").validate(created)
        self.assertError(await s.request("POST", "/api/v1/promo-codes", writer, body), 409, "already_exists")
        self.assertError(await s.request("POST", "/api/v1/promo-codes", writer, {"code": "X", "percent": 5,
                                                                                 "plans": ["week"]}),
                         422, "invalid_request")
        self.assertError(await s.request("POST", "/api/v1/promo-codes", writer, {"code": "X"}), 422, "invalid_request")
        self.assertError(await s.request("GET", "/api/v1/promo-codes", writer), 403, "insufficient_scope")
        self.assertError(await s.request("POST", "/api/v1/promo-codes", reader, body), 403, "insufficient_scope")
        status, listed, _ = await s.request("GET", "/api/v1/promo-codes", reader)
        self.assertEqual(status, 200)
        schema_validator("PromoCodeList").validate(listed)
        [spring] = listed["data"]
        self.assertEqual((spring["uses"], spring["used"], spring["active"], spring["plans"]), (5, 0, True, ["month"]))
        status, done, _ = await s.request("POST", "/api/v1/promo-codes/spring/disable", writer)
        self.assertEqual((status, done), (200, {"code": "SPRING", "active": False}))
        self.assertError(await s.request("POST", "/api/v1/promo-codes/spring/disable", writer), 404, "not_found")
        status, listed, _ = await s.request("GET", "/api/v1/promo-codes", reader)
        self.assertFalse(listed["data"][0]["active"])

    async def test_access_codes(self):
        s = self.stack
        key, _ = await s.key(["codes:write"])
        status, made, _ = await s.request("POST", "/api/v1/access-codes", key, {"plan": "month", "count": 3, "uses": 2})
        self.assertEqual(status, 201)
        schema_validator("AccessCodes").validate(made)
        self.assertEqual((len(made["codes"]), made["days"], made["uses"]), (3, 30, 2))
        code, sub = await s.ledger.codes.redeem(made["codes"][0], 77, s.clock.seconds())
        self.assertEqual((sub.plan, code.used), ("month", 1))
        self.assertError(await s.request("POST", "/api/v1/access-codes", key, {"plan": "week"}), 422,
                         "invalid_request")
        self.assertError(await s.request("POST", "/api/v1/access-codes", key, {}), 422, "invalid_request")

    async def test_payments_show_the_promo_code(self):
        s = self.stack
        key, _ = await s.key(["payments:read"])
        now = s.clock.seconds()
        await s.ledger.promo.add("HALF", now, percent=50)
        inv = await s.ledger.promo.discounted_invoice("HALF", 5, 5, "month", 30, Decimal("199.00"), now, 3600)
        plain = await s.ledger.invoices.create_invoice("subscription", Decimal("199.00"), now, 3600, plan="month",
                                                       days=30, chat_id=6)
        for op, invoice in (("op-half", inv), ("op-full", plain)):
            amount = format(invoice.amount, "f")
            await s.ledger.payments.apply_payment(
                {"operation_id": op, "amount": amount, "withdraw_amount": amount, "label": invoice.label,
                 "currency": "643", "notification_type": "card-incoming", "datetime": "2026-11-26T10:00:00Z",
                 "sender": "", "codepro": "false", "unaccepted": "false"}, "notification", now)
        status, page, _ = await s.request("GET", "/api/v1/payments", key)
        self.assertEqual(status, 200)
        schema_validator("PaymentPage").validate(page)
        codes = {p["operation_id"]: (p["promo_code"], p["amount"]) for p in page["data"]}
        self.assertEqual(codes, {"op-half": ("HALF", "99.50"), "op-full": (None, "199.00")})
