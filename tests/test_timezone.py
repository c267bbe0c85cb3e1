"""Issue 16: ``[server] timezone`` is used for every time the bot and the payer pages show:
the bot's status, renewal, reminder and invite texts through the fake Bot API, the pay page
and the donation page's feed over HTTP; in Moscow (a moment that crosses midnight there) and
in zones with no letters of their own or a half-hour offset."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from twisted.internet import reactor
from twisted.trial import unittest

from tests.fakes.bot_harness import as_deferred, make_config as bot_config, start_billing, start_queue, start_world
from tests.support.queues import run_task
from tests.support.redis_server import free_port
from tests.test_web_support import LiveSite, make_config as web_config
from ymds import localtime
from ymds.billing import overlay_jobs
from ymds.bot import texts
from ymds.bot.ratelimit import RateLimiter
from ymds.bot.service import make_bot_service

LATE = "2030-01-01T22:30:00+00:00"  # 01:30 on 2 January in Moscow: the day differs
LATE_EPOCH = 1_893_537_000.0
MOSCOW = "Europe/Moscow"


class Formatting(unittest.TestCase):
    def test_moscow_crosses_midnight_in_both_languages(self):
        self.assertEqual(texts.date(LATE, "ru", MOSCOW), "02.01.2030 01:30 MSK (UTC+3)")
        self.assertEqual(texts.date(LATE, "en", MOSCOW), "2030-01-02 01:30 MSK (UTC+3)")

    def test_utc_stays_as_it_was(self):
        self.assertEqual(texts.date(LATE, "ru"), "01.01.2030 22:30 UTC")
        self.assertEqual(texts.date("2030-01-01T22:30:00Z", "en", "UTC"), "2030-01-01 22:30 UTC")
        self.assertEqual(texts.date("2030-01-01T22:30:00", "en", "UTC"), "2030-01-01 22:30 UTC")  # naive is UTC

    def test_zones_without_letters_and_with_half_hours(self):
        self.assertEqual(texts.date(LATE, "ru", "Asia/Yekaterinburg"), "02.01.2030 03:30 UTC+5")
        self.assertEqual(texts.date(LATE, "en", "America/St_Johns"), "2030-01-01 19:00 NST (UTC-3:30)")
        self.assertEqual(texts.date(LATE, "en", "Asia/Kathmandu"), "2030-01-02 04:15 UTC+5:45")

    def test_summer_time_changes_the_name_and_offset(self):
        self.assertEqual(texts.date("2030-07-01T12:00:00Z", "en", "Europe/Berlin"), "2030-07-01 14:00 CEST (UTC+2)")
        self.assertEqual(texts.date("2030-01-01T12:00:00Z", "en", "Europe/Berlin"), "2030-01-01 13:00 CET (UTC+1)")

    def test_not_a_moment(self):
        for bad in (None, "", "soon", "2030-13-01T00:00:00Z"):
            self.assertEqual(texts.date(bad, "ru", MOSCOW), "—")
        self.assertIsNone(localtime.day_text("soon", MOSCOW, "en"))

    def test_days(self):
        self.assertEqual(localtime.day_text("2026-12-31", MOSCOW, "ru"), "31.12.2026")
        self.assertEqual(localtime.day_text("2026-12-31", MOSCOW, "en"), "2026-12-31")
        self.assertEqual(localtime.day_text(LATE, MOSCOW, "ru"), "02.01.2030")


class BotTimes(unittest.TestCase):
    """The real bot role (queue tasks, sender) and billing, against the fake Bot API."""

    def setUp(self):
        start_world(self)
        self.config = bot_config(self.url, self.redis_server.url, self.prefix, language="ru",
                                 server={"timezone": MOSCOW})

    async def bot(self):
        self.queue = await start_queue(self, self.config)
        self.billing = await start_billing(self, self.config, self.queue)
        service = make_bot_service(reactor, self.config, self.queue, redis=self.redis,
                                   limiter=RateLimiter(reactor, chat_interval=0.01), poll=False)
        service.startService()
        self.addCleanup(service.stopService)
        self.parts = service.parts
        self.tasks = service.parts.tasks

    async def notify(self, chat: int, lang: str, message: str, params: dict) -> str:
        await self.parts.store.set_language(chat, lang)
        self.assertEqual(await run_task(self.tasks, "notify", {"chat_id": chat, "message": message, "params": params}),
                         {"outcome": "sent"})
        return self.fake.messages_to(chat)[-1]["visible"]

    @as_deferred
    async def test_renewal_reminder_and_invite_in_moscow(self):
        await self.bot()
        renewed = await self.notify(801, "ru", "payment_confirmed", {"amount": "199.00", "plan": "month",
                                                                     "ends_at": LATE, "renewal": True})
        self.assertIn("продлена до 02.01.2030 01:30 MSK (UTC+3)", renewed)
        first = await self.notify(802, "en", "payment_confirmed", {"amount": "199.00", "plan": "month", "ends_at": LATE})
        self.assertIn("active until 2030-01-02 01:30 MSK (UTC+3)", first)
        reminder = await self.notify(803, "ru", "reminder", {"plan": "month", "ends_at": LATE, "days_left": 3})
        self.assertIn("заканчивается 02.01.2030 01:30 MSK (UTC+3)", reminder)
        invite = await self.notify(804, "en", "invite", {"link": "https://t.me/+abc", "expires_at": "2030-01-01T22:30:00Z"})
        self.assertIn("valid until 2030-01-02 01:30 MSK (UTC+3)", invite)

    @as_deferred
    async def test_status_in_moscow(self):
        await self.bot()
        ledger = self.billing.timers.ledger
        await ledger.db.run(lambda txn: txn.execute(
            "INSERT INTO subscriptions (chat_id, plan, ends_at, updated_at) VALUES (?, ?, ?, ?)",
            (806, "month", LATE_EPOCH, reactor.seconds())))
        update = self.fake.user_sends(806, "/status")
        await run_task(self.tasks, "update", {"update": update})
        reply = self.fake.messages_to(806)[-1]["visible"]
        self.assertIn("действует до 02.01.2030 01:30 MSK (UTC+3)", reply)

    @as_deferred
    async def test_channel_invite_valid_until_in_moscow(self):
        await self.bot()
        ends = reactor.seconds() + 3600  # the link expires with the subscription, sooner than its usual life
        await self.billing.timers.ledger.db.run(lambda txn: txn.execute(
            "INSERT INTO subscriptions (chat_id, plan, ends_at, updated_at) VALUES (?, NULL, ?, ?)",
            (807, ends, reactor.seconds())))
        await self.parts.store.set_language(807, "ru")
        await run_task(self.tasks, "grant_access",
                       {"chat_id": 807, "ends_at": datetime.fromtimestamp(ends, timezone.utc).isoformat()})
        expires = datetime.fromtimestamp(self.fake.invite_links[0]["expire_date"], ZoneInfo(MOSCOW))
        visible = self.fake.messages_to(807)[-1]["visible"]
        self.assertIn(expires.strftime("%d.%m.%Y %H:%M") + " MSK (UTC+3)", visible)
        self.assertNotIn(" UTC.", visible)


BOARD = {"raised": "100.00", "goal": "1000.00", "goal_title": "Микрофон", "goal_until": "2030-01-31",
         "latest": [{"name": "Маша", "amount": "100.00", "message": None, "paid_at": "2030-01-01T22:30:00Z"}],
         "top": [{"name": "Маша", "total": "100.00"}]}


class PageTimes(unittest.TestCase):
    """The pay page and the donation page over HTTP (billing's answers from a recording queue)."""

    def site(self, zone: str) -> LiveSite:
        port = free_port()
        config = web_config(port, server={"timezone": zone},
                            donations={"goal": "1000.00", "goal_title": "Микрофон", "goal_until": "2030-01-31",
                                       "show_supporters": True})
        site = LiveSite(self, config=config)
        site.queue.handlers[overlay_jobs.DONATION_BOARD] = lambda args: BOARD
        return site

    async def test_pay_by_in_moscow_in_both_languages(self):
        site = self.site(MOSCOW)
        label, token = site.invoices.add("150.00")
        site.invoices.invoices[label]["expires_at"] = LATE
        _, ru = await site.request("GET", f"/pay/{token}?lang=ru")
        self.assertIn(f'<time datetime="{LATE}">02.01.2030 01:30 MSK (UTC+3)</time>', ru.decode())
        _, en = await site.request("GET", f"/pay/{token}?lang=en")
        self.assertIn(f'<time datetime="{LATE}">2030-01-02 01:30 MSK (UTC+3)</time>', en.decode())

    async def test_pay_by_in_utc_by_default(self):
        site = LiveSite(self)
        label, token = site.invoices.add("150.00")
        site.invoices.invoices[label]["expires_at"] = LATE
        _, body = await site.request("GET", f"/pay/{token}?lang=ru")
        self.assertIn("01.01.2030 22:30 UTC</time>", body.decode())

    async def test_donation_feed_and_goal_in_the_owners_zone(self):
        site = self.site(MOSCOW)
        _, ru = await site.request("GET", "/?lang=ru")
        self.assertIn('datetime="2030-01-01T22:30:00Z">02.01.2030 01:30 MSK (UTC+3)</time>', ru.decode())
        self.assertIn("31.01.2030", ru.decode())
        _, en = await site.request("GET", "/?lang=en")
        self.assertIn(">2030-01-02 01:30 MSK (UTC+3)</time>", en.decode())
        self.assertIn("Until 2030-01-31", en.decode())

    async def test_donation_feed_west_of_utc(self):
        site = self.site("America/New_York")
        _, en = await site.request("GET", "/?lang=en")
        self.assertIn(">2030-01-01 17:30 EST (UTC-5)</time>", en.decode())
