"""The whole bot role (polling, queue worker, sender) with the real billing role, against
the fake Bot API: commands, buttons, and the subscribe → pay → confirmation → access →
expiry → removal path."""
from __future__ import annotations

from datetime import datetime

from twisted.internet import reactor
from twisted.trial import unittest

from tests.fakes.fake_telegram import Limits
from tests.fakes.bot_harness import (ADMIN, CHANNEL, LINK_SECRET, as_deferred, make_config, pause, start_billing,
                                     start_queue, start_world, wait_until)
from ymds.bot.ratelimit import RateLimiter
from ymds.bot.service import make_bot_service
from ymds.links import verify_token

DAY = 86400


def payment_fields(operation_id: str, label: str, amount: str) -> dict:
    return {"notification_type": "p2p-incoming", "operation_id": operation_id, "amount": amount,
            "withdraw_amount": amount, "currency": "643", "datetime": "2026-11-26T10:00:00Z",
            "sender": "41001000", "codepro": "false", "label": label, "unaccepted": "false"}


class BotTestBase(unittest.TestCase):
    channel = CHANNEL
    language = "en"

    def setUp(self):
        # Conversations here go faster than Telegram allows per chat (our limiter is set so
        # below); the flood limits themselves are tested in test_bot_ratelimit and the benchmark.
        start_world(self, limits=Limits(chat_rate=100, chat_burst=100))
        self.config = make_config(self.url, self.redis_server.url, self.prefix, **self.config_options())
        return as_deferred(type(self).start)(self)

    def config_options(self) -> dict:
        """make_config's sections and keywords for this case; a subclass adds its plans or keys."""
        return {"channel": self.channel, "language": self.language}

    async def start(self):
        self.queue = await start_queue(self, self.config)
        self.billing = await start_billing(self, self.config, self.queue)
        # Per-chat pacing shortened so that a conversation does not take a second a reply.
        self.bot = make_bot_service(reactor, self.config, self.queue, redis=self.redis,
                                    limiter=RateLimiter(reactor, chat_interval=0.02))
        self.bot.startService()
        self.addCleanup(self.bot.stopService)
        await wait_until(lambda: self.bot.parts.polling.polling, what="bot polling")

    async def say(self, chat: int, text: str, replies: int = 1, **kw) -> dict:
        """The user writes; returns the bot's last reply once ``replies`` new ones arrived."""
        before = len(self.fake.messages_to(chat))
        self.fake.user_sends(chat, text, **kw)
        await wait_until(lambda: len(self.fake.messages_to(chat)) >= before + replies, what=f"reply to {text!r}")
        return self.fake.messages_to(chat)[-1]

    async def click(self, chat: int, data: str, replies: int = 1) -> dict:
        before = len(self.fake.messages_to(chat))
        answered = len(self.fake.callback_answers)
        self.fake.user_clicks(chat, data)
        await wait_until(lambda: len(self.fake.messages_to(chat)) >= before + replies
                         and len(self.fake.callback_answers) > answered, what=f"answer to button {data!r}")
        return self.fake.messages_to(chat)[-1]

    def buttons(self, message: dict) -> list[dict]:
        markup = message.get("reply_markup") or {"inline_keyboard": []}
        return [b for row in markup["inline_keyboard"] for b in row]


class CommandTests(BotTestBase):
    @as_deferred
    async def test_start_and_help(self):
        reply = await self.say(100, "/start")
        self.assertIn("/subscribe", reply["visible"])
        self.assertEqual(self.buttons(reply), [{"text": "Subscribe", "callback_data": "subscribe"}])
        reply = await self.say(100, "/help")
        self.assertIn("/status", reply["visible"])
        self.assertNotIn("/stats", reply["visible"])
        reply = await self.say(ADMIN, "/help")
        self.assertIn("/stats", reply["visible"])
        reply = await self.say(100, "what?")
        self.assertIn("/help", reply["visible"])

    @as_deferred
    async def test_subscribe_gives_one_signed_pay_link_per_plan(self):
        reply = await self.say(101, "/subscribe")
        buttons = self.buttons(reply)
        self.assertEqual([b["text"] for b in buttons], ["1 month — 199.00\u00a0₽", "1 year <best> — 1,990.00\u00a0₽"])
        for b in buttons:
            self.assertTrue(b["url"].startswith("https://pay.example.org/pay/"))
            verify_token(LINK_SECRET.encode(), b["url"].rsplit("/", 1)[1], reactor.seconds())
        self.assertIn("1 year &lt;best&gt;", reply["text"])
        again = await self.say(101, "/subscribe")
        self.assertEqual([b["url"] for b in self.buttons(again)], [b["url"] for b in buttons])
        via_button = await self.click(101, "subscribe")
        self.assertEqual([b["url"] for b in self.buttons(via_button)], [b["url"] for b in buttons])

    @as_deferred
    async def test_start_with_a_plan_deep_link(self):
        reply = await self.say(102, "/start year")
        buttons = self.buttons(reply)
        self.assertEqual(len(buttons), 1)
        self.assertIn("1 year <best>", reply["visible"])
        self.assertTrue(buttons[0]["url"].startswith("https://pay.example.org/pay/"))
        for payload in ("nosuchplan", "../../etc", "x" * 100):
            reply = await self.say(102, f"/start {payload}")
            self.assertIn("/subscribe", reply["visible"])

    @as_deferred
    async def test_status_without_subscription(self):
        reply = await self.say(103, "/status")
        self.assertIn("no subscription", reply["visible"])
        self.assertEqual(len(self.buttons(reply)), 2)

    @as_deferred
    async def test_language_choice(self):
        reply = await self.say(104, "/lang")
        self.assertEqual([b["callback_data"] for b in self.buttons(reply)], ["lang:ru", "lang:en"])
        reply = await self.click(104, "lang:ru")
        self.assertIn("русский", reply["visible"])
        self.assertEqual(self.fake.callback_answers[-1]["text"], "Язык: русский.")
        reply = await self.say(104, "/help")
        self.assertIn("Команды", reply["visible"])
        reply = await self.click(104, "lang:en")
        reply = await self.say(104, "/help")
        self.assertIn("Commands", reply["visible"])

    @as_deferred
    async def test_unknown_buttons_are_answered_and_ignored(self):
        before = len(self.fake.sent)
        self.fake.user_clicks(105, "lang:xx")
        self.fake.user_clicks(105, "x" * 200)
        await wait_until(lambda: len(self.fake.callback_answers) == 2)
        await pause(0.2)
        self.assertEqual(len(self.fake.sent), before)

    @as_deferred
    async def test_stats_only_for_admins(self):
        reply = await self.say(106, "/stats")
        self.assertIn("did not understand", reply["visible"])
        reply = await self.say(ADMIN, "/stats")
        self.assertIn("Active subscribers: 0", reply["visible"])
        self.assertIn("Dead letters: 0", reply["visible"])
        self.assertIn("0.00", reply["visible"])

    @as_deferred
    async def test_groups_get_sent_to_private_chat(self):
        reply = await self.say(-100777, "/subscribe", user_id=107)
        self.assertIn("private chat", reply["visible"])
        self.assertEqual(self.buttons(reply), [])
        before = len(self.fake.sent)
        self.fake.user_sends(-100777, "just chatting", user_id=107)
        self.fake.user_sends(-100777, "/help@some_other_bot", user_id=107)
        reply = await self.say(-100777, "/help@ymds_test_bot", user_id=107)
        self.assertEqual(len(self.fake.sent), before + 1)

    @as_deferred
    async def test_hostile_updates_do_not_break_the_bot(self):
        for junk in ({"message": {"chat": "x", "text": "/start"}}, {"message": {"chat": {"id": "1"}, "text": "/start"}},
                     {"message": {"chat": {"id": 108, "type": "private"}, "text": 42}},
                     {"message": {"chat": {"id": 108, "type": "private"}, "text": "/start" + "x" * 5000}},
                     {"callback_query": {"id": 5, "data": "lang:ru"}}, {"edited_message": {}}, {"update_id": 1}):
            self.fake.push_update(junk)
        reply = await self.say(108, "/help")
        self.assertIn("/subscribe", reply["visible"])
        self.assertEqual(len(self.fake.messages_to(108)), 1)

    @as_deferred
    async def test_a_flooding_chat_is_not_answered(self):
        for i in range(25):
            self.fake.user_sends(109, f"spam {i}")
        await wait_until(lambda: len(self.fake.messages_to(109)) >= 20)
        await pause(0.5)
        self.assertEqual(len(self.fake.messages_to(109)), 20)
        reply = await self.say(110, "/help")  # others are still answered
        self.assertIn("/subscribe", reply["visible"])


class RussianDefaultTests(BotTestBase):
    language = "ru"

    @as_deferred
    async def test_default_language_comes_from_the_configuration(self):
        reply = await self.say(120, "/subscribe")
        self.assertIn("Выберите тариф", reply["visible"])
        self.assertEqual(self.buttons(reply)[0]["text"], "1 month — 199,00\u00a0₽")


class SubscriptionPathTests(BotTestBase):
    @as_deferred
    async def test_subscribe_pay_confirm_access_expire_remove(self):
        chat = 130
        reply = await self.say(chat, "/subscribe")
        url = self.buttons(reply)[0]["url"]
        label = verify_token(LINK_SECRET.encode(), url.rsplit("/", 1)[1], reactor.seconds())
        # YooMoney's notification, as the web role hands it to billing.
        result = await self.queue.call("billing", "apply_payment",
                                       {"fields": payment_fields("op-130", label, "199.00"), "source": "notification"})
        self.assertEqual(result["outcome"], "paid")
        await wait_until(lambda: len(self.fake.messages_to(chat)) == 3, what="confirmation and invite")
        confirmation, invite = self.fake.messages_to(chat)[1:]
        if "invitation" in confirmation["visible"]:
            confirmation, invite = invite, confirmation
        ends_at = datetime.fromisoformat(result["ends_at"])
        self.assertIn("Payment received", confirmation["visible"])
        self.assertIn(ends_at.strftime("%Y-%m-%d"), confirmation["visible"])
        self.assertIn("1 month", confirmation["visible"])
        link = self.fake.invite_links[0]
        # issue 15: a join-request link, one per subscriber and chat, for nobody else
        self.assertEqual((link["creates_join_request"], link.get("member_limit")), (True, None))
        self.assertEqual(self.buttons(invite)[0]["url"], link["invite_link"])
        # A redelivered billing job (same payment) changes nothing.
        again = await self.queue.call("billing", "apply_payment",
                                      {"fields": payment_fields("op-130", label, "199.00"), "source": "notification"})
        self.assertEqual(again["outcome"], "duplicate")
        status = await self.say(chat, "/status")
        self.assertIn("active until", status["visible"])
        self.assertIn({"text": "Get an invitation link", "callback_data": "invite"}, self.buttons(status))
        # Pressing the button again gives the same live link, not a new one.
        again_invite = await self.click(chat, "invite")
        self.assertEqual(self.buttons(again_invite)[0]["url"], link["invite_link"])
        self.assertEqual(len(self.fake.invite_links), 1)
        # The button is rate-limited: three presses a minute, then "too often".
        await self.click(chat, "invite")
        await self.click(chat, "invite")
        # The refusal is the handler's immediate reply, while the presses before it answer
        # through the bot queue: it may arrive before their invitations, so look for it.
        before = len(self.fake.messages_to(chat))
        self.fake.user_clicks(chat, "invite")
        await wait_until(lambda: any("Too often" in m["visible"] for m in self.fake.messages_to(chat)[before:]),
                         what="the fourth press refused")
        self.assertEqual(len(self.fake.invite_links), 1)
        # The link, shared: the subscriber is let in, the stranger is not.
        self.assertEqual(self.fake.user_joins_by_link(chat, link["invite_link"]), "requested")
        self.assertEqual(self.fake.user_joins_by_link(555, link["invite_link"]), "requested")
        await wait_until(lambda: chat in self.fake.members(CHANNEL) and not self.fake.chat_model.chat(CHANNEL).requests,
                         what="join requests decided")
        # The subscription ends (moved into the past in the ledger): billing's sweep has the
        # bot remove the member (ban, then unban so that they may pay and come back).
        ledger = self.billing.timers.ledger
        past = reactor.seconds() - 1
        await ledger.db.run(lambda txn: txn.execute("UPDATE subscriptions SET ends_at = ? WHERE chat_id = ?",
                                                    (past, chat)))
        await self.billing.timers.tick()
        self.assertNotIn(555, self.fake.members(CHANNEL))
        await wait_until(lambda: len([b for b in self.fake.bans if b[2] == chat]) == 2 and
                         chat not in self.fake.members(CHANNEL), what="removal after expiry")
        self.assertEqual([b for b in self.fake.bans if b[2] == chat],
                         [("banChatMember", CHANNEL, chat), ("unbanChatMember", CHANNEL, chat)])
        await wait_until(lambda: any("has ended" in m["visible"] for m in self.fake.messages_to(chat)))
        expired = [m for m in self.fake.messages_to(chat) if "has ended" in m["visible"]][0]
        self.assertTrue(all(b["url"].startswith("https://pay.example.org/pay/") for b in self.buttons(expired)))

    @as_deferred
    async def test_underpayment_tells_the_user_and_the_owner(self):
        chat = 131
        reply = await self.say(chat, "/subscribe")
        label = verify_token(LINK_SECRET.encode(), self.buttons(reply)[0]["url"].rsplit("/", 1)[1], reactor.seconds())
        result = await self.queue.call("billing", "apply_payment",
                                       {"fields": payment_fields("op-131", label, "50.00"), "source": "notification"})
        self.assertEqual(result["outcome"], "underpaid")
        await wait_until(lambda: len(self.fake.messages_to(chat)) == 2 and len(self.fake.messages_to(ADMIN)) == 1)
        self.assertIn("50.00", self.fake.messages_to(chat)[1]["visible"])
        self.assertIn("199.00", self.fake.messages_to(chat)[1]["visible"])
        self.assertIn("Underpayment", self.fake.messages_to(ADMIN)[0]["visible"])
        stats = await self.say(ADMIN, "/stats")
        self.assertIn("Today: 1 payments", stats["visible"])
