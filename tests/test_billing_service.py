"""The billing role end to end through the real Redis job queue: RPC to the billing worker,
apply_payment jobs, and the bot jobs they cause arriving on the bot queue."""

from __future__ import annotations

import atexit
import os
from decimal import Decimal

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from tests.support.ledgers import sqlite_url
from tests.support.redis_server import RedisServer
from tests.test_billing_tasks import note
from ymds.billing.open import open_ledger
from ymds.billing.service import make_billing_service
from ymds.config import load_config
from ymds.queue.client import RedisJobQueue
from ymds.queue.registry import TaskRegistry
from ymds.queue.worker import Worker

T0 = 1_780_000_000.0
_server: RedisServer | None = None


def redis_server() -> RedisServer:
    global _server
    if _server is None:
        _server = RedisServer().start()
        atexit.register(_server.cleanup)
    return _server


class BotRecorder:
    """The bot queue's consumer in this test: records jobs and lets the test wait for them."""

    def __init__(self):
        self.jobs = []
        self._waiters = []

    def handler(self, name):
        async def handle(args):
            self.jobs.append((name, args))
            for count, d in list(self._waiters):
                if len(self.jobs) >= count:
                    self._waiters.remove((count, d))
                    d.callback(None)
        return handle

    def wait_for(self, count, timeout=15.0):
        if len(self.jobs) >= count:
            return defer.succeed(None)
        d = defer.Deferred()
        self._waiters.append((count, d))
        return d.addTimeout(timeout, reactor)


class BillingStackCase(unittest.TestCase):
    """The billing service (its worker on a real Redis, a SQLite ledger) on one Clock, with
    the bot queue's ``bot_tasks`` answered by a BotRecorder (``self.bot``)."""

    bot_tasks = ("notify", "notify_admins", "grant_access", "revoke_access")
    config_sections: dict = {}

    def setUp(self):
        server = redis_server()
        prefix = "billing" + os.urandom(4).hex()
        self.config = load_config(raw={
            "server": {"public_url": "https://pay.example.org"},
            "links": {"secret": "link-secret-0123456789abcdef"},
            "yoomoney": {"wallet": "4100111122223333", "notification_secret": "s3cret"},
            "redis": {"url": server.url, "prefix": prefix},
            "queue": {"visibility_timeout": 30},
            "telegram": {"channel_id": -100123, "admins": [1]},
            "plans": [{"id": "month", "title": "1 month", "price": "199.00", "days": 30}],
            **self.config_sections,
        }, env={})
        self.clock = task.Clock()
        self.clock.advance(T0)
        self.queue = RedisJobQueue(reactor, self.config.redis, clock=self.clock)
        self.queue.startService()
        self.addCleanup(self.queue.stopService)
        self.ledger = open_ledger(sqlite_url(self), reactor)
        self.bot = BotRecorder()
        registry = TaskRegistry({name: self.bot.handler(name) for name in self.bot_tasks})
        bot_worker = Worker(reactor, self.config.redis, self.config.queue, "bot", registry, clock=self.clock, block=0.2)
        bot_worker.startService()
        self.addCleanup(bot_worker.stopService)
        return self.ledger.migrate().addCallback(lambda _: self.start_billing())

    def start_billing(self):
        self.service = make_billing_service(reactor, self.config, self.queue, self.ledger, clock=self.clock,
                                            worker_options={"block": 0.2})
        self.service.startService()
        self.addCleanup(self.service.stopService)


class BillingServiceTests(BillingStackCase):
    async def test_payment_through_the_queue(self):
        created = await self.queue.call("billing", "create_invoices", {"chat_id": 42, "user_id": 42})
        [invoice] = created["invoices"]
        self.assertEqual(invoice["amount"], Decimal("199.00"))
        job = await self.queue.enqueue("billing", "apply_payment",
                                       {"fields": note("op-1", invoice["label"]), "source": "notification"},
                                       key="notify:op-1")
        self.assertIsNotNone(job)
        await self.bot.wait_for(2)
        names = sorted(name for name, _ in self.bot.jobs)
        self.assertEqual(names, ["grant_access", "notify"])
        notify = [args for name, args in self.bot.jobs if name == "notify"][0]
        self.assertEqual((notify["chat_id"], notify["message"]), (42, "payment_confirmed"))
        self.assertEqual(notify["params"]["amount"], Decimal("199.00"))
        status = await self.queue.call("billing", "subscription_status", {"chat_id": 42})
        self.assertEqual(status["ends_at"], "2026-06-27T20:26:40+00:00")
        # a redelivered notification: duplicate, and no second message
        again = await self.queue.call("billing", "apply_payment", {"fields": note("op-1", invoice["label"]),
                                                                   "source": "notification"})
        self.assertEqual(again["outcome"], "duplicate")
        self.assertEqual(await self.queue.depth("bot"), 0)
        self.assertEqual(len(self.bot.jobs), 2)
        stats = await self.queue.call("billing", "stats", {})
        self.assertEqual((stats["payments_today"], stats["sum_today"]), (1, Decimal("199.00")))

    async def test_bad_arguments_come_back_as_an_error(self):
        from ymds.queue.errors import RemoteJobError
        with self.assertRaises(RemoteJobError) as caught:
            await self.queue.call("billing", "create_donation", {"amount": "lots"})
        self.assertIn("InvalidTaskArgs", str(caught.exception))
