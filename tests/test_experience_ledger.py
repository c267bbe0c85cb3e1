"""Issue 20, on both ledger engines: a payment found by reconciliation is recorded as paid
when the operation happened (received_at, the invoice's paid_at and the on-time check), while
the subscription still runs from when it was credited; a notification is recorded as it
arrives."""

from __future__ import annotations

from decimal import Decimal

from twisted.internet import reactor
from twisted.trial import unittest

from tests.support.ledgers import PostgresLedgerMixin, SQLiteLedgerMixin
from ymds.billing.open import open_ledger

T0 = 1_780_000_000.0
DAY = 86400.0
HOUR = 3600.0


def fields(operation_id: str, label: str, when: str) -> dict:
    return {"notification_type": "card-incoming", "operation_id": operation_id, "amount": "193.03",
            "withdraw_amount": "199.00", "currency": "643", "datetime": when, "sender": "",
            "codepro": "false", "label": label, "unaccepted": "false"}


def moment(seconds: float) -> str:
    from datetime import datetime, timezone
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class PaidTimeContract:
    url: str

    async def ledger(self):
        ledger = open_ledger(self.url, reactor)
        self.addCleanup(ledger.close)
        await ledger.migrate()
        return ledger

    async def test_reconciled_payment_is_paid_when_the_operation_happened(self):
        ledger = await self.ledger()
        invoice = await ledger.invoices.create_invoice("subscription", Decimal("199.00"), T0, 3 * HOUR, plan="month",
                                                       days=30, chat_id=42)
        paid_at = T0 + 2 * HOUR       # before the invoice expired
        found_at = T0 + 5 * HOUR      # after it: reconciliation found it late
        result = await ledger.payments.apply_payment(fields("op-r", invoice.label, moment(paid_at)), "reconcile",
                                                     found_at)
        self.assertEqual(result.outcome, "paid")  # not "late": it was paid in time
        payment = await ledger.payments.get_payment("op-r")
        self.assertEqual((payment.received_at, payment.accepted_at), (paid_at, found_at))
        self.assertEqual((await ledger.invoices.get_invoice(invoice.label)).paid_at, paid_at)
        # the buyer's days run from when they were credited
        self.assertEqual((await ledger.subscriptions.subscription(42)).ends_at, found_at + 30 * DAY)

    async def test_a_notification_is_recorded_as_it_arrives(self):
        ledger = await self.ledger()
        invoice = await ledger.invoices.create_invoice("subscription", Decimal("199.00"), T0, 3 * HOUR, plan="month",
                                                       days=30, chat_id=43)
        await ledger.payments.apply_payment(fields("op-n", invoice.label, moment(T0 - DAY)), "notification", T0 + 60)
        self.assertEqual((await ledger.payments.get_payment("op-n")).received_at, T0 + 60)

    async def test_an_operation_time_in_the_future_or_unreadable_is_not_believed(self):
        ledger = await self.ledger()
        for op, when in (("op-f", moment(T0 + DAY)), ("op-x", "yesterday"), ("op-z", "2026-05-28T10:00:00")):
            await ledger.payments.apply_payment(fields(op, "", when), "reconcile", T0)
            self.assertEqual((await ledger.payments.get_payment(op)).received_at, T0, op)


class SQLitePaidTime(SQLiteLedgerMixin, PaidTimeContract, unittest.TestCase):
    def setUp(self):
        self.url = self.make_url()


class PostgresPaidTime(PostgresLedgerMixin, PaidTimeContract, unittest.TestCase):
    """Needs a PostgreSQL server (YMDS_TEST_PG), as tests/test_ledger.py."""

    def setUp(self):
        self.url = self.make_url()
