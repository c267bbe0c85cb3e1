"""The ledger's integration additions (schema version 2): API keys, idempotent invoice
creation, webhook endpoints, the outbox, delivery leases and the delivery log.  One contract,
run against SQLite and PostgreSQL like tests/test_ledger.py (PostgreSQL errors, never skips,
when no server answers)."""

from __future__ import annotations

from decimal import Decimal

from twisted.internet import defer
from twisted.trial import unittest

from tests.support.ledgers import LedgerTestMixin, PostgresLedgerMixin, SQLiteLedgerMixin
from ymds.billing.ledger import IdempotencyConflict, LedgerError

T0 = 1_780_000_000.0


class IntegrationLedgerContract(LedgerTestMixin):
    # --- API keys ---------------------------------------------------------------------

    async def test_api_keys_by_hash_list_and_revoke(self):
        created = await self.ledger.api_keys.api_key_create("key_a", "h" * 64, "shop", ["invoices:write", "invoices:read"], T0)
        self.assertEqual(created.scopes, ("invoices:write", "invoices:read"))
        found = await self.ledger.api_keys.api_key_lookup("h" * 64)
        self.assertEqual((found.id, found.name, found.scopes, found.revoked_at), ("key_a", "shop", created.scopes, None))
        self.assertIsNone(await self.ledger.api_keys.api_key_lookup("x" * 64))
        await self.ledger.api_keys.api_key_create("key_b", "g" * 64, "", ["payments:read"], T0 + 1)
        self.assertEqual([k.id for k in await self.ledger.api_keys.api_key_list()], ["key_a", "key_b"])
        self.assertTrue(await self.ledger.api_keys.api_key_revoke("key_a", T0 + 2))
        self.assertFalse(await self.ledger.api_keys.api_key_revoke("key_a", T0 + 3))
        self.assertFalse(await self.ledger.api_keys.api_key_revoke("key_nope", T0 + 3))
        self.assertEqual((await self.ledger.api_keys.api_key_lookup("h" * 64)).revoked_at, T0 + 2)

    async def test_duplicate_key_hash_is_refused(self):
        await self.ledger.api_keys.api_key_create("key_a", "h" * 64, "", ["payments:read"], T0)
        with self.assertRaises(Exception):
            await self.ledger.api_keys.api_key_create("key_b", "h" * 64, "", ["payments:read"], T0)

    # --- idempotent invoices ------------------------------------------------------------

    async def test_create_invoice_once(self):
        first, replayed = await self.ledger.api_keys.create_invoice_once("key_a", "idem-1", "hash-1", T0, "donation",
                                                                Decimal("150.00"), 3600, description="order 7",
                                                                metadata={"order": 7})
        self.assertFalse(replayed)
        self.assertEqual((first.amount, first.description, first.metadata), (Decimal("150.00"), "order 7", {"order": 7}))
        again, replayed = await self.ledger.api_keys.create_invoice_once("key_a", "idem-1", "hash-1", T0 + 5, "donation",
                                                                Decimal("150.00"), 3600)
        self.assertTrue(replayed)
        self.assertEqual(again, first)
        with self.assertRaises(IdempotencyConflict):
            await self.ledger.api_keys.create_invoice_once("key_a", "idem-1", "hash-2", T0 + 5, "donation", Decimal("1.00"), 3600)
        other, replayed = await self.ledger.api_keys.create_invoice_once("key_b", "idem-1", "hash-2", T0 + 5, "donation",
                                                                Decimal("1.00"), 3600)
        self.assertFalse(replayed)
        self.assertNotEqual(other.label, first.label)
        self.assertEqual(await self.ledger.api_keys.prune_idempotency(T0 + 1), 1)
        fresh, replayed = await self.ledger.api_keys.create_invoice_once("key_a", "idem-1", "hash-3", T0 + 9, "donation",
                                                                Decimal("2.00"), 3600)
        self.assertFalse(replayed)

    async def test_concurrent_creates_with_one_key_make_one_invoice(self):
        results = await defer.gatherResults([
            self.ledger.api_keys.create_invoice_once("key_a", "same", "hash", T0, "donation", Decimal("10.00"), 3600)
            for _ in range(5)])
        self.assertEqual(len({inv.label for inv, _ in results}), 1)
        self.assertEqual(sorted(replayed for _, replayed in results), [False, True, True, True, True])

    async def test_subscription_invoice_once_needs_plan_and_chat(self):
        with self.assertRaises(LedgerError):
            await self.ledger.api_keys.create_invoice_once("key_a", "k", "h", T0, "subscription", Decimal("199.00"), 3600)
        inv, _ = await self.ledger.api_keys.create_invoice_once("key_a", "k", "h", T0, "subscription", Decimal("199.00"), 3600,
                                                       plan="month", days=30, chat_id=42)
        self.assertEqual((inv.kind, inv.plan, inv.days, inv.chat_id), ("subscription", "month", 30, 42))

    # --- webhooks -----------------------------------------------------------------------

    async def endpoints(self):
        a = await self.ledger.webhooks.webhook_endpoint_add("we_a", "https://a.example/hook", ["invoice.paid", "payment.unmatched"],
                                                   "secret-a", T0)
        b = await self.ledger.webhooks.webhook_endpoint_add("we_b", "https://b.example/hook", ["invoice.paid"], "secret-b", T0)
        return a, b

    async def test_endpoints(self):
        a, b = await self.endpoints()
        self.assertEqual((await self.ledger.webhooks.webhook_endpoint_get("we_a")).secret, "secret-a")
        self.assertEqual([e.id for e in await self.ledger.webhooks.webhook_endpoints()], ["we_a", "we_b"])
        self.assertTrue(await self.ledger.webhooks.webhook_endpoint_remove("we_b", T0 + 1))
        self.assertFalse(await self.ledger.webhooks.webhook_endpoint_remove("we_b", T0 + 2))
        self.assertEqual([e.id for e in await self.ledger.webhooks.webhook_endpoints()], ["we_a"])
        self.assertEqual([e.id for e in await self.ledger.webhooks.webhook_endpoints(include_removed=True)], ["we_a", "we_b"])
        self.assertIsNone(await self.ledger.webhooks.webhook_endpoint_get("we_none"))

    async def test_emit_is_idempotent_per_cause_and_filters_types(self):
        await self.endpoints()
        concerned = await self.ledger.webhooks.webhook_emit([("invoice.paid", "invoice.paid:op1", {"x": 1}),
                                                    ("payment.unmatched", "payment.unmatched:op2", {"y": 2})], T0)
        self.assertEqual(concerned, ["we_a", "we_b"])
        again = await self.ledger.webhooks.webhook_emit([("invoice.paid", "invoice.paid:op1", {"x": 1})], T0 + 1)
        self.assertEqual(again, ["we_a", "we_b"])  # still pending: worth waking the deliverers
        a = await self.ledger.webhooks.webhook_deliveries(endpoint_id="we_a")
        self.assertEqual([(d.type, d.data, d.status) for d in a],
                         [("invoice.paid", {"x": 1}, "pending"), ("payment.unmatched", {"y": 2}, "pending")])
        self.assertTrue(a[0].event_id.startswith("evt_"))
        self.assertEqual([d.type for d in await self.ledger.webhooks.webhook_deliveries(endpoint_id="we_b")], ["invoice.paid"])
        # an endpoint added later does not get old events
        await self.ledger.webhooks.webhook_endpoint_add("we_c", "https://c.example/", ["*"], "s", T0 + 2)
        self.assertEqual(await self.ledger.webhooks.webhook_deliveries(endpoint_id="we_c"), [])
        # a removed endpoint gets no new ones
        await self.ledger.webhooks.webhook_endpoint_remove("we_b", T0 + 3)
        await self.ledger.webhooks.webhook_emit([("invoice.paid", "invoice.paid:op3", {})], T0 + 4)
        self.assertEqual(len(await self.ledger.webhooks.webhook_deliveries(endpoint_id="we_b")), 1)
        self.assertEqual(len(await self.ledger.webhooks.webhook_deliveries(endpoint_id="we_c")), 1)

    async def test_next_is_the_oldest_pending_and_attempts_move_it_on(self):
        await self.endpoints()
        for n in range(3):
            await self.ledger.webhooks.webhook_emit([("invoice.paid", f"invoice.paid:op{n}", {"n": n})], T0 + n)
        first = await self.ledger.webhooks.webhook_next("we_a")
        self.assertEqual((first.data, first.attempts, first.next_attempt_at), ({"n": 0}, 0, T0))
        self.assertTrue(await self.ledger.webhooks.webhook_record_attempt("we_a", first.event_seq, T0 + 10, 500, "HTTP 500", 0.25,
                                                                 "retry", T0 + 40))
        retried = await self.ledger.webhooks.webhook_next("we_a")
        self.assertEqual((retried.event_id, retried.attempts, retried.first_attempt_at, retried.next_attempt_at,
                          retried.last_error), (first.event_id, 1, T0 + 10, T0 + 40, "HTTP 500"))
        self.assertEqual(await self.ledger.webhooks.webhook_due(T0 + 39), ["we_b"])
        self.assertEqual(await self.ledger.webhooks.webhook_due(T0 + 40), ["we_a", "we_b"])
        await self.ledger.webhooks.webhook_record_attempt("we_a", first.event_seq, T0 + 40, 200, None, 0.1, "delivered")
        self.assertEqual((await self.ledger.webhooks.webhook_next("we_a")).data, {"n": 1})
        await self.ledger.webhooks.webhook_record_attempt("we_a", (await self.ledger.webhooks.webhook_next("we_a")).event_seq, T0 + 41,
                                                 None, "timeout", 10.0, "failed")
        self.assertEqual((await self.ledger.webhooks.webhook_next("we_a")).data, {"n": 2})
        log = await self.ledger.webhooks.webhook_attempts(endpoint_id="we_a")
        self.assertEqual([(a.status_code, a.outcome) for a in log], [(500, "retry"), (200, "delivered"), (None, "failed")])
        self.assertEqual(log[0].event_id, first.event_id)
        [listed] = [e for e in await self.ledger.webhooks.webhook_endpoints() if e.id == "we_a"]
        self.assertEqual((listed.pending, listed.failed), (1, 1))
        # a stale attempt (already delivered) changes nothing
        self.assertFalse(await self.ledger.webhooks.webhook_record_attempt("we_a", first.event_seq, T0 + 50, 200, None, 0.1,
                                                                  "delivered"))

    async def test_lease_is_exclusive_until_it_lapses(self):
        await self.endpoints()
        self.assertTrue(await self.ledger.webhooks.webhook_claim("we_a", "t1", T0, 30))
        self.assertFalse(await self.ledger.webhooks.webhook_claim("we_a", "t2", T0 + 10, 30))
        self.assertTrue(await self.ledger.webhooks.webhook_claim("we_a", "t1", T0 + 10, 30))  # renewal
        await self.ledger.webhooks.webhook_emit([("invoice.paid", "invoice.paid:op", {})], T0)
        self.assertEqual(await self.ledger.webhooks.webhook_due(T0 + 20), ["we_b"])  # leased: not swept
        self.assertTrue(await self.ledger.webhooks.webhook_claim("we_a", "t2", T0 + 40, 30))  # lapsed
        self.assertFalse(await self.ledger.webhooks.webhook_release("we_a", "t1"))
        self.assertTrue(await self.ledger.webhooks.webhook_release("we_a", "t2"))
        self.assertTrue(await self.ledger.webhooks.webhook_claim("we_a", "t3", T0 + 41, 30))
        await self.ledger.webhooks.webhook_endpoint_remove("we_b", T0)
        self.assertFalse(await self.ledger.webhooks.webhook_claim("we_b", "t1", T0, 30))

    async def test_redeliver_by_event_and_by_endpoint_since(self):
        await self.endpoints()
        for n in range(3):
            await self.ledger.webhooks.webhook_emit([("invoice.paid", f"invoice.paid:op{n}", {"n": n})], T0 + 100 * n)
        for d in await self.ledger.webhooks.webhook_deliveries():
            await self.ledger.webhooks.webhook_record_attempt(d.endpoint_id, d.event_seq, T0 + 500, 200, None, 0.1, "delivered")
        self.assertEqual(await self.ledger.webhooks.webhook_deliveries(status="pending"), [])
        event = (await self.ledger.webhooks.webhook_deliveries(endpoint_id="we_a"))[0]
        self.assertEqual(await self.ledger.webhooks.webhook_redeliver(T0 + 600, event_id=event.event_id), ["we_a", "we_b"])
        pending = await self.ledger.webhooks.webhook_deliveries(status="pending")
        self.assertEqual([(d.endpoint_id, d.data, d.attempts) for d in pending], [("we_a", {"n": 0}, 0), ("we_b", {"n": 0}, 0)])
        self.assertEqual(await self.ledger.webhooks.webhook_redeliver(T0 + 600, endpoint_id="we_b", since=T0 + 100), ["we_b"])
        self.assertEqual([d.data["n"] for d in await self.ledger.webhooks.webhook_deliveries(endpoint_id="we_b", status="pending")],
                         [0, 1, 2])
        self.assertEqual([d.data["n"] for d in await self.ledger.webhooks.webhook_deliveries(endpoint_id="we_a", status="pending")],
                         [0])
        # an endpoint added after the event gets it on redelivery of that event
        await self.ledger.webhooks.webhook_endpoint_add("we_c", "https://c.example/", ["invoice.paid"], "s", T0 + 700)
        self.assertIn("we_c", await self.ledger.webhooks.webhook_redeliver(T0 + 701, event_id=event.event_id))
        self.assertEqual(await self.ledger.webhooks.webhook_redeliver(T0, event_id="evt_unknown"), [])
        with self.assertRaises(LedgerError):
            await self.ledger.webhooks.webhook_redeliver(T0)


class SQLiteIntegrationLedgerTests(SQLiteLedgerMixin, IntegrationLedgerContract, unittest.TestCase):
    pass


class PostgresIntegrationLedgerTests(PostgresLedgerMixin, IntegrationLedgerContract, unittest.TestCase):
    pass
