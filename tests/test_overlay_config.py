"""The creators' configuration (issue 17): [donations] presets/goal/... and [overlay];
every bad value is a ConfigError naming the key."""

from __future__ import annotations

import os
from decimal import Decimal

from twisted.trial import unittest

from ymds.config import ConfigError, build_config


class CreatorConfigTests(unittest.TestCase):
    def test_defaults(self):
        c = build_config({})
        self.assertEqual((c.donations.presets, c.donations.goal, c.donations.show_supporters), ((), None, False))
        self.assertEqual((c.overlay.alert_seconds, c.overlay.min_alert_amount, c.overlay.sound_file),
                         (8.0, Decimal("0.00"), ""))

    def test_values(self):
        c = build_config({"donations": {"presets": ["100", "300.5", "100"], "goal": "10000", "goal_title": "Mic",
                                        "goal_until": "2026-12-31", "goal_since": "2026-11-01",
                                        "show_supporters": True},
                          "overlay": {"alert_seconds": 5, "min_alert_amount": "50", "language": "en",
                                      "max_connections_per_token": 3, "max_connections": 50}})
        self.assertEqual(c.donations.presets, (Decimal("100.00"), Decimal("300.50")))
        self.assertEqual((c.donations.goal, c.donations.goal_until, c.donations.goal_since),
                         (Decimal("10000.00"), "2026-12-31", "2026-11-01"))
        self.assertEqual((c.overlay.alert_seconds, c.overlay.min_alert_amount, c.overlay.language,
                          c.overlay.max_connections_per_token, c.overlay.max_connections),
                         (5.0, Decimal("50.00"), "en", 3, 50))

    def test_files_are_read_at_load_time(self):
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        with open(os.path.join(base, "ding.ogg"), "wb") as f:
            f.write(b"OggS" + b"\0" * 100)
        with open(os.path.join(base, "words.txt"), "w", encoding="utf-8") as f:
            f.write("# blocked\nплохое слово\n")
        c = build_config({"overlay": {"sound_file": "ding.ogg", "blocked_words_file": "words.txt"}}, base)
        self.assertEqual(c.overlay.sound_file, os.path.join(base, "ding.ogg"))
        self.assertEqual(c.overlay.blocked_words_file, os.path.join(base, "words.txt"))

    def test_refusals_name_the_key(self):
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        with open(os.path.join(base, "notes.txt"), "w") as f:
            f.write("x")
        with open(os.path.join(base, "latin1.txt"), "wb") as f:
            f.write(b"\xff\xfe bad")
        cases = [
            ({"donations": {"presets": ["5"]}}, "donations.presets"),  # below min
            ({"donations": {"presets": [1.5]}}, "donations.presets[0]"),
            ({"donations": {"presets": [str(i * 10 + 10) for i in range(9)]}}, "donations.presets"),
            ({"donations": {"goal": "-1"}}, "donations.goal"),
            ({"donations": {"goal_title": "x"}}, "donations.goal"),
            ({"donations": {"goal": "100", "goal_until": "31.12.2026"}}, "donations.goal_until"),
            ({"donations": {"goal": "100", "goal_since": "2027-01-01", "goal_until": "2026-12-31"}}, "donations.goal_since"),
            ({"donations": {"show_supporters": "maybe"}}, "donations.show_supporters"),
            ({"overlay": {"alert_seconds": 0}}, "overlay.alert_seconds"),
            ({"overlay": {"alert_seconds": 500}}, "overlay.alert_seconds"),
            ({"overlay": {"sound_file": "missing.mp3"}}, "overlay.sound_file"),
            ({"overlay": {"sound_file": "notes.txt"}}, "overlay.sound_file"),
            ({"overlay": {"blocked_words_file": "missing.txt"}}, "overlay.blocked_words_file"),
            ({"overlay": {"blocked_words_file": "latin1.txt"}}, "overlay.blocked_words_file"),
            ({"overlay": {"min_alert_amount": "abc"}}, "overlay.min_alert_amount"),
            ({"overlay": {"language": "de"}}, "overlay.language"),
            ({"overlay": {"max_connections": 0}}, "overlay.max_connections"),
            ({"overlay": {"colour": "red"}}, "overlay.colour"),
        ]
        for doc, key in cases:
            with self.assertRaises(ConfigError, msg=key) as caught:
                build_config(doc, base)
            self.assertEqual(caught.exception.key, key, doc)
