"""Issue 14, signature downgrade: with sign stripped, sha1 decides, and no field sha1 does
not cover (withdraw_amount, unaccepted, test_notification) may change what is credited or
its state.  Also the fee arithmetic billing uses to decide from the signed ``amount``."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from ymds.config import YooMoneyConfig
from ymds.yoomoney.credit import credit_covers, expected_credit, paid_equivalent, payment_type_of
from ymds.yoomoney.notification import encode_form, parse_notification
from ymds.yoomoney.signature import (
    SHA1_SIGNED_FIELDS, SignatureRefused, add_signatures, authenticate, is_downgrade,
)

SECRET = "s3cret-notification-key"
FEES = YooMoneyConfig(card_fee=Decimal("0.03"), wallet_fee=Decimal("0.01"))


def genuine(**fields) -> dict[str, str]:
    """A notification as YooMoney sends it: both signatures, every field signed by ``sign``."""
    base = {"notification_type": "card-incoming", "operation_id": "904035776918098009", "amount": "9.70",
            "withdraw_amount": "10.00", "currency": "643", "datetime": "2026-11-29T10:00:00Z", "sender": "",
            "codepro": "false", "label": "inv-abc", "unaccepted": "false"}
    base.update(fields)
    return add_signatures(base, SECRET, "both")


def strip_sign(fields: dict[str, str], **rewrite: str) -> bytes:
    stripped = {k: v for k, v in fields.items() if k != "sign"}
    stripped.update(rewrite)
    return encode_form(stripped)


class DowngradeTests(unittest.TestCase):
    def test_rewritten_withdraw_amount_is_not_trusted(self):
        body = strip_sign(genuine(), withdraw_amount="199.00")
        verified = authenticate(parse_notification(body), SECRET, "auto")
        self.assertEqual(verified.scheme, "sha1")
        self.assertIsNone(verified.withdraw_amount)  # the 199.00 claim is invisible
        self.assertEqual(verified.amount, Decimal("9.70"))
        # Billing decides from the signed amount: it does not pay a 199.00 invoice.
        self.assertFalse(credit_covers(Decimal("199.00"), verified.notification_type, verified.amount, FEES))
        self.assertTrue(credit_covers(Decimal("10.00"), verified.notification_type, verified.amount, FEES))
        self.assertEqual(paid_equivalent(verified.amount, verified.notification_type, FEES), Decimal("10.00"))

    def test_rewritten_unaccepted_is_not_trusted(self):
        body = strip_sign(genuine(unaccepted="true"), unaccepted="false")
        verified = authenticate(parse_notification(body), SECRET, "auto")
        self.assertEqual(verified.scheme, "sha1")
        self.assertIsNone(verified.unaccepted)
        self.assertTrue(verified.held)  # acceptance must be confirmed (wallet API) or held

    def test_sign_path_trusts_every_field(self):
        verified = authenticate(parse_notification(encode_form(genuine())), SECRET, "auto")
        self.assertEqual(verified.scheme, "sign")
        self.assertEqual(verified.withdraw_amount, Decimal("10.00"))
        self.assertIs(verified.unaccepted, False)
        self.assertFalse(verified.held)
        self.assertEqual(verified.signed_fields, frozenset(genuine()))

    def test_sign_present_and_tampered_is_refused(self):
        fields = genuine()
        fields["withdraw_amount"] = "199.00"
        with self.assertRaises(SignatureRefused) as caught:
            authenticate(parse_notification(encode_form(fields)), SECRET, "auto")
        self.assertEqual(caught.exception.reason, "sign_mismatch")

    def test_sha1_exposes_only_signed_fields(self):
        body = strip_sign(genuine(test_notification="false"))
        verified = authenticate(parse_notification(body), SECRET, "auto")
        self.assertLessEqual(verified.signed_fields, SHA1_SIGNED_FIELDS)
        for unsigned in ("withdraw_amount", "unaccepted", "test_notification"):
            self.assertNotIn(unsigned, verified.signed_fields)

    def test_downgrade_after_sign_seen(self):
        self.assertTrue(is_downgrade("sha1", sign_seen_for_wallet=True))
        self.assertFalse(is_downgrade("sha1", sign_seen_for_wallet=False))
        self.assertFalse(is_downgrade("sign", sign_seen_for_wallet=True))


class CreditTests(unittest.TestCase):
    def test_payment_types(self):
        self.assertEqual(payment_type_of("card-incoming"), "AC")
        self.assertEqual(payment_type_of("p2p-incoming"), "PC")
        self.assertIsNone(payment_type_of("other"))

    def test_known_credits(self):
        self.assertEqual(expected_credit(Decimal("199.00"), "AC", FEES), Decimal("193.03"))
        self.assertEqual(expected_credit(Decimal("199.00"), "PC", FEES), Decimal("197.03"))
        half = YooMoneyConfig(wallet_fee=Decimal("0.005"))
        self.assertEqual(expected_credit(Decimal("301.50"), "PC", half), Decimal("300.00"))

    def test_unknown_type_needs_the_higher_credit(self):
        self.assertFalse(credit_covers(Decimal("199.00"), "other", Decimal("193.03"), FEES))
        self.assertTrue(credit_covers(Decimal("199.00"), "other", Decimal("197.03"), FEES))

    @settings(max_examples=300, deadline=None)
    @given(st.integers(min_value=100, max_value=10_000_000), st.sampled_from(["card-incoming", "p2p-incoming"]))
    def test_price_paid_exactly_is_covered_and_a_kopeck_less_is_not(self, kopecks, kind):
        price = Decimal(kopecks) / 100
        credit = expected_credit(price, payment_type_of(kind), FEES)
        self.assertTrue(credit_covers(price, kind, credit, FEES))
        self.assertFalse(credit_covers(price, kind, credit - Decimal("0.01"), FEES))
        self.assertLessEqual(paid_equivalent(credit, kind, FEES), price)
