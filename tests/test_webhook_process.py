"""No webhook is lost when the billing process is killed mid-retry: ``twistd -n ymds --roles
billing`` as a real child process, kill -9 while the receiver fails, the delayed wake-up
gone from Redis too, restart with the receiver healthy: every event arrives exactly once,
in order (the sweep on the billing timers finds the pending deliveries)."""

from __future__ import annotations

import os
import tempfile
from decimal import Decimal

from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.support.processes import TWISTD, Child, test_env
from tests.support.redis_server import RedisServer
from tests.test_billing_tasks import note
from ymds.billing.open import open_ledger
from ymds.client import verify_webhook
from ymds.config import load_config
from ymds.queue.client import RedisJobQueue

SECRET = "whsec_process-test"


class Receiver(Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.healthy = False
        self.attempts: list[tuple[str, int]] = []  # (event id, status answered)
        self.delivered: list[dict] = []

    def render_POST(self, request):
        body = request.content.read()
        event = verify_webhook(SECRET, request.getHeader(b"ymds-signature"), body, tolerance=3600)
        status = 200 if self.healthy else 500
        self.attempts.append((event["id"], status))
        if status == 200:
            self.delivered.append(event)
        request.setResponseCode(status)
        return b""


async def until(predicate, timeout=60.0, what="condition"):
    for _ in range(int(timeout / 0.1)):
        if await predicate():
            return
        await task.deferLater(reactor, 0.1)
    raise AssertionError(f"timed out waiting for {what}")


class KilledMidRetry(unittest.TestCase):
    timeout = 180

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ymds-webhook-process-")
        self.redis = RedisServer(appendonly=False).start()
        self.addCleanup(self.redis.cleanup)
        self.receiver = Receiver()
        self.port = reactor.listenTCP(0, Site(self.receiver), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.prefix = "wh" + os.urandom(3).hex()
        self.ledger_path = os.path.join(self.dir, "ledger.sqlite3")
        self.config_path = os.path.join(self.dir, "ymds.toml")
        with open(self.config_path, "w") as f:
            f.write(f"""
[server]
public_url = "https://pay.example.org"
[yoomoney]
wallet = "4100111122223333"
notification_secret = "s3cret"
[links]
secret = "link-secret-0123456789abcdef"
[redis]
url = "{self.redis.url}"
prefix = "{self.prefix}"
[queue]
visibility_timeout = 5
[ledger]
url = "sqlite:///{self.ledger_path}"
[[plans]]
id = "month"
title = "1 month"
price = "199.00"
days = 30
""")
        self.config = load_config(path=self.config_path, env={})
        self.queue = RedisJobQueue(reactor, self.config.redis)
        self.queue.startService()
        self.addCleanup(self.queue.stopService)
        self.ledger = open_ledger("sqlite:///" + self.ledger_path, reactor)
        self.addCleanup(self.ledger.close)
        self.child = Child(TWISTD + ["-n", "ymds", "--config", self.config_path, "--roles", "billing"],
                           env=test_env(), cwd=self.dir, name="webhook-billing")
        self.addCleanup(self.child.close)
        return self.ledger.migrate()

    def start_billing(self):
        self.child.start()
        return defer.Deferred.fromCoroutine(self._wait_ready())

    async def _wait_ready(self, offset=0):
        await until(self._ready, what="billing worker start")

    async def _ready(self):
        return self.child.output().count("worker billing started") >= self.starts

    async def attempts(self):
        return await self.ledger.webhooks.webhook_attempts()

    async def test_kill_mid_retry_then_restart_delivers_everything_once_in_order(self):
        url = f"http://127.0.0.1:{self.port.getHost().port}/hook"
        await self.ledger.webhooks.webhook_endpoint_add("we_1", url, ["invoice.paid"], SECRET, reactor.seconds())
        labels = []
        for chat in (1, 2, 3):
            invoice = await self.ledger.invoices.create_invoice("subscription", Decimal("199.00"), reactor.seconds(), 86400,
                                                       plan="month", days=30, chat_id=chat)
            labels.append(invoice.label)
        self.starts = 1
        await self.start_billing()
        for n, label in enumerate(labels):
            await self.queue.enqueue("billing", "apply_payment", {"fields": note(f"op-{n}", label),
                                                                  "source": "notification"}, key=f"op:op-{n}")

        async def first_failed_and_released():
            rows = await self.ledger.db.run(lambda txn: txn.execute(
                "SELECT (SELECT COUNT(*) FROM webhook_attempts), lease_token FROM webhook_endpoints").fetchone(),
                write=False)
            return rows[0] >= 1 and rows[1] is None and len(await self.ledger.webhooks.webhook_deliveries()) == 3
        await until(first_failed_and_released, what="a failed first attempt")
        self.assertEqual([status for _, status in self.receiver.attempts], [500])
        first = self.receiver.attempts[0][0]
        self.child.kill()  # kill -9 while the endpoint waits for its retry
        # the wake-up scheduled in Redis is lost too: only the ledger knows
        await self.queue.pool.execute("DEL", f"{self.prefix}:q:billing:delayed")
        [pending] = [d for d in await self.ledger.webhooks.webhook_deliveries(status="pending") if d.attempts]
        while reactor.seconds() < pending.next_attempt_at:  # let the retry fall due while nothing runs
            await task.deferLater(reactor, 0.2)
        self.receiver.healthy = True
        self.starts = 2
        before = len(self.child.output())
        await self.start_billing()
        await until(lambda: defer.succeed(len(self.receiver.delivered) >= 3), timeout=90, what="all deliveries")
        await task.deferLater(reactor, 1.0)  # anything extra would arrive now
        order = [d.event_id for d in await self.ledger.webhooks.webhook_deliveries(endpoint_id="we_1")]
        self.assertEqual([e["id"] for e in self.receiver.delivered], order)  # in order, each once
        self.assertEqual(order[0], first)
        self.assertEqual([e["data"]["payment"]["operation_id"] for e in self.receiver.delivered], ["op-0", "op-1", "op-2"])
        self.assertEqual(await self.ledger.webhooks.webhook_deliveries(status="pending"), [])
        self.assertIn("'webhooks_woken': 1", self.child.output()[before:])  # the sweep found it
        log = await self.ledger.webhooks.webhook_attempts(endpoint_id="we_1")
        self.assertEqual([(a.event_id, a.outcome) for a in log],
                         [(first, "retry")] + [(event_id, "delivered") for event_id in order])
