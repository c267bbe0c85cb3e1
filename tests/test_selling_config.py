"""[[plans]] trial_days / trial_price (issue 19)."""
from __future__ import annotations

from decimal import Decimal

from twisted.trial import unittest

from ymds.config import load_config
from ymds.config_values import ConfigError

BASE = {"server": {"public_url": "https://pay.example.org"}, "links": {"secret": "s" * 32},
        "yoomoney": {"wallet": "4100111122223333", "notification_secret": "x"}}


def plans(*tables):
    return load_config(raw={**BASE, "plans": list(tables)}, env={}).plans


class TrialConfigTests(unittest.TestCase):
    def test_free_and_paid_trials(self):
        free, paid, none = plans({"id": "a", "title": "A", "price": "199.00", "days": 30, "trial_days": 3},
                                 {"id": "b", "title": "B", "price": "199.00", "days": 30, "trial_days": 7,
                                  "trial_price": "10.00"},
                                 {"id": "c", "title": "C", "price": "199.00", "days": 30})
        self.assertEqual((free.trial_days, free.trial_price), (3, None))
        self.assertEqual((paid.trial_days, paid.trial_price), (7, Decimal("10.00")))
        self.assertEqual((none.trial_days, none.trial_price), (0, None))

    def test_refusals_name_the_key(self):
        for extra, key in (({"trial_price": "10.00"}, "plans[0].trial_price"),
                           ({"trial_days": -1}, "plans[0].trial_days"),
                           ({"trial_days": 3, "trial_price": 10.5}, "plans[0].trial_price"),
                           ({"trial": 3}, "plans[0].trial")):
            with self.assertRaises(ConfigError) as caught:
                plans({"id": "a", "title": "A", "price": "199.00", "days": 30, **extra})
            self.assertIn(key, str(caught.exception))
