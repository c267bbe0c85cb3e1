"""Issue 19 on the pay page: a promo-discounted invoice shows the plan's price struck
through, and the quickpay form's ``sum`` is the discounted amount."""
from __future__ import annotations

from decimal import Decimal

from twisted.trial import unittest

from tests.test_web_support import make_config
from ymds.billing.invoices import invoice_view
from ymds.billing.ledger import Invoice
from ymds.web import render
from ymds.web.pages import _quickpay_fields


def discounted_invoice(**changes) -> Invoice:
    values = dict(label="LabelLabel1234", kind="subscription", plan="month", days=30, chat_id=5, user_id=5,
                  amount=Decimal("99.50"), description="1 month",
                  metadata={"promo": "SALE", "full_price": "199.00"}, status="open", created_at=0.0,
                  expires_at=1_900_000_000.0)
    values.update(changes)
    return Invoice(**values)


class PayPagePromoTests(unittest.TestCase):
    def render(self, invoice: Invoice, lang: str = "ru") -> str:
        from dataclasses import asdict
        config = make_config(8443)
        view = invoice_view(invoice)
        forms = [("AC", "https://yoomoney.ru/quickpay/confirm",
                  _quickpay_fields(config.yoomoney.wallet, "AC", view.amount, view.label, "https://x/thanks"))]
        return render.pay_page(lang, config, asdict(view), "https://x/pay/t", "/pay/t", forms).decode()

    def test_old_price_struck_through_and_the_discounted_sum(self):
        view = invoice_view(discounted_invoice())
        self.assertEqual((view.full_price, view.promo), (Decimal("199.00"), "SALE"))
        for lang, shown in (("ru", '<s class="old-price">199,00 ₽</s> 99,50 ₽'),
                            ("en", '<s class="old-price">199.00 ₽</s> 99.50 ₽')):
            page = self.render(discounted_invoice(), lang)
            self.assertIn(shown, page)
            self.assertIn('name="sum" value="99.50"', page)

    def test_a_regular_invoice_has_no_old_price(self):
        page = self.render(discounted_invoice(amount=Decimal("199.00"), metadata={}))
        self.assertNotIn("old-price", page)
        self.assertIn('name="sum" value="199.00"', page)
