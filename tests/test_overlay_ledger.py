"""The overlay store (schema 005): token set/rotate, public donors, the overlay outbox and
the donation aggregates.  One contract over SQLite and PostgreSQL (PostgreSQL errors,
never skips, when no server answers)."""

from __future__ import annotations

from decimal import Decimal

from twisted.internet import defer
from twisted.trial import unittest

from tests.support.ledgers import LedgerTestMixin, PostgresLedgerMixin, SQLiteLedgerMixin
from tests.test_ledger import fields

T0 = 1_780_000_000.0


class OverlayLedgerContract(LedgerTestMixin):
    async def donate(self, op: str, amount: str, name: str = "", message: str = "", public: bool = False,
                     at: float = T0, paid: bool = True) -> str:
        inv = await self.ledger.invoices.create_invoice("donation", Decimal(amount), at, 3600, description="donation",
                                                        metadata={"name": name, "message": message})
        if public:
            self.assertTrue(await self.ledger.overlay.mark_public(inv.label, name, at))
        if paid:
            await self.ledger.payments.apply_payment(fields(op, inv.label, withdraw=amount), "notification", at + 1)
        return inv.label

    async def test_token_set_and_rotate(self):
        store = self.ledger.overlay
        self.assertIsNone(await store.overlay_token())
        self.assertFalse(await store.set_overlay_token("a" * 32, T0))
        self.assertEqual(await store.overlay_token(), "a" * 32)
        self.assertTrue(await store.set_overlay_token("b" * 32, T0 + 1))
        self.assertEqual(await store.overlay_token(), "b" * 32)

    async def test_public_only_for_donations_with_a_name(self):
        store = self.ledger.overlay
        label = await self.donate("op1", "100.00", "Ann", paid=False)
        sub = await self.ledger.invoices.create_invoice("subscription", Decimal("10.00"), T0, 60, plan="m", days=30,
                                                        chat_id=5)
        self.assertFalse(await store.mark_public(sub.label, "Ann", T0))
        self.assertFalse(await store.mark_public("nope", "Ann", T0))
        self.assertFalse(await store.mark_public(label, "  ", T0))
        self.assertFalse(await store.is_public(label))
        self.assertTrue(await store.mark_public(label, "Ann", T0))
        self.assertTrue(await store.is_public(label))

    async def test_donation_hides_a_private_donor(self):
        await self.donate("op-pub", "300.00", "Ann", "hello", public=True)
        await self.donate("op-priv", "500.00", "Secret Bob", "private note")
        pub = await self.ledger.overlay.donation("op-pub")
        priv = await self.ledger.overlay.donation("op-priv")
        self.assertEqual((pub.amount, pub.name, pub.message, pub.public, pub.status),
                         (Decimal("300.00"), "Ann", "hello", True, "paid"))
        self.assertEqual((priv.amount, priv.name, priv.message, priv.public), (Decimal("500.00"), None, None, False))
        self.assertIsNone(await self.ledger.overlay.donation("op-none"))

    async def test_outbox_once_per_operation(self):
        store = self.ledger.overlay
        self.assertTrue(await store.outbox_add("op1", T0))
        self.assertFalse(await store.outbox_add("op1", T0 + 1))
        self.assertTrue(await store.outbox_add("op2", T0 + 2))
        self.assertEqual(await store.outbox_pending(T0 + 1), ["op1"])
        self.assertEqual(await store.outbox_pending(T0 + 5), ["op1", "op2"])
        self.assertTrue(await store.outbox_sent("op1", "1-0", T0 + 3))
        self.assertFalse(await store.outbox_sent("op1", "1-0", T0 + 4))
        self.assertEqual(await store.outbox_pending(T0 + 5), ["op2"])
        self.assertEqual(await store.outbox_entry("op1"), "1-0")
        self.assertIsNone(await store.outbox_entry("op2"))
        self.assertIsNone(await store.outbox_entry("op-none"))

    async def test_concurrent_outbox_adds_make_one_row(self):
        results = await defer.gatherResults([defer.ensureDeferred(self.ledger.overlay.outbox_add("op-c", T0))
                                             for _ in range(8)])
        self.assertEqual(sorted(results), [False] * 7 + [True])

    async def test_aggregates(self):
        await self.donate("op1", "100.00", "Ann", "first", public=True, at=T0)
        await self.donate("op2", "250.50", "Bob", public=True, at=T0 + 10)
        await self.donate("op3", "1000.00", "Hidden", "secret", at=T0 + 20)
        await self.donate("op4", "50.00", "Ann", "again", public=True, at=T0 + 30)
        await self.donate("op5", "999.00", "Unpaid", public=True, at=T0 + 40, paid=False)
        store = self.ledger.overlay
        self.assertEqual(await store.raised(T0 - 1), Decimal("1400.50"))
        self.assertEqual(await store.raised(T0 + 15), Decimal("1050.00"))
        latest = await store.latest_public(10)
        self.assertEqual([(d.name, d.amount, d.message) for d in latest],
                         [("Ann", Decimal("50.00"), "again"), ("Bob", Decimal("250.50"), None),
                          ("Ann", Decimal("100.00"), "first")])
        self.assertEqual(len(await store.latest_public(1)), 1)
        top = await store.top_supporters(T0 - 1, 5)
        self.assertEqual([(s.name, s.total) for s in top], [("Bob", Decimal("250.50")), ("Ann", Decimal("150.00"))])
        self.assertEqual([(s.name, s.total) for s in await store.top_supporters(T0 + 5, 5)],
                         [("Bob", Decimal("250.50")), ("Ann", Decimal("50.00"))])
        everything = repr(latest) + repr(top)
        self.assertNotIn("Hidden", everything)
        self.assertNotIn("secret", everything)


class SQLiteOverlayLedgerTests(SQLiteLedgerMixin, OverlayLedgerContract, unittest.TestCase):
    pass


class PostgresOverlayLedgerTests(PostgresLedgerMixin, OverlayLedgerContract, unittest.TestCase):
    pass
