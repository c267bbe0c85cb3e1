"""Subscriber management over the REST API: the live web Site with /api, the real Redis
queue and the billing role on SQLite (tests/test_api.py's ApiStack).  Each change is in the
audit log with the key that made it, and shows in billing's subscription_status (what the
bot's /status reads)."""

from __future__ import annotations

from tests.test_api import T0, ApiTestBase, schema_validator
from ymds.billing.invoices import iso

DAY = 86400


class SubscriberApiTests(ApiTestBase):
    async def status(self, chat_id):
        from ymds.billing.jobs import BillingClient
        return await BillingClient(self.stack.queue).subscription_status(chat_id)

    async def test_grant_extend_revoke_and_list(self):
        s = self.stack
        key, key_id = await s.key(["subscriptions:read", "subscriptions:write"])
        status, sub, _ = await s.request("POST", "/api/v1/subscriptions/501/grant", key, {"plan": "month"})
        self.assertEqual(status, 200, sub)
        schema_validator("Subscription").validate(sub)
        self.assertEqual((sub["chat_id"], sub["plan"], sub["active"]), (501, "month", True))
        status, sub, _ = await s.request("POST", "/api/v1/subscriptions/501/extend", key, {"days": 5})
        self.assertEqual((status, sub["ends_at"]), (200, iso(T0 + 35 * DAY)))
        self.assertTrue((await self.status(501)).active)
        await s.request("POST", "/api/v1/subscriptions/502/grant", key, {"days": 3})
        status, listed, _ = await s.request("GET", "/api/v1/subscriptions?expiring_within=604800", key)
        self.assertEqual(status, 200)
        schema_validator("SubscriptionList").validate(listed)
        self.assertEqual([x["chat_id"] for x in listed["data"]], [502])
        status, listed, _ = await s.request("GET", "/api/v1/subscriptions?plan=month", key)
        self.assertEqual([x["chat_id"] for x in listed["data"]], [501])
        status, sub, _ = await s.request("POST", "/api/v1/subscriptions/501/revoke", key, {})
        self.assertEqual((status, sub["active"]), (200, False))
        self.assertFalse((await self.status(501)).active)
        status, listed, _ = await s.request("GET", "/api/v1/subscriptions?status=expired", key)
        self.assertEqual([x["chat_id"] for x in listed["data"]], [501])
        kinds = [(e.kind, e.data.get("by")) for e in await s.ledger.audit.events(chat_id=501)]
        self.assertEqual(kinds, [("subscriber_granted", f"api:{key_id}"), ("subscriber_extended", f"api:{key_id}"),
                                 ("subscriber_revoked", f"api:{key_id}")])

    async def test_scopes(self):
        s = self.stack
        reader, _ = await s.key(["subscriptions:read"])
        self.assertError(await s.request("POST", "/api/v1/subscriptions/1/grant", reader, {"days": 1}), 403,
                         "insufficient_scope")
        self.assertEqual((await s.request("GET", "/api/v1/subscriptions", reader))[0], 200)
        writer, _ = await s.key(["subscriptions:write"])
        self.assertError(await s.request("GET", "/api/v1/subscriptions", writer), 403, "insufficient_scope")

    async def test_refusals(self):
        s = self.stack
        key, _ = await s.key(["subscriptions:read", "subscriptions:write"])
        self.assertError(await s.request("POST", "/api/v1/subscriptions/9/extend", key, {"days": 2}), 404, "not_found")
        self.assertError(await s.request("POST", "/api/v1/subscriptions/9/revoke", key, {}), 404, "not_found")
        self.assertError(await s.request("POST", "/api/v1/subscriptions/9/grant", key, {"plan": "week"}), 422,
                         "invalid_request")
        self.assertError(await s.request("POST", "/api/v1/subscriptions/9/grant", key, {"plan": "month", "days": 1}),
                         422, "invalid_request")
        self.assertError(await s.request("POST", "/api/v1/subscriptions/9/grant", key, {"days": 0}), 422,
                         "invalid_request")
        self.assertError(await s.request("POST", "/api/v1/subscriptions/9/extend", key, {"days": True}), 422,
                         "invalid_request")
        self.assertError(await s.request("POST", "/api/v1/subscriptions/x/grant", key, {"days": 1}), 404, "not_found")
        self.assertError(await s.request("GET", "/api/v1/subscriptions?status=gone", key), 422, "invalid_request")
        self.assertError(await s.request("GET", "/api/v1/subscriptions?limit=0", key), 422, "invalid_request")
        self.assertError(await s.request("GET", "/api/v1/subscriptions?who=1", key), 422, "invalid_request")
        self.assertEqual(await s.ledger.audit.events(chat_id=9), [])
        self.assertEqual(T0, s.clock.seconds())

    async def test_an_idempotency_key_makes_a_retry_change_nothing(self):
        s = self.stack
        key, _ = await s.key(["subscriptions:write"])
        headers = {"Idempotency-Key": "grant-77-once"}
        first = await s.request("POST", "/api/v1/subscriptions/77/grant", key, {"days": 10}, headers=headers)
        again = await s.request("POST", "/api/v1/subscriptions/77/grant", key, {"days": 10}, headers=headers)
        self.assertEqual((first[0], again[0]), (200, 200))
        self.assertEqual(again[1]["ends_at"], iso(T0 + 10 * DAY))
        self.assertError(await s.request("POST", "/api/v1/subscriptions/77/grant", key, {"days": 11}, headers=headers),
                         409, "idempotency_conflict")
        self.assertEqual(len(await s.ledger.audit.events(chat_id=77)), 1)
        self.assertError(await s.request("POST", "/api/v1/subscriptions/77/extend", key, {"days": 1},
                                         headers={"Idempotency-Key": "é"}), 422, "invalid_request")
