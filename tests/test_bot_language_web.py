"""The landing page's "Subscribe in Telegram" button per plan (https://t.me/<bot>?start=<plan
id>), plan titles in the page's language and prices in its number format.  The bot's
username comes from telegram.bot_username, else from Redis, where the bot role put what
getMe said (tests/test_bot_language.py checks that side)."""
from __future__ import annotations

import os

from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.fakes.bot_harness import shared_redis
from tests.support.redis_server import free_port
from tests.test_web_support import LiveSite
from ymds.config import load_config

NBSP = "\u00a0"


def config_for(redis_url: str, prefix: str, **telegram):
    port = free_port()
    return load_config(raw={
        "server": {"endpoint": f"tcp:{port}:interface=127.0.0.1", "public_url": f"http://127.0.0.1:{port}"},
        "yoomoney": {"wallet": "4100111122223333", "notification_secret": "s3cret"},
        "links": {"secret": "web-lang-link-secret-0123456789ab"},
        "redis": {"url": redis_url, "prefix": prefix},
        "telegram": {"language": "ru", **telegram},
        "plans": [{"id": "month", "title": {"ru": "1 месяц", "en": "1 month"}, "price": "1990.00", "days": 30},
                  {"id": "year", "title": "Год", "price": "19900.00", "days": 365}],
    }, env={})


class LandingButtonTests(unittest.TestCase):
    def page(self, live, path="/"):
        async def go():
            response, body = await live.request("GET", path)
            self.assertEqual(response.code, 200)
            return body.decode()
        return defer.Deferred.fromCoroutine(go())

    async def test_the_button_appears_once_the_bot_has_said_its_name(self):
        from ymds.queue.client import RedisJobQueue
        server = shared_redis()
        prefix = "wl" + os.urandom(4).hex()
        config = config_for(server.url, prefix)
        queue = RedisJobQueue(reactor, config.redis)
        queue.startService()
        self.addCleanup(queue.stopService)
        live = LiveSite(self, config=config, queue=queue)
        body = await self.page(live)
        self.assertIn("1 месяц", body)
        self.assertIn(f"1{NBSP}990,00 ₽", body)
        self.assertIn(f"19{NBSP}900,00 ₽", body)
        self.assertNotIn("t.me/", body)  # no username yet: no button (and the page still renders)
        server.command("SET", f"{prefix}:bot:username", "shop_bot")
        self.assertNotIn("t.me/", await self.page(live))  # read at most once a minute
        live.clock.advance(61)
        body = await self.page(live)
        self.assertIn('href="https://t.me/shop_bot?start=month"', body)
        self.assertIn('href="https://t.me/shop_bot?start=year"', body)
        self.assertIn("Оформить в Telegram", body)
        body = await self.page(live, "/?lang=en")
        self.assertIn("1 month", body)
        self.assertIn("1,990.00 ₽", body)
        self.assertIn("Subscribe in Telegram", body)
        self.assertIn('href="https://t.me/shop_bot?start=month"', body)

    async def test_the_configured_username_wins_without_redis(self):
        config = config_for("redis://127.0.0.1:1/0", "x", bot_username="configured_bot")
        live = LiveSite(self, config=config)
        body = await self.page(live)
        self.assertIn('href="https://t.me/configured_bot?start=month"', body)
        self.assertIn('class="button secondary plan-subscribe"', body)
