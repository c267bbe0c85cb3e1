"""Broadcasts and subscriber management from the ``ymds`` command, in process: a private
redis-server, the real bot worker and sender against the fake Bot API on loopback, and a
SQLite ledger the command opens (the real-process kill -9 test is tests/e2e/test_broadcast.py)."""

from __future__ import annotations

import io
import os

from twisted.internet import reactor
from twisted.trial import unittest

from tests.fakes.bot_harness import (
    CHANNEL, as_deferred, make_config, new_prefix, shared_redis, start_fake, start_queue,
)
from ymds.billing.broadcast import Broadcaster, broadcast_id, recipient_key, text_hash
from ymds.billing.open import open_ledger
from ymds.bot.jobs import BotClient, SendMessage
from ymds.bot.ratelimit import RateLimiter
from ymds.bot.service import make_bot_service

T_DAY = 86400
TEXT = "<b>Новости</b>: канал переезжает / the channel moves"


class BroadcastTestBase(unittest.TestCase):
    timeout = 60

    def setUp(self):
        self.redis_server = shared_redis()
        self.prefix = new_prefix()
        self.fake, self.url = start_fake(self, enforce_limits=False)
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.ledger_url = "sqlite:///" + os.path.join(self.dir, "ledger.sqlite3")
        self.config = make_config(self.url, self.redis_server.url, self.prefix)
        self.config_path = os.path.join(self.dir, "ymds.toml")
        with open(self.config_path, "w") as f:
            f.write(f"""[server]\npublic_url = "https://pay.example.org"\n[yoomoney]\nwallet = "4100111122223333"
notification_secret = "s3cret"\n[links]\nsecret = "bot-tests-link-secret-0123456789"
[redis]\nurl = "{self.redis_server.url}"\nprefix = "{self.prefix}"\n[ledger]\nurl = "{self.ledger_url}"
[telegram]\ntoken = "{self.config.telegram.token}"\napi_url = "{self.url}"\nchannel_id = -1001234567890
[[plans]]\nid = "month"\ntitle = "1 month"\nprice = "199.00"\ndays = 30
[[plans]]\nid = "year"\ntitle = "1 year"\nprice = "1990.00"\ndays = 365\n""")

    async def start(self):
        self.ledger = open_ledger(self.ledger_url, reactor)
        self.addCleanup(self.ledger.close)
        await self.ledger.migrate()
        self.queue = await start_queue(self, self.config)
        service = make_bot_service(reactor, self.config, self.queue, limiter=RateLimiter(reactor, chat_interval=0.0),
                                   poll=False, worker=True)
        service.startService()
        self.addCleanup(service.stopService)

    async def subscribe(self, chat_ids, days=30, plan="month"):
        now = reactor.seconds()
        for chat_id in chat_ids:
            await self.ledger.subscribers.grant(chat_id, days, now, plan=plan)

    async def ymds(self, *argv):
        from ymds.cli import run
        out, err = io.StringIO(), io.StringIO()
        status = await run(reactor, list(argv) + ["--config", self.config_path], env={}, out=out, err=err)
        return out.getvalue(), err.getvalue(), status

    def write_text(self, text=TEXT) -> str:
        path = os.path.join(self.dir, "message.html")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        return path


class BroadcastTests(BroadcastTestBase):
    @as_deferred
    async def test_every_recipient_once_blocked_ones_marked_and_a_second_run_sends_nothing(self):
        await self.start()
        users = list(range(1001, 1041))
        await self.subscribe(users)
        await self.subscribe([2001, 2002], plan="year")
        await self.ledger.subscribers.grant(3001, 1, reactor.seconds() - 5 * T_DAY)  # ended: not "active"
        self.fake.block_chat(1005)
        path = self.write_text()
        out, err, status = await self.ymds("broadcast", "--to", "active", "--plan", "month", "--text-file", path,
                                           "--dry-run")
        self.assertEqual(status, 0, err)
        bid = broadcast_id(TEXT, "active", "month")
        self.assertEqual(out.strip(), f"broadcast {bid}: would send to 40 chats (dry run: nothing sent)")
        self.assertEqual(self.fake.sent, [])
        out, err, status = await self.ymds("broadcast", "--to", "active", "--plan", "month", "--text-file", path)
        self.assertEqual(status, 0, err)
        self.assertEqual(out.strip(), f"broadcast {bid}: 39 sent, 1 blocked, 0 failed, 0 pending, of 40")
        sent_to = sorted(m["chat_id"] for m in self.fake.sent)
        self.assertEqual(sent_to, [u for u in users if u != 1005])
        self.assertTrue(all(TEXT in m["text"] or m["text"].startswith("Новости") for m in self.fake.sent))
        # the second run finds it finished: nobody gets it twice
        out, err, status = await self.ymds("broadcast", "--to", "active", "--plan", "month", "--text-file", path)
        self.assertEqual(status, 0, err)
        self.assertIn("39 sent, 1 blocked", out)
        self.assertEqual(len(self.fake.sent), 39)
        finished = await self.ledger.broadcasts.broadcast_get(bid)
        self.assertIsNotNone(finished.finished_at)

    @as_deferred
    async def test_a_run_that_died_after_sending_resumes_without_repeating(self):
        """The first run sent to 10 of 30 and died before writing their outcomes: the second
        run asks the bot for all 30; the 10 come back duplicate, each user gets one message."""
        await self.start()
        users = list(range(5001, 5031))
        await self.subscribe(users)
        bid = broadcast_id(TEXT, "all", None)
        await self.ledger.broadcasts.broadcast_start(bid, "all", None, text_hash(TEXT), users, reactor.seconds())
        bot = BotClient(self.queue)
        for chat_id in users[:10]:
            result = await bot.send_and_wait(SendMessage(chat_id, TEXT, key=recipient_key(bid, chat_id)))
            self.assertEqual(result.outcome, "sent")
        self.assertEqual(await self.ledger.broadcasts.broadcast_counts(bid),
                         {"pending": 30, "sent": 0, "blocked": 0, "failed": 0})
        reports = []
        progress = await Broadcaster(self.ledger, self.queue, reactor, window=4, report=reports.append,
                                     report_every=0).run(bid, TEXT)
        self.assertEqual(progress.counts, {"pending": 0, "sent": 30, "blocked": 0, "failed": 0})
        self.assertEqual(sorted(m["chat_id"] for m in self.fake.sent), users)
        self.assertTrue(reports)
        self.assertIsNotNone(reports[-1].seconds_left(reactor.seconds()))

    @as_deferred
    async def test_refusals_are_one_line(self):
        out, err, status = await self.ymds("broadcast", "--to", "all", "--text-file", os.path.join(self.dir, "nope"))
        self.assertEqual(status, 1)
        self.assertIn("give a readable UTF-8 file", err)
        out, err, status = await self.ymds("broadcast", "--to", "all", "--plan", "week", "--text-file",
                                           self.write_text())
        self.assertEqual(status, 1)
        self.assertIn("plans: month, year", err)
        out, err, status = await self.ymds("broadcast", "--to", "all", "--text-file", self.write_text("x" * 5000))
        self.assertEqual(status, 1)
        self.assertIn("at most 4096", err)
        out, err, status = await self.ymds("broadcast", "--to", "all", "--text-file",
                                           self.write_text("Скидки <b>до 50%</b>!\n<div>x</div>"))
        self.assertEqual(status, 1)
        self.assertIn("Telegram would refuse it: a tag Telegram does not know, <div>, at line 2, character 1", err)


class BroadcastTextTests(unittest.TestCase):
    def test_telegram_html(self):
        from ymds.billing.broadcast_text import html_problem
        self.assertIsNone(html_problem(TEXT))
        self.assertIsNone(html_problem('<a href="https://t.me/x">канал</a> &amp; <i>мы</i> &lt;3 <tg-spoiler>!</tg-spoiler>'))
        for text, problem in (("a < b", "a bare < at line 1, character 3 (write &lt;)"),
                              ("Tom & Jerry", "a bare & at line 1, character 5 (write &amp;)"),
                              ("<b>x</i>", "</i> at line 1, character 5 closes no open <i>"),
                              ("\n<b>bold", "<b> at line 2, character 1 is never closed"),
                              ("<a>x</a>", "<a> without href at line 1, character 1"),
                              ("2 > 1", "a bare > at line 1, character 3 (write &gt;)"),
                              ("   ", "it is empty"), ("x" * 4097, "it has 4097 characters, Telegram takes at most 4096")):
            self.assertEqual(html_problem(text), problem, text)


class SubscriberCommandTests(BroadcastTestBase):
    @as_deferred
    async def test_grant_extend_revoke_list_and_status(self):
        from ymds.billing.tasks import BillingTasks
        from tests.support.queues import RecordingQueue
        await self.start()
        out, err, status = await self.ymds("subscribers", "grant", "--chat", "777", "--plan", "month")
        self.assertEqual(status, 0, err)
        self.assertIn("grant: chat 777, plan month, active until", out)
        out, err, status = await self.ymds("subscribers", "extend", "--chat", "777", "--days", "5")
        self.assertEqual(status, 0, err)
        sub = await self.ledger.subscriptions.subscription(777)
        self.assertLess(abs(sub.ends_at - reactor.seconds() - 35 * T_DAY), 120)
        out, err, status = await self.ymds("subscribers", "--json")
        self.assertEqual(status, 0, err)
        import json
        listed = json.loads(out)
        self.assertEqual([(s["chat_id"], s["plan"], s["active"]) for s in listed], [(777, "month", True)])
        out, err, status = await self.ymds("subscribers", "--expiring", "7d")
        self.assertEqual((status, out.strip().splitlines()), (0, ["CHAT  PLAN  ENDS  ACTIVE"]))
        # /status reads billing's subscription_status: the change shows at once
        tasks = BillingTasks(self.config, self.ledger, RecordingQueue(), reactor)
        from ymds.billing.jobs import ChatQuery
        self.assertTrue((await tasks.subscription_status(ChatQuery(777))).active)
        self.fake.admin_adds(CHANNEL, 777)  # in the channel (however they joined)
        self.assertEqual(self.fake.member_status(CHANNEL, 777), "member")
        out, err, status = await self.ymds("subscribers", "revoke", "--chat", "777")
        self.assertEqual(status, 0, err)
        self.assertIn("revoke: chat 777, plan month, ended", out)
        self.assertFalse((await tasks.subscription_status(ChatQuery(777))).active)
        kinds = [(e.kind, e.data.get("by")) for e in await self.ledger.audit.events(chat_id=777)]
        self.assertEqual(kinds, [("subscriber_granted", "cli"), ("subscriber_extended", "cli"),
                                 ("subscriber_revoked", "cli")])
        # the bot removed the user from the channel
        from tests.fakes.bot_harness import wait_until
        await wait_until(lambda: self.fake.member_status(CHANNEL, 777) != "member", what="the revoke's removal")

    @as_deferred
    async def test_refusals(self):
        await self.start()
        out, err, status = await self.ymds("subscribers", "extend", "--chat", "9", "--days", "5")
        self.assertEqual(status, 3)
        self.assertIn("chat 9 has no subscription; use ymds subscribers grant", err)
        out, err, status = await self.ymds("subscribers", "grant", "--chat", "9", "--plan", "week")
        self.assertEqual(status, 1)
        self.assertIn("unknown plan 'week'; plans: month, year", err)
        out, err, status = await self.ymds("subscribers", "grant", "--chat", "9")
        self.assertEqual(status, 1)
        self.assertIn("grant takes --plan P or --days N", err)
        out, err, status = await self.ymds("subscribers", "--expiring", "soon")
        self.assertEqual(status, 1)


class SubscriberTasksTests(unittest.TestCase):
    """The access jobs a change causes (the API and the command share these handlers)."""

    @as_deferred
    async def test_access_follows_the_change_once(self):
        from tests.support.queues import RecordingQueue
        from ymds.billing.subscribers import SubscriberTasks
        from ymds.billing.subscribers_jobs import ChangeSubscriber
        from ymds.jobwire import InvalidTaskArgs
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        ledger = open_ledger("sqlite:///" + os.path.join(directory, "l.sqlite3"), reactor)
        self.addCleanup(ledger.close)
        await ledger.migrate()
        config = make_config("http://127.0.0.1:1", "redis://127.0.0.1:1/0", "x")
        queue = RecordingQueue()
        tasks = SubscriberTasks(config, ledger, queue, reactor)
        granted = await tasks.change(ChangeSubscriber("grant", 42, plan="year", by="api:key_1"))
        self.assertEqual((granted.found, granted.subscriber.plan, granted.subscriber.active), (True, "year", True))
        await tasks.change(ChangeSubscriber("extend", 42, days=3, by="api:key_1"))  # already in: no second invite
        self.assertEqual([(t, a["chat_id"]) for _, t, a, _ in queue.jobs], [("grant_access", 42)])
        await tasks.change(ChangeSubscriber("revoke", 42, by="cli"))
        await tasks.change(ChangeSubscriber("revoke", 42, by="cli"))  # already out: nothing more to remove
        self.assertEqual([(t, a["chat_id"]) for _, t, a, _ in queue.jobs], [("grant_access", 42), ("revoke_access", 42)])
        self.assertFalse((await tasks.change(ChangeSubscriber("extend", 43, days=1))).found)
        with self.assertRaises(InvalidTaskArgs):
            await tasks.change(ChangeSubscriber("grant", 43, plan="nope"))


class StatusReflectsTheCommandTests(BroadcastTestBase):
    """What the user sees: /status through the polling bot and the billing role, both on the
    ledger the command changes."""

    @as_deferred
    async def test_status_after_grant_and_revoke(self):
        from tests.fakes.bot_harness import wait_until
        from ymds.billing.service import make_billing_service
        self.ledger = open_ledger(self.ledger_url, reactor)
        await self.ledger.migrate()
        self.queue = await start_queue(self, self.config)
        billing = make_billing_service(reactor, self.config, self.queue, self.ledger)
        billing.startService()
        self.addCleanup(billing.stopService)
        await wait_until(lambda: billing.timers._running is None, what="first billing sweep")
        bot = make_bot_service(reactor, self.config, self.queue, limiter=RateLimiter(reactor, chat_interval=0.0))
        bot.startService()
        self.addCleanup(bot.stopService)
        await wait_until(lambda: bot.parts.polling.polling, what="bot polling")

        async def status() -> str:
            before = len(self.fake.messages_to(888))
            self.fake.user_sends(888, "/status")

            def answer():  # other messages (the grant's invite) may come in between
                return [m["text"] for m in self.fake.messages_to(888)[before:] if "Your subscription" in m["text"]]
            await wait_until(answer, what="the /status answer")
            return answer()[0]

        out, err, code = await self.ymds("subscribers", "grant", "--chat", "888", "--plan", "month")
        self.assertEqual(code, 0, err)
        self.assertIn("Your subscription <b>1 month</b> is active until", await status())
        await wait_until(lambda: any("invitation" in m["text"] for m in self.fake.messages_to(888)),
                         what="the grant's invite")
        out, err, code = await self.ymds("subscribers", "revoke", "--chat", "888")
        self.assertEqual(code, 0, err)
        self.assertIn("Your subscription <b>1 month</b> ended on", await status())
