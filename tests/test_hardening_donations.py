"""Issue 14: donation invoices are limited per IPv6 /64 (not per address) and by an overall
cap on open donation invoices, enforced in the ledger transaction (both engines, concurrently)."""

from __future__ import annotations

from decimal import Decimal

from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.support.ledgers import PostgresLedgerMixin, SQLiteLedgerMixin
from tests.test_billing_tasks import TasksTestBase
from tests.test_web_support import LiveSite, make_config
from tests.support.redis_server import free_port
from ymds.billing.donation_cap import TooManyOpenDonations, create_capped_donation
from ymds.billing.open import open_ledger
from ymds.billing.jobs import CreateDonation
from ymds.web.donation_limits import donation_bucket

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
DAY = 86400.0


class BucketTests(unittest.TestCase):
    def test_ipv6_by_its_64(self):
        self.assertEqual(donation_bucket("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64")
        self.assertEqual(donation_bucket("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::/64")
        self.assertNotEqual(donation_bucket("2001:db8:1:3::1"), donation_bucket("2001:db8:1:2::1"))
        self.assertEqual(donation_bucket("203.0.113.7"), "203.0.113.7")
        self.assertEqual(donation_bucket("::ffff:203.0.113.7"), "203.0.113.7")
        self.assertEqual(donation_bucket("unix"), "unix")


class PerSlash64Tests(unittest.TestCase):
    async def test_one_64_shares_one_bucket(self):
        port = free_port()
        live = LiveSite(self, config=make_config(port, server={"trusted_proxies": ["127.0.0.1"]}))
        live.port = port
        codes = []
        for n in range(12):  # a new address of the same /64 for every form
            response, _ = await live.request("POST", "/donate", b"amount=100&lang=en",
                                             {**FORM, "X-Forwarded-For": f"2001:db8:77:1::{n + 1:x}"})
            codes.append(response.code)
        self.assertEqual(codes[:10], [303] * 10)
        self.assertEqual(codes[10:], [429, 429])
        response, _ = await live.request("POST", "/donate", b"amount=100&lang=en",
                                         {**FORM, "X-Forwarded-For": "2001:db8:77:2::1"})  # another /64
        self.assertEqual(response.code, 303)


class OpenDonationCapTests(TasksTestBase):
    config_sections = {"donations": {"max_open": 2}}

    async def test_cap_then_expiry_frees_room(self):
        job = CreateDonation(Decimal("100.00"), "", "")
        await self.tasks.invoices.create_donation(job)
        await self.tasks.invoices.create_donation(job)
        with self.assertRaises(TooManyOpenDonations):
            await self.tasks.invoices.create_donation(job)
        self.clock.advance(self.config.links.ttl + 1)  # they expired unpaid
        await self.tasks.invoices.create_donation(job)


class ConcurrentCapContract:
    """Run with an engine mixin (tests/support/ledgers.py) giving ``make_url``."""

    async def test_concurrent_forms_never_overshoot(self):
        ledger = open_ledger(self.make_url(), reactor)
        self.addCleanup(ledger.close)
        await ledger.migrate()
        now = 1_780_000_000.0
        attempts = [create_capped_donation(ledger, Decimal("50"), now, 3 * DAY, {}, 5) for _ in range(20)]
        results = await defer.DeferredList(attempts, consumeErrors=True)
        created = [r for ok, r in results if ok]
        refused = [r for ok, r in results if not ok]
        self.assertEqual(len(created), 5)
        self.assertTrue(all(f.check(TooManyOpenDonations) for f in refused))


class SQLiteCapTests(SQLiteLedgerMixin, ConcurrentCapContract, unittest.TestCase):
    pass


class PostgresCapTests(PostgresLedgerMixin, ConcurrentCapContract, unittest.TestCase):
    pass
