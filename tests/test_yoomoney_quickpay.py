"""Quickpay form fields and the fee arithmetic."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from ymds.config import YooMoneyConfig
from ymds.yoomoney.quickpay import credited_amount, quickpay_fields, sum_for_credited

DEFAULT = YooMoneyConfig()


class QuickpayFieldsTests(unittest.TestCase):
    def test_fields(self):
        fields = quickpay_fields("4100123456789", "AC", Decimal("199"), "abcdefgh12", "https://pay.example.org/thanks?l=x")
        self.assertEqual(fields, [
            ("receiver", "4100123456789"),
            ("quickpay-form", "button"),
            ("paymentType", "AC"),
            ("sum", "199.00"),
            ("label", "abcdefgh12"),
            ("successURL", "https://pay.example.org/thanks?l=x"),
        ])

    def test_refusals(self):
        ok = ("4100123456789", "PC", Decimal("10.00"), "abcdefgh12", "https://x.example/")
        for index, bad in ((1, "MC"), (1, "ac"), (2, Decimal("0")), (2, Decimal("-1")), (2, Decimal("1.001")),
                           (2, Decimal("NaN")), (2, 10.0), (3, "x" * 65), (0, "")):
            args = list(ok)
            args[index] = bad
            self.assertRaises(ValueError, quickpay_fields, *args)

    def test_mc_message_says_why(self):
        with self.assertRaises(ValueError) as caught:
            quickpay_fields("4100123456789", "MC", Decimal("10"), "abcdefgh12", "https://x.example/")
        self.assertIn("no longer accepted", str(caught.exception))


class FeeTests(unittest.TestCase):
    def test_card(self):
        self.assertEqual(credited_amount(Decimal("100.00"), "AC", DEFAULT), Decimal("97.00"))
        self.assertEqual(credited_amount(Decimal("199.00"), "AC", DEFAULT), Decimal("193.03"))
        self.assertEqual(credited_amount(Decimal("0.50"), "AC", DEFAULT), Decimal("0.49"))  # 0.485 rounds half up

    def test_wallet(self):
        self.assertEqual(credited_amount(Decimal("101.00"), "PC", DEFAULT), Decimal("100.00"))
        self.assertEqual(credited_amount(Decimal("100.00"), "PC", DEFAULT), Decimal("99.01"))

    def test_known_example_at_half_percent(self):
        config = YooMoneyConfig(wallet_fee=Decimal("0.005"))
        self.assertEqual(credited_amount(Decimal("301.50"), "PC", config), Decimal("300.00"))

    def test_zero_fee(self):
        config = YooMoneyConfig(card_fee=Decimal("0"), wallet_fee=Decimal("0"))
        self.assertEqual(credited_amount(Decimal("12.34"), "AC", config), Decimal("12.34"))
        self.assertEqual(credited_amount(Decimal("12.34"), "PC", config), Decimal("12.34"))

    def test_sum_for_credited(self):
        self.assertEqual(sum_for_credited(Decimal("97.00"), "AC", DEFAULT), Decimal("100.00"))
        self.assertEqual(sum_for_credited(Decimal("100.00"), "PC", DEFAULT), Decimal("101.00"))

    @settings(max_examples=300, deadline=None)
    @given(st.integers(min_value=1, max_value=10**9), st.sampled_from(("AC", "PC")),
           st.sampled_from(("0", "0.01", "0.02", "0.03", "0.005", "0.2")))
    def test_sum_for_credited_is_minimal(self, kopecks, payment_type, rate):
        config = YooMoneyConfig(card_fee=Decimal(rate), wallet_fee=Decimal(rate))
        wanted = Decimal(kopecks).scaleb(-2)
        amount = sum_for_credited(wanted, payment_type, config)
        self.assertGreaterEqual(credited_amount(amount, payment_type, config), wanted)
        if amount > Decimal("0.01"):
            self.assertLess(credited_amount(amount - Decimal("0.01"), payment_type, config), wanted)
        self.assertLessEqual(credited_amount(amount, payment_type, config), amount)
