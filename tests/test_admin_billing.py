"""The dashboard backed by billing: BillingDashboardData -> AdminClient -> the wire -> AdminTasks
-> a real SQLite ledger (and a real redis-server for the dead letters).

The numbers the overview shows match the ledger in the owner's days (Europe/Moscow); every
action is applied once per idempotency key and audited with the admin's id.
"""
from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from twisted.internet import reactor, task
from twisted.trial import unittest

from tests.support.queues import RecordingQueue, registry_of
from tests.support.redis_server import RedisServer
from tests.test_billing_tasks import make_config, note
from ymds.admin.billing_data import BillingDashboardData
from ymds.admin.data import ActionResult, AdminAction, PaymentFilter
from ymds.billing.admin import AdminTasks, RedisDeadLetters, ledger_reverify
from ymds.billing.admin_jobs import AdminClient
from ymds.billing.open import open_ledger
from ymds.billing.tasks import BillingTasks
from ymds.queue import codec
from ymds.queue.keys import QueueKeys
from ymds.yoomoney.signature import sha1_hash, sign_hmac

MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 5, 28, 1, 30, tzinfo=MSK)  # 22:30 UTC the day before: local and UTC days differ
DAY = 86400.0


class AdminBillingTests(unittest.TestCase):
    def setUp(self) -> Any:
        self.redis = RedisServer(appendonly=False).start()
        self.addCleanup(self.redis.cleanup)
        directory = tempfile.mkdtemp(prefix="ymds-admin-")
        self.ledger = open_ledger("sqlite:///" + os.path.join(directory, "ledger.sqlite3"), reactor)
        self.addCleanup(self.ledger.close)
        self.clock = task.Clock()
        self.clock.advance(NOW.timestamp())
        self.config = make_config(redis={"url": self.redis.url, "prefix": "t16"})
        self.bot_queue = RecordingQueue()
        billing = BillingTasks(self.config, self.ledger, self.bot_queue, self.clock)
        self.admin_tasks = AdminTasks(self.config, self.ledger, self.bot_queue, self.clock,
                                      RedisDeadLetters(reactor, self.config.redis),
                                      ledger_reverify(self.config, self.ledger, self.clock, billing))
        registry = registry_of(self.admin_tasks)

        def over_the_wire(name: str) -> Any:
            async def call(args: Any) -> Any:  # through the codec both ways, like Redis
                handler = registry.lookup(name)
                return codec.loads(codec.dumps(await handler(codec.loads(codec.dumps(args)))))
            return call
        self.queue = RecordingQueue({name: over_the_wire(name) for name in self.admin_tasks.handlers()})
        self.data = BillingDashboardData(AdminClient(self.queue), MSK)
        self.billing = billing
        return self.ledger.migrate()

    async def pay(self, op: str, amount: str, at: datetime, chat: int | None = None) -> None:
        if chat is None:
            label = (await self.ledger.invoices.create_invoice("donation", Decimal(amount), at.timestamp(), DAY)).label
        else:
            label = (await self.ledger.invoices.create_invoice("subscription", Decimal(amount), at.timestamp(), DAY,
                                                               plan="month", days=30, chat_id=chat)).label
        await self.ledger.payments.apply_payment(note(op, label, amount), "notification", at.timestamp())

    async def test_overview_matches_the_ledger_in_local_days(self) -> None:
        midnight = NOW.replace(hour=0, minute=0)
        await self.pay("a", "199.00", midnight + timedelta(minutes=5), chat=1)  # today (21:05 UTC yesterday)
        await self.pay("b", "50.00", midnight - timedelta(minutes=5))  # yesterday, local
        await self.pay("c", "199.00", midnight - timedelta(days=6) + timedelta(hours=1), chat=2)  # 7 days
        await self.pay("d", "1000.00", midnight - timedelta(days=20))  # 30 days
        await self.pay("e", "7.00", midnight - timedelta(days=40))  # older
        o = await self.data.overview(NOW)
        self.assertEqual(o.money["today"], {"subscription": Decimal("199.00"), "donation": Decimal("0.00")})
        self.assertEqual(o.money["7d"], {"subscription": Decimal("398.00"), "donation": Decimal("50.00")})
        self.assertEqual(o.money["30d"], {"subscription": Decimal("398.00"), "donation": Decimal("1050.00")})
        self.assertEqual((o.active_subscribers, o.new_subscribers, o.lapsed_subscribers), (2, 2, 0))
        self.assertEqual([p.id for p in o.last_payments][:2], ["5", "4"])
        series = await self.data.revenue_series(NOW, 30, "day")
        self.assertEqual(len(series), 30)
        self.assertEqual(series[-1].start, NOW.date())
        self.assertEqual(sum((p.money["donation"] for p in series), Decimal(0)), Decimal("1050.00"))
        weeks = await self.data.revenue_series(NOW, 90, "week")
        self.assertEqual(sum((p.money["subscription"] for p in weeks), Decimal(0)), Decimal("398.00"))
        self.assertEqual(weeks[0].start.weekday(), 0)
        counts = await self.data.subscriber_series(NOW, 30)
        self.assertEqual(counts[-1].count, 2)

    async def test_payments_filter_and_cursor(self) -> None:
        for n in reversed(range(5)):  # in the order they arrive
            await self.pay(f"p{n}", "10.00", NOW - timedelta(hours=n))
        page = await self.data.payments(PaymentFilter(), None, 2)
        self.assertEqual([p.operation_id for p in page.rows], ["p0", "p1"])
        rest = await self.data.payments(PaymentFilter(), page.next_cursor, 10)
        self.assertEqual([p.operation_id for p in rest.rows], ["p2", "p3", "p4"])
        self.assertIsNone(rest.next_cursor)
        since = await self.data.payments(PaymentFilter(since=NOW - timedelta(hours=1, minutes=30)), None, 10)
        self.assertEqual(len(since.rows), 2)
        self.assertEqual((await self.data.payments(PaymentFilter(status="late"), None, 10)).rows, ())

    async def test_extend_and_revoke_once_per_key_with_audit(self) -> None:
        await self.pay("s", "199.00", NOW - timedelta(days=40), chat=77)  # lapsed 10 days ago
        await self.ledger.subscriptions.mark_expired([(77, (NOW - timedelta(days=10)).timestamp())])
        found = await self.data.subscribers("77", 10)
        self.assertEqual([(s.chat_id, s.status) for s in found], [("77", "lapsed")])
        action = AdminAction("tg:1", "k-extend-1")
        first = await self.data.extend_subscriber(action, "77", 30)
        again = await self.data.extend_subscriber(action, "77", 30)
        self.assertEqual((first.applied, again.applied), (True, False))
        sub = await self.ledger.subscriptions.subscription(77)
        self.assertAlmostEqual(sub.ends_at, NOW.timestamp() + 30 * DAY)
        self.assertFalse(sub.expired)
        grants = self.bot_queue.take("grant_access")
        self.assertEqual(len(grants), 1)  # a new invite, once
        events = [e for e in await self.ledger.audit.events(chat_id=77) if e.kind.startswith("admin_")]
        self.assertEqual([(e.kind, e.data["admin"]) for e in events], [("admin_extend", "tg:1")])
        revoked = await self.data.revoke_subscriber(AdminAction("tg:1", "k-revoke-1"), "77")
        self.assertEqual((revoked.applied, revoked.count), (True, 1))
        self.assertLessEqual((await self.ledger.subscriptions.subscription(77)).ends_at, NOW.timestamp())
        missing = await self.data.extend_subscriber(AdminAction("tg:1", "k-extend-2"), "999", 5)
        self.assertEqual((missing.applied, missing.count), (True, 0))

    async def test_reverify_one_quarantined_notification(self) -> None:
        label = (await self.ledger.invoices.create_invoice("donation", Decimal("25.00"), NOW.timestamp(), DAY)).label
        fields = note("q-op", label, "25.00")
        fields["sha1_hash"] = sha1_hash(fields, "s3cret")
        fields["sign"] = sign_hmac(fields, "s3cret")
        other = dict(note("q-other", "", "9.00"), sha1_hash="0" * 40)
        for f in (fields, other):
            await self.ledger.quarantine.quarantine_add(urlencode(f), "bad signature", "test", NOW.timestamp())
        items = await self.data.quarantine()
        self.assertEqual([(i.operation_id, i.amount) for i in items],
                         [("q-op", Decimal("25.00")), ("q-other", Decimal("9.00"))])
        action = AdminAction("tg:1", "k-reverify-1")
        done = await self.data.reverify(action, items[0].id)
        self.assertEqual((done.applied, done.count), (True, 1))
        self.assertEqual((await self.data.reverify(action, items[0].id)).applied, False)
        self.assertIsNotNone(await self.ledger.payments.get_payment("q-op"))
        self.assertEqual([i.operation_id for i in await self.data.quarantine()], ["q-other"])
        self.assertEqual((await self.data.overview(NOW)).money["today"]["donation"], Decimal("25.00"))

    async def test_dead_letters_listed_and_replayed_once(self) -> None:
        keys = QueueKeys("t16", "bot")
        job = codec.dumps({"t": "notify", "i": "job-1", "a": {"chat_id": 1, "text": "hi"}})
        entry = self.redis.command("XADD", keys.dead, "*", "j", job, "task", "notify", "error", "Telegram 403",
                                   "n", "5", "failed_at", "1780000000000")
        letters = await self.data.dead_letters()
        self.assertEqual([(d.queue, d.id, d.job, d.attempts) for d in letters], [("bot", entry, "notify", 5)])
        self.assertEqual((await self.data.overview(NOW)).dead_letters, 1)
        action = AdminAction("tg:1", "k-replay-1")
        self.assertEqual((await self.data.replay_dead_letter(action, "bot", entry)).count, 1)
        self.assertFalse((await self.data.replay_dead_letter(action, "bot", entry)).applied)
        self.assertEqual(await self.data.dead_letters(), [])
        self.assertEqual(int(self.redis.command("XLEN", keys.stream)), 1)

    async def test_codes_listed_and_a_promo_code_disabled_once(self) -> None:
        now = NOW.timestamp()
        await self.ledger.promo.add("spring", now, percent=20, uses=100)
        await self.ledger.promo.add("fifty", now, off=Decimal("50.00"))
        made = await self.ledger.codes.add(now, 30, plan="month", count=1, uses=5)
        codes = await self.data.codes()
        self.assertEqual([(p.code, p.percent, p.off, p.uses, p.active) for p in codes.promo],
                         [("FIFTY", None, Decimal("50.00"), None, True), ("SPRING", 20, None, 100, True)])
        self.assertEqual([(c.code, c.plan, c.days, c.uses, c.gift) for c in codes.access],
                         [(made[0].code, "month", 30, 5, False)])
        action = AdminAction("tg:1", "k-disable-1")
        self.assertEqual(await self.data.disable_promo(action, "SPRING"), ActionResult(True, 1))
        self.assertEqual((await self.data.disable_promo(action, "SPRING")).applied, False)
        self.assertEqual([p.active for p in (await self.data.codes()).promo], [True, False])
        rows = await self.ledger.db.pool.runInteraction(
            lambda txn: txn.execute("SELECT kind, data FROM events WHERE kind = 'admin_disable_promo'").fetchall())
        self.assertEqual(len(rows), 1)
        self.assertIn('"admin":"tg:1"', rows[0][1])

    async def test_failed_webhook_redelivered_once(self) -> None:
        now = NOW.timestamp()
        hooks = self.ledger.webhooks
        await hooks.webhook_endpoint_add("we_1", "https://shop.example.org/hook", ["invoice.paid"], "s" * 32, now)
        await hooks.webhook_emit([("invoice.paid", "invoice.paid:op-1", {"label": "x"})], now)
        pending = await hooks.webhook_deliveries(status="pending")
        await hooks.webhook_record_attempt("we_1", pending[0].event_seq, now, 500, "server error", 0.1, "failed")
        [failed] = await self.data.webhook_deliveries()
        self.assertEqual((failed.url, failed.event, failed.status, failed.attempts),
                         ("https://shop.example.org/hook", "invoice.paid", "failed", 1))
        action = AdminAction("tg:1", "k-redeliver-1")
        self.assertEqual(await self.data.redeliver_webhook(action, failed.id), ActionResult(True, 1))
        self.assertFalse((await self.data.redeliver_webhook(action, failed.id)).applied)
        self.assertEqual([d.status for d in await hooks.webhook_deliveries()], ["pending"])
        self.assertEqual(len(self.bot_queue.take("webhook_deliver")), 1)  # the deliverer is woken once

    async def test_report_folder_folds_old_half_hours_on_its_clock(self) -> None:
        from ymds.billing.admin import ReportFolder
        for n in range(12):
            await self.pay(f"r{n}", "10.00", NOW - timedelta(hours=3, minutes=n))
        before = await self.ledger.reports.money(NOW.timestamp() - DAY, NOW.timestamp())

        def slotted(txn: Any) -> int:
            txn.execute("SELECT COUNT(*) FROM report_money WHERE slot > 0")
            return int(txn.fetchone()[0])
        self.assertGreater(await self.ledger.db.pool.runInteraction(slotted), 0)
        folder = ReportFolder(self.ledger, self.clock, interval=600)
        await folder.fold()  # what each tick runs
        self.assertEqual(await self.ledger.db.pool.runInteraction(slotted), 0)
        self.assertIs(folder.clock, self.clock)  # its LoopingCall runs on the injected clock
        self.assertEqual(await self.ledger.reports.money(NOW.timestamp() - DAY, NOW.timestamp()), before)
