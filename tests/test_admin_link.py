"""Signing in to the dashboard: ``ymds admin-link`` (a real process against a real Redis),
the bot's ``/admin`` (the whole bot role against the fake Bot API), and ``server.timezone``.
"""
from __future__ import annotations

import re

from twisted.internet import reactor, task
from twisted.trial import unittest

from tests.fakes.bot_harness import ADMIN, as_deferred
from tests.test_bot_handlers import BotTestBase
from tests.test_cli import CLITestCase
from ymds.admin.sessions import AdminSessions
from ymds.config import ConfigError, load_config
from ymds.queue.redis import RedisPool, parse_redis_url

LINK = re.compile(r"^https://pay\.example\.org/admin/login\?t=([A-Za-z0-9_-]{20,100})$")


class AdminLinkCommandTests(CLITestCase):
    def sessions(self, clock=reactor) -> AdminSessions:
        pool = RedisPool(reactor, parse_redis_url(self.redis.url), name="test:")
        self.addCleanup(pool.close)
        return AdminSessions(pool, clock, prefix=self.prefix)

    async def link(self, *args: str) -> str:
        out, err, code = await self.ymds("admin-link", *args)
        self.assertEqual(code, 0, err)
        match = LINK.match(out.strip())
        assert match is not None, out
        self.assertIn("once", err)
        return match.group(1)

    async def test_link_signs_in_once(self) -> None:
        token = await self.link()
        sessions = self.sessions()
        session_id = await sessions.redeem(token)
        self.assertIsNotNone(session_id)
        self.assertEqual((await sessions.lookup(session_id)).admin, "cli")
        self.assertIsNone(await sessions.redeem(token))

    async def test_minutes_bound_and_expiry(self) -> None:
        for bad in ("0", "1441"):
            out, err, code = await self.ymds("admin-link", "--minutes", bad)
            self.assertEqual((out, code), ("", 1), err)
            self.assertIn("--minutes must be from 1 to 1440", err)
        token = await self.link("--minutes", "2")
        later = task.Clock()
        later.advance(reactor.seconds() + 121)
        self.assertIsNone(await self.sessions(later).redeem(token))

    async def test_revoke_all_ends_sessions_and_unused_links(self) -> None:
        sessions = self.sessions()
        session_id = await sessions.redeem(await self.link())
        unused = await self.link()
        out, err, code = await self.ymds("admin-link", "--revoke-all")
        self.assertEqual((out, code), ("", 0), err)
        self.assertIsNone(await sessions.lookup(session_id))
        self.assertIsNone(await sessions.redeem(unused))
        self.assertIsNotNone(await sessions.redeem(await self.link()))  # new links work again


class AdminBotCommandTests(BotTestBase):
    @as_deferred
    async def test_admin_gets_a_link_that_signs_in(self) -> None:
        reply = await self.say(ADMIN, "/admin")
        found = re.search(r"https://\S+/admin/login\?t=([A-Za-z0-9_-]+)", reply["visible"])
        assert found is not None, reply["visible"]
        sessions = AdminSessions(self.redis, reactor, prefix=self.prefix)
        session_id = await sessions.redeem(found.group(1))
        self.assertEqual((await sessions.lookup(session_id)).admin, f"tg:{ADMIN}")

    @as_deferred
    async def test_anyone_else_gets_nothing(self) -> None:
        before = len(self.fake.sent)
        self.fake.user_sends(106, "/admin")  # not an admin
        self.fake.user_sends(-100777, "/admin", user_id=ADMIN)  # an admin, but in a group
        self.fake.user_sends(ADMIN + 1, "/admin", user_id=106)  # a chat id that is not the admin's user
        reply = await self.say(106, "/help")  # answered after the ones above were handled
        self.assertEqual(len(self.fake.sent), before + 1)
        self.assertNotIn("/admin/login", reply["visible"])
        self.assertFalse([m for m in self.fake.sent if "/admin/login" in str(m)])


class TimezoneConfigTests(unittest.TestCase):
    def test_default_utc_and_known_zone(self) -> None:
        self.assertEqual(load_config(raw={}, env={}).server.timezone, "UTC")
        self.assertEqual(load_config(raw={"server": {"timezone": "Europe/Moscow"}}, env={}).server.timezone,
                         "Europe/Moscow")

    def test_unknown_zone_is_a_config_error(self) -> None:
        for bad in ("Mars/Base", "", "../etc/passwd", "/etc/localtime", 3):
            with self.assertRaises(ConfigError) as caught:
                load_config(raw={"server": {"timezone": bad}}, env={})
            self.assertIn("server.timezone", str(caught.exception))


class CommandTimesTests(unittest.TestCase):
    def test_tables_show_the_owners_time_and_json_stays_utc(self) -> None:
        from ymds.cli.output import iso, operation_timestamp, short_time, show_times_in
        self.addCleanup(show_times_in, "UTC")
        show_times_in("Europe/Moscow")
        self.assertEqual(short_time(1_780_000_000), "2026-05-28T23:26:40+03:00")
        self.assertEqual(iso(1_780_000_000), "2026-05-28T20:26:40Z")
        self.assertEqual(short_time(operation_timestamp("2026-05-28T10:00:00.000+03:00")), "2026-05-28T10:00:00+03:00")
        show_times_in("UTC")
        self.assertEqual(short_time(1_780_000_000), "2026-05-28T20:26:40Z")
        self.assertEqual(short_time(None), "-")
