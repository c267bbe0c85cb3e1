"""The ledger's subscriber management and broadcast stores (schema version 8), one
contract run against SQLite and PostgreSQL (PostgreSQL errors, never skips, when no server
answers)."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from tests.support.ledgers import LedgerTestMixin, PostgresLedgerMixin, SQLiteLedgerMixin
from ymds.billing.ledger import LedgerError

T0 = 1_780_000_000.0
DAY = 86400


class SubscriberLedgerContract(LedgerTestMixin):
    async def kinds(self, chat_id):
        return [(e.kind, e.data.get("by")) for e in await self.ledger.audit.events(chat_id=chat_id)]

    # --- subscribers ------------------------------------------------------------------

    async def test_grant_creates_then_extends_from_the_end(self):
        s = self.ledger.subscribers
        change = await s.grant(1, 30, T0, plan="month", by="cli")
        self.assertIsNone(change.before)
        self.assertFalse(change.was_active)
        self.assertEqual((change.after.plan, change.after.ends_at), ("month", T0 + 30 * DAY))
        change = await s.grant(1, 5, T0 + DAY, by="api:key_a")
        self.assertTrue(change.was_active)
        self.assertEqual((change.after.plan, change.after.ends_at), ("month", T0 + 35 * DAY))
        self.assertEqual(await self.kinds(1), [("subscriber_granted", "cli"), ("subscriber_granted", "api:key_a")])

    async def test_extend_needs_a_subscription_and_starts_from_now_once_ended(self):
        s = self.ledger.subscribers
        self.assertIsNone(await s.grant(2, 7, T0, only_existing=True))
        self.assertEqual(await self.kinds(2), [])
        await s.grant(2, 1, T0, plan="month")
        change = await s.grant(2, 7, T0 + 10 * DAY, only_existing=True, by="cli")
        self.assertFalse(change.was_active)
        self.assertEqual(change.after.ends_at, T0 + 17 * DAY)
        self.assertFalse(change.after.expired)
        self.assertEqual((await self.kinds(2))[-1], ("subscriber_extended", "cli"))

    async def test_revoke_ends_now_and_stops_the_expiry_message(self):
        s = self.ledger.subscribers
        self.assertIsNone(await s.revoke(3, T0))
        await s.grant(3, 30, T0, plan="month")
        change = await s.revoke(3, T0 + DAY, by="cli")
        self.assertTrue(change.was_active)
        self.assertEqual(change.after.ends_at, T0 + DAY)
        self.assertFalse((await self.ledger.subscriptions.subscription(3)).active(T0 + DAY))
        self.assertEqual(await self.ledger.subscriptions.expired_subscriptions(T0 + 2 * DAY), [])
        self.assertEqual((await self.kinds(3))[-1], ("subscriber_revoked", "cli"))

    async def test_days_out_of_range_are_refused(self):
        for days in (0, -1, 36501):
            with self.assertRaises(LedgerError):
                await self.ledger.subscribers.grant(4, days, T0)

    async def test_lists_by_status_plan_and_expiry(self):
        s = self.ledger.subscribers
        await s.grant(10, 30, T0, plan="month")
        await s.grant(11, 3, T0, plan="month")
        await s.grant(12, 365, T0, plan="year")
        await s.grant(13, 1, T0 - 5 * DAY, plan="month")  # ended four days ago
        now = T0 + 1
        ids = lambda subs: [x.chat_id for x in subs]  # noqa: E731
        self.assertEqual(ids(await s.subscribers(now)), [11, 10, 12])
        self.assertEqual(ids(await s.subscribers(now, plan="month")), [11, 10])
        self.assertEqual(ids(await s.subscribers(now, expiring_within=7 * DAY)), [11])
        self.assertEqual(ids(await s.subscribers(now, status="expired")), [13])
        self.assertEqual(ids(await s.subscribers(now, status="all")), [13, 11, 10, 12])
        await self.ledger.subscriptions.mark_blocked(10, now)
        self.assertEqual(await s.audience(now, "active"), [11, 12])
        self.assertEqual(await s.audience(now, "all", plan="month"), [11, 13])
        self.assertEqual(await s.audience(now, "expired"), [13])
        with self.assertRaises(LedgerError):
            await s.audience(now, "everyone")

    async def test_concurrent_grants_from_two_ledgers_add_up(self):
        other = await self.open()
        await defer.gatherResults([
            defer.ensureDeferred(ledger.subscribers.grant(20, 1, T0, plan="month"))
            for ledger in [self.ledger, other] * 5])
        self.assertEqual((await self.ledger.subscriptions.subscription(20)).ends_at, T0 + 10 * DAY)
        self.assertEqual(len(await self.ledger.audit.events(chat_id=20)), 10)

    async def test_a_request_key_changes_once_and_refuses_another_request(self):
        from ymds.billing.ledger import IdempotencyConflict
        s = self.ledger.subscribers
        first = await s.grant(30, 10, T0, plan="month", request=("key_a:r1", "1" * 64))
        again = await s.grant(30, 10, T0 + 5, plan="month", request=("key_a:r1", "1" * 64))
        self.assertEqual((first.repeated, again.repeated), (False, True))
        self.assertEqual(again.after.ends_at, T0 + 10 * DAY)
        with self.assertRaises(IdempotencyConflict):
            await s.grant(30, 99, T0, request=("key_a:r1", "2" * 64))
        self.assertTrue((await s.revoke(30, T0 + 6, request=("key_a:r2", "3" * 64))).was_active)
        self.assertTrue((await s.revoke(30, T0 + 7, request=("key_a:r2", "3" * 64))).repeated)
        self.assertEqual([e.kind for e in await self.ledger.audit.events(chat_id=30)],
                         ["subscriber_granted", "subscriber_revoked"])

    async def test_one_request_key_from_two_processes_at_once_changes_once(self):
        other = await self.open()
        results = await defer.gatherResults([
            defer.ensureDeferred(ledger.subscribers.grant(31, 3, T0, plan="month", request=("key_b:r", "4" * 64)))
            for ledger in (self.ledger, other, self.ledger, other)])
        self.assertEqual(sorted(r.repeated for r in results), [False, True, True, True])
        self.assertEqual((await self.ledger.subscriptions.subscription(31)).ends_at, T0 + 3 * DAY)

    # --- broadcasts -------------------------------------------------------------------

    async def test_broadcast_recipients_are_fixed_at_the_first_start(self):
        b = self.ledger.broadcasts
        first, new = await b.broadcast_start("bc_1", "active", None, "h" * 64, range(1, 1201), T0)
        self.assertTrue(new)
        self.assertEqual(first.total, 1200)
        again, new = await b.broadcast_start("bc_1", "active", None, "h" * 64, [5000], T0 + 60)
        self.assertFalse(new)
        self.assertEqual((again.total, again.created_at), (1200, T0))
        self.assertEqual((await b.broadcast_counts("bc_1"))["pending"], 1200)
        self.assertEqual(len(await b.broadcast_pending("bc_1")), 1200)
        self.assertEqual(await b.broadcast_pending("bc_1", limit=2), [1, 2])
        self.assertIsNone(await b.broadcast_get("bc_2"))

    async def test_each_recipient_is_marked_once(self):
        b = self.ledger.broadcasts
        await b.broadcast_start("bc_1", "all", "month", "h" * 64, [1, 2, 3, 4], T0)
        self.assertEqual(await b.broadcast_record("bc_1", [(1, "sent"), (2, "blocked")], T0 + 1), 2)
        self.assertEqual(await b.broadcast_record("bc_1", [(1, "failed"), (3, "sent")], T0 + 2), 1)
        self.assertEqual(await b.broadcast_counts("bc_1"), {"pending": 1, "sent": 2, "blocked": 1, "failed": 0})
        self.assertEqual(await b.broadcast_pending("bc_1"), [4])
        with self.assertRaises(LedgerError):
            await b.broadcast_record("bc_1", [(4, "pending")], T0)
        self.assertTrue(await b.broadcast_finish("bc_1", T0 + 3))
        self.assertFalse(await b.broadcast_finish("bc_1", T0 + 4))
        self.assertEqual((await b.broadcast_get("bc_1")).finished_at, T0 + 3)

    async def test_two_processes_starting_one_broadcast_make_one(self):
        other = await self.open()
        results = await defer.gatherResults([
            defer.ensureDeferred(ledger.broadcasts.broadcast_start("bc_r", "active", None, "h" * 64, range(300), T0))
            for ledger in (self.ledger, other, self.ledger, other)])
        self.assertEqual(sorted(new for _, new in results), [False, False, False, True])
        self.assertEqual((await self.ledger.broadcasts.broadcast_counts("bc_r"))["pending"], 300)
        marked = await defer.gatherResults([
            defer.ensureDeferred(ledger.broadcasts.broadcast_record("bc_r", [(c, "sent") for c in range(300)], T0))
            for ledger in (self.ledger, other)])
        self.assertEqual(sum(marked), 300)


class SQLiteSubscriberLedgerTests(SQLiteLedgerMixin, SubscriberLedgerContract, unittest.TestCase):
    pass


class PostgresSubscriberLedgerTests(PostgresLedgerMixin, SubscriberLedgerContract, unittest.TestCase):
    pass
