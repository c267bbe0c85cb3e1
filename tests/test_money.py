"""ymds.money: the one way an amount is written for people."""
from decimal import Decimal

from twisted.trial import unittest

from ymds.money import amount_text, rubles


class RublesTests(unittest.TestCase):
    def test_russian_groups_with_no_break_spaces_and_a_comma(self):
        self.assertEqual(rubles(Decimal("1990")), "1\u00a0990,00\u00a0₽")
        self.assertEqual(rubles("1234567.5", "ru"), "1\u00a0234\u00a0567,50\u00a0₽")

    def test_english_groups_with_commas_and_a_point(self):
        self.assertEqual(rubles(Decimal("1990"), "en"), "1,990.00\u00a0₽")
        self.assertEqual(amount_text(7, "en"), "7.00")

    def test_not_an_amount(self):
        for bad in ("abc", "NaN", "Infinity", ""):
            self.assertEqual(rubles(bad), "—")
            with self.assertRaises(ValueError):
                amount_text(bad)

    def test_every_surface_writes_it_the_same(self):
        from ymds.admin.texts import money as dashboard_money
        from ymds.bot.texts import money
        from ymds.overlay.events import rubles as overlay_rubles
        from ymds.web.render import display_money
        amount = Decimal("1990.5")
        self.assertEqual(money(amount, "ru"), rubles(amount, "ru"))
        self.assertEqual(overlay_rubles(amount), rubles(amount, "ru"))
        self.assertEqual(display_money(amount, "en") + "\u00a0₽", rubles(amount, "en"))
        for lang in ("ru", "en"):
            self.assertEqual(dashboard_money(amount, lang), rubles(amount, lang))
            self.assertEqual(dashboard_money("NaN", lang), "—")
