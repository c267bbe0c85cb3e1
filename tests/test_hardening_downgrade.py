"""Issue 14, billing side of the signature downgrade, and reverify's withdraw_amount.

Genuine notifications are minted by the sandbox (its own derived key) and tampered with the
way an attacker on the path can: strip ``sign``, rewrite fields sha1_hash does not cover.
The wallet API is the sandbox's, over real HTTP on loopback.
"""

from __future__ import annotations

from decimal import Decimal

from twisted.internet import reactor
from twisted.trial import unittest

from tests.support.ledgers import PostgresLedgerMixin, SQLiteLedgerMixin
from tests.support.queues import run_task
from tests.test_billing_sandbox import SandboxBillingBase
from ymds.billing.jobs import ApplyPayment
from ymds.billing.open import open_ledger
from ymds.billing.reverify import reverify
from ymds.billing.signatures import DOWNGRADE_REASON
from ymds.billing.tasks import BillingTasks
from ymds.yoomoney.notification import encode_form

T0 = 1_780_000_000.0


def stripped(fields, **rewrites):
    """What an attacker on the path can make of a genuine body: ``sign`` removed, unsigned
    fields rewritten (sha1_hash still verifies)."""
    out = {k: v for k, v in fields.items() if k != "sign"}
    out.update(rewrites)
    return out


class DowngradeTests(SandboxBillingBase):
    async def apply(self, fields, scheme=None, tasks=None):
        args = {"fields": fields, "source": "notification"}
        if scheme is not None:
            args["scheme"] = scheme
        return await run_task(tasks or self.tasks, "apply_payment", args)

    def without_api(self):
        return BillingTasks(self.config, self.ledger, self.queue, self.clock)

    async def test_rewritten_withdraw_amount_does_not_pay_an_invoice(self):
        label = await self.invoice()
        await self.pay(label, amount="10.00")
        forged = stripped(self.endpoint.fields(), withdraw_amount="199.00")
        result = await self.apply(forged, scheme="sha1")
        self.assertEqual(result["outcome"], "underpaid")
        self.assertEqual((await self.ledger.invoices.get_invoice(label)).status, "underpaid")
        payment = await self.ledger.payments.get_payment(forged["operation_id"])
        self.assertLess(payment.withdraw_amount, Decimal("199.00"))
        self.assertIsNone(await self.ledger.subscriptions.subscription(42))

    async def test_old_web_node_job_without_scheme_is_not_trusted_as_sign(self):
        label = await self.invoice()
        await self.pay(label, amount="10.00")
        forged = stripped(self.endpoint.fields(), withdraw_amount="199.00")
        result = await self.apply(forged)  # no scheme on the wire: sign not proven
        self.assertEqual(result["outcome"], "underpaid")
        self.assertEqual(await self.ledger.signatures.scheme_of(forged["operation_id"]), "sha1")

    async def test_genuine_full_payment_over_sha1_is_paid_from_the_signed_amount(self):
        label = await self.invoice()
        await self.pay(label, amount="199.00")
        result = await self.apply(stripped(self.endpoint.fields()), scheme="sha1")
        self.assertEqual(result["outcome"], "paid")
        payment = await self.ledger.payments.get_payment(result["operation_id"])
        self.assertEqual(payment.withdraw_amount, Decimal("199.00"))

    async def test_rewritten_unaccepted_is_confirmed_with_the_api(self):
        label = await self.invoice()
        operation = await self.pay(label, unaccepted=True)
        result = await self.apply(stripped(self.endpoint.fields(), unaccepted="false"), scheme="sha1")
        self.assertEqual(result["outcome"], "held")
        self.assertIsNone(await self.ledger.subscriptions.subscription(42))
        operation.unaccepted = False  # later accepted: reconciliation releases it
        counts = await self.timers.reconcile(self.clock.seconds())
        self.assertEqual(counts["released"], 1)

    async def test_without_api_sha1_is_held_and_the_owner_alerted(self):
        label = await self.invoice()
        await self.pay(label, unaccepted=True)
        fields = stripped(self.endpoint.fields(), unaccepted="false")
        tasks = self.without_api()
        result = await self.apply(fields, scheme="sha1", tasks=tasks)
        self.assertEqual(result["outcome"], "held")
        self.assertIsNone(await self.ledger.subscriptions.subscription(42))
        sent = [(t, a.get("message"), a.get("key")) for _, t, a, _ in self.queue.take()]
        self.assertIn(("notify_admins", "unconfirmed", f"admins:{fields['operation_id']}:unconfirmed"), sent)
        again = await self.apply(fields, scheme="sha1", tasks=tasks)  # a redelivery: still held, alert keyed once
        self.assertEqual(again["outcome"], "duplicate")

    async def test_sha1_after_sign_seen_is_quarantined_like_forged(self):
        first = await self.invoice(chat=41)
        await self.pay(first)
        self.assertEqual((await self.apply(self.endpoint.fields(), scheme="sign"))["outcome"], "paid")
        self.assertTrue(await self.ledger.signatures.sign_seen(self.config.yoomoney.wallet))
        label = await self.invoice()
        await self.pay(label)
        fields = stripped(self.endpoint.fields())
        result = await self.apply(fields, scheme="sha1")
        self.assertEqual(result["outcome"], "quarantined")
        self.assertIsNone(await self.ledger.payments.get_payment(fields["operation_id"]))
        [q] = await self.ledger.quarantine.quarantine_list()
        self.assertEqual(q.reason, DOWNGRADE_REASON)
        # and reverify without the API does not let it through either
        counts = await reverify(self.ledger, self.config, clock=self.clock)
        self.assertEqual(counts["still_quarantined"], 1)

    async def test_legacy_job_with_a_verifying_sign_counts_as_sign(self):
        label = await self.invoice()
        await self.pay(label)
        fields = self.endpoint.fields()
        self.assertEqual((await self.apply(fields))["outcome"], "paid")
        self.assertEqual(await self.ledger.signatures.scheme_of(fields["operation_id"]), "sign")

    async def test_reverify_takes_withdraw_amount_from_the_api(self):
        label = await self.invoice()
        operation = await self.pay(label, amount="10.00")
        body = encode_form(dict(self.endpoint.fields(), withdraw_amount="199.00")).decode()  # sign breaks
        await self.ledger.quarantine.quarantine_add(body, "signature: sign_mismatch", "198.51.100.1", T0)
        counts = await reverify(self.ledger, self.config, wallet_api=self.api, clock=self.clock)
        self.assertEqual(counts["api_confirmed"], 1)
        payment = await self.ledger.payments.get_payment(operation.operation_id)
        self.assertEqual((payment.status, payment.withdraw_amount), ("underpaid", Decimal("10.00")))
        self.assertEqual((await self.ledger.invoices.get_invoice(label)).status, "underpaid")


class ApplyPaymentWireTests(unittest.TestCase):
    def test_scheme_round_trips_and_is_optional(self):
        job = ApplyPayment({"a": "1"}, "notification", "sha1")
        self.assertEqual(ApplyPayment.from_wire(job.to_wire()), job)
        self.assertNotIn("scheme", ApplyPayment({"a": "1"}).to_wire())  # old workers see the job they know
        self.assertIsNone(ApplyPayment.from_wire({"fields": {}, "source": "notification"}).scheme)
        self.assertIsNone(ApplyPayment.from_wire({"fields": {}, "scheme": "trust-me"}).scheme)


class SignatureStoreContract:
    """Run with an engine mixin (tests/support/ledgers.py) giving ``make_url``."""

    async def open(self):
        ledger = open_ledger(self.make_url(), reactor)
        self.addCleanup(ledger.close)
        await ledger.migrate()
        return ledger

    async def test_sign_seen_flag_and_scheme_per_payment(self):
        ledger = await self.open()
        self.assertFalse(await ledger.signatures.sign_seen("41001"))
        await ledger.signatures.record("41001", "op1", "sha1", T0)
        self.assertFalse(await ledger.signatures.sign_seen("41001"))
        await ledger.signatures.record("41001", "op1", "sign", T0)   # the stronger proof is kept
        await ledger.signatures.record("41001", "op1", "sha1", T0)   # and not weakened again
        self.assertEqual(await ledger.signatures.scheme_of("op1"), "sign")
        self.assertTrue(await ledger.signatures.sign_seen("41001"))
        self.assertFalse(await ledger.signatures.sign_seen("41002"))
        self.assertIsNone(await ledger.signatures.scheme_of("op2"))


class SQLiteSignatureStoreTests(SQLiteLedgerMixin, SignatureStoreContract, unittest.TestCase):
    pass


class PostgresSignatureStoreTests(PostgresLedgerMixin, SignatureStoreContract, unittest.TestCase):
    pass
