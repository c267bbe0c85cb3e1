"""Issue 20, the buyer's and owner's messages through the fake Bot API: the shop's name in
/start and /help, a renewal says "extended until" and sends no second invitation, the
contact is given where the buyer must get in touch, owner alerts name the plan and payer
chat, and telegram.sale_alerts tells the owner of each sale."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.trial import unittest

from tests.fakes.bot_harness import ADMIN, LINK_SECRET, as_deferred, pause, start_world, wait_until
from tests.fakes.bot_harness import make_config as bot_config
from tests.test_bot_handlers import BotTestBase, payment_fields
from ymds.links import verify_token


class ShopWords(BotTestBase):
    language = "ru"

    def config_options(self):
        return {**super().config_options(), "shop": {"name": "Клуб <Анны>", "contact": "@anna_owner"},
                "telegram": {"sale_alerts": True}}

    async def pay(self, chat: int, operation: str, amount: str = "199.00") -> dict:
        reply = await self.say(chat, "/subscribe")
        label = verify_token(LINK_SECRET.encode(), self.buttons(reply)[0]["url"].rsplit("/", 1)[1], reactor.seconds())
        return await self.queue.call("billing", "apply_payment",
                                     {"fields": payment_fields(operation, label, amount), "source": "notification"})

    def sales_announced(self) -> int:
        count = 0
        for m in self.fake.messages_to(ADMIN):
            if m["visible"].startswith("🛒 Продажа:"):
                count += 1
            elif m["visible"].startswith("🛒 Продаж:"):
                count += int(m["visible"].split(":", 1)[1].split(",", 1)[0])
        return count

    @as_deferred
    async def test_sales_arriving_together_are_one_message(self):
        labels = []
        for chat in (203, 204, 205):
            reply = await self.say(chat, "/subscribe")
            labels.append(verify_token(LINK_SECRET.encode(), self.buttons(reply)[0]["url"].rsplit("/", 1)[1],
                                       reactor.seconds()))
        from twisted.internet.defer import gatherResults
        await gatherResults([self.queue.call("billing", "apply_payment", {
            "fields": payment_fields(f"op-20{3 + i}", label, "199.00"), "source": "notification"})
            for i, label in enumerate(labels)])
        await wait_until(lambda: self.sales_announced() == 3, what="three sales announced")
        sales = [m["visible"] for m in self.fake.messages_to(ADMIN) if m["visible"].startswith("🛒")]
        self.assertEqual(len(sales), 1, sales)
        self.assertTrue(sales[0].startswith("🛒 Продаж: 3, на 597,00\u00a0₽:\n"), sales[0])
        for chat in (203, 204, 205):
            self.assertIn(f"• 1 month, 199,00\u00a0₽, {chat}", sales[0])

    @as_deferred
    async def test_start_and_help_name_the_shop(self):
        for command in ("/start", "/help"):
            reply = await self.say(200, command)
            self.assertTrue(reply["visible"].startswith("Клуб <Анны>\n"), reply["visible"])
            self.assertIn("<b>Клуб &lt;Анны&gt;</b>", reply["text"])

    @as_deferred
    async def test_renewal_says_extended_and_invites_once(self):
        chat = 201
        first = await self.pay(chat, "op-201a")
        self.assertEqual(first["outcome"], "paid")
        await wait_until(lambda: len(self.fake.messages_to(chat)) == 3, what="confirmation and invite")
        self.assertEqual(len(self.fake.invite_links), 1)
        self.assertTrue(any("Оплата получена" in m["visible"] and "действует до" in m["visible"]
                            for m in self.fake.messages_to(chat)))
        second = await self.pay(chat, "op-201b")
        self.assertEqual(second["outcome"], "paid")
        await wait_until(lambda: any("продлена до" in m["visible"] for m in self.fake.messages_to(chat)),
                         what="renewal message")
        renewal = [m for m in self.fake.messages_to(chat) if "продлена до" in m["visible"]][0]
        self.assertIn("Подписка 1 month продлена до", renewal["visible"])
        # the owner hears of each sale, naming plan and payer chat (alone, or batched if close)
        await wait_until(lambda: self.sales_announced() == 2, what="two sales announced")
        sale = [m for m in self.fake.messages_to(ADMIN) if "Продаж" in m["visible"]][0]
        self.assertIn("1 month", sale["visible"])
        self.assertIn(str(chat), sale["visible"])
        await self.say(chat, "/status")  # the queue has drained what it had for this chat
        self.assertEqual(len(self.fake.invite_links), 1)  # no second invitation to a member

    @as_deferred
    async def test_underpaid_gives_the_contact_and_the_owner_the_payer(self):
        chat = 202
        result = await self.pay(chat, "op-202", amount="50.00")
        self.assertEqual(result["outcome"], "underpaid")
        await wait_until(lambda: len(self.fake.messages_to(chat)) == 2
                         and any("Недоплата" in m["visible"] for m in self.fake.messages_to(ADMIN)))
        self.assertIn("Связь с владельцем: @anna_owner.", self.fake.messages_to(chat)[1]["visible"])
        alert = [m for m in self.fake.messages_to(ADMIN) if "Недоплата" in m["visible"]][0]
        self.assertIn(f"чат плательщика {chat}", alert["visible"])
        self.assertIn("тариф 1 month", alert["visible"])


class InvitationDelayed(BotTestBase):
    """The bot lacks "invite users" in the channel: the buyer hears at once that the invitation
    comes later, the owner hears which right is missing where; the grant is tried again by
    itself (delays shortened here), so once the owner gives the right the invitation arrives
    with nobody told twice; if the right never comes, the grant ends as a dead letter."""

    async def pay_without_the_right(self, chat: int) -> None:
        from tests.fakes.bot_harness import CHANNEL
        self.fake.add_chat(CHANNEL, bot_rights=["can_restrict_members"])
        reply = await self.say(chat, "/subscribe")
        label = verify_token(LINK_SECRET.encode(), self.buttons(reply)[0]["url"].rsplit("/", 1)[1], reactor.seconds())
        result = await self.queue.call("billing", "apply_payment", {
            "fields": payment_fields(f"op-{chat}", label, "199.00"), "source": "notification"})
        self.assertEqual(result["outcome"], "paid")
        await wait_until(lambda: any("a little later" in m["visible"] for m in self.fake.messages_to(chat)),
                         what="the buyer's notice")
        await wait_until(lambda: self.owner_alerts(chat), what="the owner's alert")

    def owner_alerts(self, chat: int) -> list[str]:
        return [m["visible"] for m in self.fake.messages_to(ADMIN)
                if "could not issue an invitation" in m["visible"] and f"(chat {chat})" in m["visible"]]

    def told_once(self, chat: int) -> None:
        self.assertEqual(len([m for m in self.fake.messages_to(chat) if "a little later" in m["visible"]]), 1)
        self.assertEqual(len(self.owner_alerts(chat)), 1)

    @as_deferred
    async def test_the_invitation_arrives_by_itself_once_the_right_is_given(self):
        from tests.fakes.bot_harness import CHANNEL
        from ymds.bot import access_notice
        from ymds.queue.admin import list_dead
        self.patch(access_notice, "RETRY_EVERY", 0.3)
        chat = 210
        await self.pay_without_the_right(chat)
        alert = self.owner_alerts(chat)[0]
        self.assertIn(f"Chat {CHANNEL}: give the bot the right “Invite users via link” (can_invite_users)", alert)
        self.assertIn("sent automatically", alert)
        self.assertIn("ymds replay --queue bot --all", alert)
        self.assertEqual(self.fake.invite_links, [])
        await pause(1.0)  # a few retries fail: nobody is told again, nothing is sent
        self.told_once(chat)
        self.assertEqual(self.fake.invite_links, [])
        self.fake.add_chat(CHANNEL)  # the owner gives the bot every right
        await wait_until(lambda: len(self.fake.invite_links) == 1, what="the invitation")
        await wait_until(lambda: any(m.get("reply_markup") for m in self.fake.messages_to(chat)[1:]),
                         what="the invitation message")
        await pause(1.0)  # later retries, had any been left, would show here
        invitations = [m for m in self.fake.messages_to(chat)
                       if any(b.get("url", "").startswith("https://t.me/") for b in self.buttons(m))]
        self.assertEqual(len(invitations), 1)
        self.assertEqual(len(self.fake.invite_links), 1)
        self.told_once(chat)
        self.assertEqual(await list_dead(reactor, self.config.redis, "bot"), [])

    @as_deferred
    async def test_a_day_of_failures_is_a_dead_letter_and_the_replay_delivers(self):
        from tests.fakes.bot_harness import CHANNEL
        from ymds.bot import access_notice
        from ymds.queue.admin import list_dead, replay
        self.patch(access_notice, "RETRY_EVERY", 0.2)
        self.patch(access_notice, "RETRY_FOR", 0.6)  # "a day": three retries
        chat = 211
        await self.pay_without_the_right(chat)
        for _ in range(2000):  # the last retry's permanent failure reaches the dead stream
            if await list_dead(reactor, self.config.redis, "bot"):
                break
            await pause(0.01)
        dead = await list_dead(reactor, self.config.redis, "bot")
        self.assertEqual(len(dead), 1, dead)
        self.told_once(chat)
        self.assertEqual(self.fake.invite_links, [])
        self.fake.add_chat(CHANNEL)
        self.assertEqual(await replay(reactor, self.config.redis, "bot"), 1)
        await wait_until(lambda: len(self.fake.invite_links) == 1, what="the invitation")
        self.told_once(chat)


class InvitationRetryOverTheWire(unittest.TestCase):
    """The grant handler exactly as a worker runs it, on the real billing handlers and a
    SQLite ledger, every enqueue recorded with its delay (the queue joined in memory): each
    failure schedules the same grant RETRY_EVERY later with one enqueue key per attempt; the
    right given (make_admin), the next retry sends the one invitation; the attempt after
    RETRY_FOR raises (a dead letter); nobody is told twice."""

    def setUp(self):
        start_world(self)
        self.config = bot_config(self.url, self.redis_server.url, self.prefix)
        return as_deferred(type(self).start)(self)

    async def start(self):
        from tests.support.ledgers import sqlite_url
        from tests.support.queues import RecordingQueue, registry_of
        from ymds.billing.open import open_ledger
        from ymds.billing.tasks import BillingTasks
        from ymds.bot.service import make_bot_service
        ledger = open_ledger(sqlite_url(self), reactor)
        self.addCleanup(ledger.close)
        await ledger.migrate()
        self.queue = RecordingQueue(with_delay=True)
        self.billing = BillingTasks(self.config, ledger, self.queue, reactor)
        billing = registry_of(self.billing)
        for name in billing.tasks():  # billing's RPCs answered by its real handlers
            self.queue.handlers[name] = lambda args, name=name: billing.lookup(name)(args)
        service = make_bot_service(reactor, self.config, self.queue, redis=self.redis, poll=False, worker=False)
        service.startService()
        self.addCleanup(service.stopService)
        self.tasks = service.parts.tasks

    async def paid_grant(self, chat: int) -> dict:
        """Billing's grant_access job for ``chat``'s payment (as billing enqueued it)."""
        from tests.support.queues import run_task
        from tests.test_bot_handlers import payment_fields
        offer = (await run_task(self.billing, "create_invoices", {"chat_id": chat}))["invoices"][0]
        paid = await run_task(self.billing, "apply_payment", {
            "fields": payment_fields(f"op-{chat}", offer["label"], "199.00"), "source": "notification"})
        self.assertEqual(paid["outcome"], "paid")
        grants = [job for job in self.queue.jobs if job[1] == "grant_access" and job[2]["chat_id"] == chat]
        self.assertEqual(len(grants), 1)
        return grants[0][2]

    @as_deferred
    async def test_retries_are_scheduled_then_the_right_delivers(self):
        from tests.fakes.bot_harness import CHANNEL
        from tests.fakes.fake_telegram import BOT_USER
        from tests.support.queues import run_task
        from ymds.bot.access_notice import RETRY_EVERY
        self.fake.add_chat(CHANNEL, bot_rights=["can_restrict_members"])
        chat = 720
        grant = await self.paid_grant(chat)
        key = grant["key"]
        before = len(self.fake.messages_to(ADMIN))
        outcome = await run_task(self.tasks, "grant_access", grant)
        self.assertIs(outcome["granted"], False)
        for attempt in (1, 2):
            self.assertEqual(self.queue.jobs[-1], ("bot", "grant_access", {**grant, "attempt": attempt},
                                                   f"{key}:retry:{attempt}", RETRY_EVERY))
            again = await run_task(self.tasks, "grant_access", self.queue.jobs[-1][2])  # the retry fails again
            self.assertIs(again["granted"], False)
        scheduled = len(self.queue.jobs)
        await run_task(self.tasks, "grant_access", self.queue.jobs[-2][2])  # a redelivery schedules nothing more
        self.assertEqual(len(self.queue.jobs), scheduled)
        self.assertEqual(len(self.fake.messages_to(chat)), 1)  # "a little later", once
        self.assertEqual(len(self.fake.messages_to(ADMIN)), before + 1)  # the owner's alert, once
        self.fake.make_admin(CHANNEL, BOT_USER["id"])  # the owner gives the right
        granted = await run_task(self.tasks, "grant_access", self.queue.jobs[-1][2])
        self.assertEqual(granted, {"granted": True, "outcome": "sent"})
        self.assertEqual(len(self.fake.invite_links), 1)
        self.assertEqual(len(self.fake.messages_to(chat)), 2)
        self.assertEqual(len(self.fake.messages_to(ADMIN)), before + 1)

    @as_deferred
    async def test_a_day_of_failures_is_a_dead_letter(self):
        from tests.fakes.bot_harness import CHANNEL
        from tests.support.queues import run_task
        from ymds.bot.access_notice import RETRY_EVERY, RETRY_FOR
        from ymds.queue.errors import PermanentJobError
        self.fake.add_chat(CHANNEL, bot_rights=["can_restrict_members"])
        grant = await self.paid_grant(721)
        last = int(RETRY_FOR // RETRY_EVERY)  # 288: every 5 minutes for 24 hours
        await run_task(self.tasks, "grant_access", {**grant, "attempt": last - 1})
        self.assertEqual(self.queue.jobs[-1][2]["attempt"], last)
        with self.assertRaises(PermanentJobError):
            await run_task(self.tasks, "grant_access", self.queue.jobs[-1][2])
        self.assertEqual(self.queue.jobs[-1][2]["attempt"], last)  # nothing scheduled after the last
        self.assertEqual(len(self.fake.messages_to(721)), 1)
        self.assertEqual(self.fake.invite_links, [])
