"""The shared job-argument helpers in ymds.jobwire that the jobs modules build on."""

from __future__ import annotations

from twisted.trial import unittest

from ymds.billing.access_jobs import MemberSeen
from ymds.bot.access.jobs import RemoveMember
from ymds.jobwire import InvalidTaskArgs, wire_choice, wire_key, with_key


class WireHelpersTests(unittest.TestCase):
    def test_choice_is_one_of_the_known_values(self):
        self.assertEqual(wire_choice({"reason": "audit"}, "reason", ("expired", "audit"), "removal reason"), "audit")
        for bad in ({}, {"reason": None}, {"reason": ["audit"]}, {"reason": "x" * 500}):
            with self.assertRaises(InvalidTaskArgs) as caught:
                wire_choice(bad, "reason", ("expired", "audit"), "removal reason")
            self.assertTrue(str(caught.exception).startswith("unknown removal reason"))
            self.assertLess(len(str(caught.exception)), 70)  # hostile input is not echoed whole

    def test_key_travels_only_when_there_is_one(self):
        self.assertIsNone(wire_key({}))
        self.assertIsNone(wire_key({"key": ""}))
        self.assertEqual(wire_key({"key": "grant:op1"}), "grant:op1")
        self.assertEqual(with_key({"chat_id": 1}, None), {"chat_id": 1})
        self.assertEqual(with_key({"chat_id": 1}, "k"), {"chat_id": 1, "key": "k"})

    def test_access_jobs_use_them(self):
        job = RemoveMember(-100, 7, "expired", "removal:7")
        self.assertEqual(job.to_wire(), {"chat_id": -100, "user_id": 7, "reason": "expired", "key": "removal:7"})
        self.assertEqual(RemoveMember.from_wire(job.to_wire()), job)
        self.assertNotIn("key", RemoveMember(-100, 7, "audit").to_wire())
        with self.assertRaises(InvalidTaskArgs):
            RemoveMember.from_wire({"chat_id": -100, "user_id": 7, "reason": "spite"})
        seen = MemberSeen(-100, 7, "left", 1_780_000_000)
        self.assertEqual(MemberSeen.from_wire(seen.to_wire()), seen)
        with self.assertRaises(InvalidTaskArgs):
            MemberSeen.from_wire({**seen.to_wire(), "status": "ghost"})
