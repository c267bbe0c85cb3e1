"""The web role on the real chain: sandbox -> notify -> RedisJobQueue -> billing -> SQLite ledger.

A private redis-server per test; killing it makes the notification endpoint answer 503
(so YooMoney retries) and a restart brings 200 back.
"""
from __future__ import annotations

import json
import os
import tempfile
from urllib.parse import urlsplit

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.trial import unittest

from tests.support.redis_server import RedisServer, free_port
from tests.test_web_support import SECRET, WALLET, LINK_SECRET, Client
from ymds.config import load_config
from ymds.metrics import Registry
from ymds.web.site import make_site
from ymds.yoomoney.notification import encode_form
from ymds.yoomoney.signature import add_signatures

FORM = {"content-type": "application/x-www-form-urlencoded"}


class Chain:
    """Everything of ``twistd ymds --demo`` but TLS, in this process, on loopback."""

    def __init__(self, testcase, enqueue_timeout: float = 30.0):
        self.testcase = testcase
        self.redis = RedisServer().start()
        testcase.addCleanup(self.redis.cleanup)
        self.dir = tempfile.mkdtemp(prefix="ymds-web-chain-")
        self.port = free_port()
        self.public_url = f"http://127.0.0.1:{self.port}"
        self.config = load_config(raw={
            "server": {"endpoint": f"tcp:{self.port}:interface=127.0.0.1", "public_url": self.public_url},
            "yoomoney": {"wallet": WALLET, "notification_secret": SECRET, "sandbox": True},
            "links": {"secret": LINK_SECRET},
            "redis": {"url": self.redis.url, "prefix": "webtest"},
            "ledger": {"url": "sqlite:///" + os.path.join(self.dir, "ledger.sqlite3")},
            "plans": [{"id": "month", "title": "1 month", "price": "199.00", "days": 30}],
            "telegram": {"language": "en"},
        }, env={})
        self.enqueue_timeout = enqueue_timeout

    async def start(self):
        from ymds.billing.open import open_ledger
        from ymds.billing.service import make_billing_service
        from ymds.queue.client import RedisJobQueue
        from ymds.sandbox.resource import SandboxResource

        self.queue = RedisJobQueue(reactor, self.config.redis, enqueue_timeout=self.enqueue_timeout,
                                   command_timeout=2.0)
        self.queue.startService()
        self.testcase.addCleanup(self.queue.stopService)
        self.ledger = open_ledger(self.config.ledger.url, reactor)
        await self.ledger.migrate()
        self.billing = make_billing_service(reactor, self.config, self.queue, self.ledger)
        self.billing.startService()
        self.testcase.addCleanup(self.billing.stopService)
        self.sandbox = SandboxResource(reactor, self.config)
        self.testcase.addCleanup(lambda: defer.Deferred.fromCoroutine(self.sandbox.stop()))
        self.metrics = Registry()
        self.site = make_site(reactor, self.config, self.queue, self.metrics, {}, sandbox=self.sandbox)
        self.listening = reactor.listenTCP(self.port, self.site, interface="127.0.0.1")
        self.testcase.addCleanup(self.listening.stopListening)
        self.client = Client(self.public_url)
        return self

    async def donation(self, amount="150.00") -> str:
        response, _ = await self.client.request("POST", "/donate", f"amount={amount}&lang=en".encode(), FORM)
        assert response.code == 303, response.code
        return response.headers.getRawHeaders(b"location")[0].decode()

    def count(self, result):
        return self.metrics.counter("ymds_web_notifications", "", ("result",)).value(result=result)


def signed(operation_id, label, amount="150.00"):
    fields = {"notification_type": "p2p-incoming", "operation_id": operation_id, "amount": amount,
              "withdraw_amount": amount, "currency": "643", "datetime": "2026-11-26T21:00:00.000+03:00",
              "sender": "410011111111111", "codepro": "false", "label": label}
    return encode_form(add_signatures(fields, SECRET, "both"))  # sha1 alone would be held (issue 14)


async def wait_for(predicate, timeout=10.0, step=0.05):
    waited = 0.0
    while waited < timeout:
        if await predicate():
            return True
        await deferLater(reactor, step, lambda: None)
        waited += step
    return False


class WebOnRealChain(unittest.TestCase):
    timeout = 60

    async def test_donation_notification_paid(self):
        chain = await Chain(self).start()
        location = await chain.donation("150.00")
        token = urlsplit(location).path.split("/")[-1]
        label = token.split(".")[0]
        response, body = await chain.client.request("GET", f"/pay/{token}/status")
        self.assertEqual(json.loads(body)["status"], "open")
        response, body = await chain.client.request("POST", "/yoomoney/notify", signed("op-chain-1", label), FORM)
        self.assertEqual((response.code, body), (200, b"OK\n"))
        # the same notification again (YooMoney's retry): 200, and no second job
        response, body = await chain.client.request("POST", "/yoomoney/notify", signed("op-chain-1", label), FORM)
        self.assertEqual((response.code, body), (200, b"OK\n"))
        self.assertEqual((chain.count("ok"), chain.count("duplicate")), (1, 1))

        async def paid():
            _, body = await chain.client.request("GET", f"/pay/{token}/status")
            return json.loads(body)["status"] == "paid"
        self.assertTrue(await wait_for(paid))

    async def test_forged_notification_reaches_quarantine(self):
        chain = await Chain(self).start()
        body = signed("op-forged", "LabelLabel1234").replace(b"label=LabelLabel1234", b"label=LabelLabel9999", 1)
        response, _ = await chain.client.request("POST", "/yoomoney/notify", body, FORM)
        self.assertEqual(response.code, 403)

        async def kept():
            stats = await chain.ledger.audit.stats(0.0) if hasattr(chain.ledger, "audit") else None
            return stats is not None and getattr(stats, "quarantined", 0) >= 1
        self.assertTrue(await wait_for(kept))

    async def test_redis_down_503_then_200(self):
        chain = await Chain(self, enqueue_timeout=1.0).start()
        chain.redis.kill()
        response, _ = await chain.client.request("POST", "/yoomoney/notify", signed("op-down", "LabelLabel1234"), FORM)
        self.assertEqual(response.code, 503)
        self.assertEqual(chain.count("unavailable"), 1)
        chain.redis.start()

        async def accepted():
            response, _ = await chain.client.request("POST", "/yoomoney/notify", signed("op-down", "LabelLabel1234"), FORM)
            return response.code == 200
        self.assertTrue(await wait_for(accepted, timeout=15, step=0.2))
        self.assertEqual(chain.count("ok"), 1)
        entries = chain.redis.command("XLEN", "webtest:q:billing")
        self.assertGreaterEqual(entries, 0)
