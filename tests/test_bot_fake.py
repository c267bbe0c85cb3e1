"""The fake Bot API itself: Telegram's limits on a Clock, getUpdates semantics, HTML
checks, and the standalone process with its JSON control API."""
from __future__ import annotations

import treq
from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from tests.fakes.bot_harness import as_deferred, fake_control, start_fake_process
from tests.fakes.fake_telegram import DEFAULT_TOKEN, FakeBotAPI, check_html, _Answer
from ymds.bot import errors
from ymds.bot.api import BotAPI


class LimitTests(unittest.TestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(100)
        self.fake = FakeBotAPI(self.clock)

    def send(self, chat):
        status, body = self.fake.handle(DEFAULT_TOKEN, "sendMessage", {"chat_id": chat, "text": "x"})
        return status, body

    def test_overall_limit_allows_a_burst_of_30_then_30_per_second(self):
        statuses = [self.send(chat)[0] for chat in range(1, 32)]
        self.assertEqual(statuses, [200] * 30 + [429])
        self.assertEqual(self.fake.throttled, 1)
        status, body = self.send(99)
        self.assertEqual(body["parameters"]["retry_after"], 1)
        self.clock.advance(1 / 30)
        self.assertEqual(self.send(100)[0], 200)
        self.assertEqual(self.send(101)[0], 429)

    def test_per_chat_limit(self):
        self.assertEqual([self.send(5)[0] for _ in range(3)], [200, 200, 429])
        self.clock.advance(1)
        self.assertEqual(self.send(5)[0], 200)
        self.assertEqual(self.send(6)[0], 200)

    def test_group_limit_20_per_minute(self):
        sent = 0
        for _ in range(40):
            if self.send(-100)[0] == 200:
                sent += 1
            self.clock.advance(1.0)
        # 20 at once, then one every 3 s: 20 + 40 / 3
        self.assertEqual(sent, 20 + 13)
        self.assertGreater(self.fake.throttled, 0)

    def test_no_limits_when_asked(self):
        fake = FakeBotAPI(self.clock, enforce_limits=False)
        statuses = [fake.handle(DEFAULT_TOKEN, "sendMessage", {"chat_id": 1, "text": "x"})[0] for _ in range(100)]
        self.assertEqual(set(statuses), {200})


class SemanticsTests(unittest.TestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.fake = FakeBotAPI(self.clock)

    def test_offset_confirms_updates(self):
        a = self.fake.user_sends(1, "a")["update_id"]
        b = self.fake.user_sends(1, "b")["update_id"]
        status, body = self.fake.handle(DEFAULT_TOKEN, "getUpdates", {})
        self.assertEqual([u["update_id"] for u in body["result"]], [a, b])
        status, body = self.fake.handle(DEFAULT_TOKEN, "getUpdates", {"offset": b})
        self.assertEqual([u["update_id"] for u in body["result"]], [b])
        status, body = self.fake.handle(DEFAULT_TOKEN, "getUpdates", {"offset": b + 1})
        self.assertEqual(body["result"], [])

    def test_a_second_long_poll_ends_the_first_with_409(self):
        first = self.fake.handle(DEFAULT_TOKEN, "getUpdates", {"timeout": 30})
        self.assertIsInstance(first, defer.Deferred)
        second = self.fake.handle(DEFAULT_TOKEN, "getUpdates", {"timeout": 30})
        status, body = self.successResultOf(first)
        self.assertEqual(status, 409)
        self.assertIn("terminated by other getUpdates request", body["description"])
        self.clock.advance(30)
        self.assertEqual(self.successResultOf(second), (200, {"ok": True, "result": []}))

    def test_webhook_blocks_polling(self):
        self.fake.webhook_url = "https://x.example/hook"
        status, body = self.fake.handle(DEFAULT_TOKEN, "getUpdates", {})
        self.assertEqual(status, 409)
        self.fake.handle(DEFAULT_TOKEN, "deleteWebhook", {})
        self.assertEqual(self.fake.handle(DEFAULT_TOKEN, "getUpdates", {})[0], 200)

    def test_wrong_token_and_unknown_method(self):
        self.assertEqual(self.fake.handle("1:nope", "getMe", {})[0], 401)
        self.assertEqual(self.fake.handle(DEFAULT_TOKEN, "sendDice", {})[0], 404)

    def test_html_checks(self):
        self.assertEqual(check_html('<b>a</b> <i>b <u>c</u></i> &lt;&amp;&gt;&quot; <a href="https://x">l</a>'),
                         'a b c <&>" l')
        for bad in ("<b>", "</i>", "<b><i></b></i>", "<p>x</p>", "a & b", "x > y", "<a>no href</a>", "&nbsp;"):
            with self.assertRaises(_Answer, msg=bad):
                check_html(bad)

    def test_keyboard_checks(self):
        for markup in ({"inline_keyboard": [[{"text": "x"}]]},
                       {"inline_keyboard": [[{"text": "x", "url": "javascript:alert(1)"}]]},
                       {"inline_keyboard": [[{"text": "x", "callback_data": "y" * 65}]]},
                       {"inline_keyboard": [[{"text": "x", "url": "https://a", "callback_data": "b"}]]},
                       {"keyboard": []}):
            status, _ = self.fake.handle(DEFAULT_TOKEN, "sendMessage", {"chat_id": 1, "text": "x", "reply_markup": markup})
            self.assertEqual(status, 400, markup)


class StandaloneTests(unittest.TestCase):
    """``python -m tests.fakes.fake_telegram``, as the end-to-end harness runs it."""

    def setUp(self):
        self.base = start_fake_process(self, "tests.fakes.fake_telegram", "--channel", "-1001")
        self.api = BotAPI(reactor, DEFAULT_TOKEN, self.base)
        self.addCleanup(self.api.close)

    async def control(self, path, body=None):
        return (await fake_control(self.base, path, body))[1]

    @as_deferred
    async def test_control_api(self):
        sent = await self.control("user_sends", {"chat_id": 77, "text": "/start plan"})
        updates = await self.api.getUpdates(timeout=0)
        self.assertEqual(updates[0]["update_id"], sent["result"]["update_id"])
        self.assertEqual(updates[0]["message"]["text"], "/start plan")
        await self.api.sendMessage(77, "<b>hi</b>")
        got = await self.control("sent?chat_id=77")
        self.assertEqual([m["visible"] for m in got["sent"]], ["hi"])
        await self.control("fault", {"method": "sendMessage", "error_code": 429, "retry_after": 4})
        with self.assertRaises(errors.RetryAfter) as caught:
            await self.api.sendMessage(78, "x")
        self.assertEqual(caught.exception.retry_after, 4)
        await self.control("block", {"chat_id": 79})
        with self.assertRaises(errors.Forbidden):
            await self.api.sendMessage(79, "x")
        stats = await self.control("stats")
        self.assertEqual(stats["sent"], 1)
        self.assertEqual(stats["calls"]["sendMessage"], 3)
        bad = await treq.post(f"{self.base}/_control/fault", json={"nothing": 1}, persistent=False)
        self.assertEqual(bad.code, 400)
        await bad.content()
