"""The access store (schema version 3) over SQLite and PostgreSQL: one live link per
(user, chat) by compare-and-swap, members seen (the newest sighting wins), removals due
when a subscription's grace ends (claimed by one process).  PostgreSQL errors, never
skips, when no server answers."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from tests.support.ledgers import LedgerTestMixin, PostgresLedgerMixin, SQLiteLedgerMixin
from ymds.billing.access_model import AccessRemoval
from ymds.billing.interfaces import missing_members

T0 = 1_780_000_000.0
CHANNEL = -1001111111111
GROUP = -1002222222222


class AccessLedgerContract(LedgerTestMixin):
    async def test_the_ledger_has_the_access_store(self):
        self.assertEqual(missing_members(self.ledger), [])
        self.assertGreaterEqual(await self.ledger.schema_version(), 3)

    # --- invite links -------------------------------------------------------------------

    async def test_swap_invite_is_compare_and_swap(self):
        a = self.ledger.access
        self.assertIsNone(await a.live_invite(7, CHANNEL))
        self.assertTrue(await a.swap_invite(7, CHANNEL, None, "https://t.me/+one", int(T0) + 100, T0))
        self.assertFalse(await a.swap_invite(7, CHANNEL, None, "https://t.me/+two", int(T0) + 100, T0))
        self.assertFalse(await a.swap_invite(7, CHANNEL, "https://t.me/+nope", "https://t.me/+two", 1, T0))
        found = await a.live_invite(7, CHANNEL)
        self.assertEqual((found.invite_link, found.expire_date), ("https://t.me/+one", int(T0) + 100))
        self.assertTrue(await a.swap_invite(7, CHANNEL, "https://t.me/+one", "https://t.me/+two", int(T0) + 200, T0 + 1))
        self.assertEqual((await a.live_invite(7, CHANNEL)).invite_link, "https://t.me/+two")
        self.assertIsNone(await a.live_invite(7, GROUP))  # per chat
        self.assertFalse(await a.swap_invite(7, CHANNEL, "https://t.me/+one", None, None, T0 + 2))
        self.assertTrue(await a.swap_invite(7, CHANNEL, "https://t.me/+two", None, None, T0 + 2))
        self.assertIsNone(await a.live_invite(7, CHANNEL))

    async def test_concurrent_first_links_leave_one(self):
        """Ten processes racing to record a first link: exactly one wins."""
        a = self.ledger.access
        results = await defer.gatherResults([
            defer.Deferred.fromCoroutine(self._swap(a, i)) for i in range(10)])
        self.assertEqual(sum(results), 1)
        winner = results.index(True)
        self.assertEqual((await a.live_invite(7, CHANNEL)).invite_link, f"https://t.me/+l{winner}")

    async def _swap(self, a, i):
        return await a.swap_invite(7, CHANNEL, None, f"https://t.me/+l{i}", int(T0) + 100, T0)

    # --- members seen -------------------------------------------------------------------

    async def test_members_seen_newest_wins(self):
        a = self.ledger.access
        self.assertTrue(await a.member_seen(CHANNEL, 7, "member", T0 + 10))
        self.assertFalse(await a.member_seen(CHANNEL, 7, "left", T0 + 5))  # older, handled late
        self.assertTrue(await a.member_seen(CHANNEL, 8, "member", T0 + 1))
        self.assertTrue(await a.member_seen(GROUP, 7, "administrator", T0 + 1))
        rows = await a.members(CHANNEL)
        self.assertEqual([(m.user_id, m.status, m.joined_at, m.present) for m in rows],
                         [(7, "member", T0 + 10, True), (8, "member", T0 + 1, True)])
        self.assertTrue(await a.member_seen(CHANNEL, 8, "left", T0 + 20))
        self.assertEqual([m.user_id for m in await a.members(CHANNEL, present_only=True)], [7])
        left = [m for m in await a.members(CHANNEL) if m.user_id == 8][0]
        self.assertEqual((left.status, left.joined_at, left.seen_at), ("left", T0 + 1, T0 + 20))
        self.assertEqual([(m.chat_id, m.user_id) for m in await a.members()],
                         [(GROUP, 7), (CHANNEL, 7), (CHANNEL, 8)])

    # --- removals -----------------------------------------------------------------------

    async def test_removals_are_claimed_once_and_finished(self):
        a = self.ledger.access
        self.assertEqual(await a.schedule_removals(7, [CHANNEL, GROUP], T0, T0 + 86400), 2)
        self.assertEqual(await a.schedule_removals(7, [CHANNEL, GROUP], T0, T0 + 86400), 0)  # repeated
        self.assertEqual(await a.claim_removals(T0 + 86399), [])
        first, second = await defer.gatherResults([a.claim_removals(T0 + 86400), a.claim_removals(T0 + 86400)])
        claimed = first + second
        self.assertEqual(sorted((r.user_id, r.chat_id) for r in claimed), [(7, GROUP), (7, CHANNEL)])
        self.assertEqual(await a.claim_removals(T0 + 86500), [])  # claimed, not stale yet
        self.assertTrue(await a.unclaim_removal(claimed[0]))
        self.assertEqual(await a.claim_removals(T0 + 86500), [claimed[0]])
        # a claim never finished comes back after ``stale``
        self.assertEqual(len(await a.claim_removals(T0 + 86400 + 601, stale=600)), 1)
        for r in claimed:
            self.assertTrue(await a.finish_removal(r))
        self.assertFalse(await a.finish_removal(claimed[0]))
        self.assertEqual(await a.pending_removals(), [])

    async def test_pending_removals_by_user(self):
        a = self.ledger.access
        await a.schedule_removals(7, [CHANNEL], T0, T0 + 10)
        await a.schedule_removals(8, [CHANNEL], T0 + 5, T0 + 5)
        self.assertEqual(await a.pending_removals(7), [AccessRemoval(7, CHANNEL, T0, T0 + 10)])
        self.assertEqual([r.user_id for r in await a.pending_removals()], [8, 7])


class SQLiteAccessLedgerTests(SQLiteLedgerMixin, AccessLedgerContract, unittest.TestCase):
    pass


class PostgresAccessLedgerTests(PostgresLedgerMixin, AccessLedgerContract, unittest.TestCase):
    pass
