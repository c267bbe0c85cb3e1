"""Sign-in tokens and sessions in a real redis-server; expiry driven by task.Clock."""
from __future__ import annotations

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.support.redis_server import RedisServer
from ymds.admin.sessions import AdminSessions
from ymds.queue.redis import RedisPool, parse_redis_url


class SessionsTest(unittest.TestCase):
    def setUp(self):
        self.redis = RedisServer(appendonly=False).start()
        self.addCleanup(self.redis.cleanup)
        self.pool = RedisPool(reactor, parse_redis_url(self.redis.url), size=2, name="sessions-test")
        self.addCleanup(self.pool.close)
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.sessions = AdminSessions(self.pool, self.clock, prefix="t", idle=600, absolute=3600)

    def run_async(self, coroutine):
        return defer.Deferred.fromCoroutine(coroutine)

    def test_token_is_single_use(self):
        async def go():
            token = await self.sessions.issue_login_token(10, admin="tg:1")
            session_id = await self.sessions.redeem(token)
            self.assertIsNotNone(session_id)
            self.assertIsNone(await self.sessions.redeem(token))
            session = await self.sessions.lookup(session_id)
            self.assertEqual(session.admin, "tg:1")
            self.assertTrue(session.csrf_ok(session.csrf))
            self.assertFalse(session.csrf_ok("x" + session.csrf))
            self.assertFalse(session.csrf_ok(""))
        return self.run_async(go())

    def test_concurrent_redeem_signs_in_once(self):
        async def go():
            token = await self.sessions.issue_login_token(10)
            results = await defer.gatherResults([defer.Deferred.fromCoroutine(self.sessions.redeem(token))
                                                 for _ in range(10)])
            self.assertEqual(len([r for r in results if r]), 1)
        return self.run_async(go())

    def test_nothing_readable_is_stored(self):
        async def go():
            token = await self.sessions.issue_login_token(10)
            session_id = await self.sessions.redeem(await self.sessions.issue_login_token(10))
            keys = repr(self.redis.command("KEYS", "*"))
            self.assertIn("t:admin:session:", keys)
            self.assertNotIn(token, keys)
            self.assertNotIn(session_id, keys)
        return self.run_async(go())

    def test_token_expires(self):
        async def go():
            token = await self.sessions.issue_login_token(1)
            self.clock.advance(61)
            self.assertIsNone(await self.sessions.redeem(token))
            fresh = await self.sessions.issue_login_token(1)
            self.clock.advance(59)
            self.assertIsNotNone(await self.sessions.redeem(fresh))
        return self.run_async(go())

    def test_minutes_bounds(self):
        async def go():
            for bad in (0, -1, 24 * 60 + 1):
                with self.assertRaises(ValueError):
                    await self.sessions.issue_login_token(bad)
        return self.run_async(go())

    def test_idle_and_absolute_timeouts(self):
        async def go():
            idle = await self.sessions.redeem(await self.sessions.issue_login_token())
            self.clock.advance(599)
            self.assertIsNotNone(await self.sessions.lookup(idle))  # use keeps it alive
            self.clock.advance(599)
            self.assertIsNotNone(await self.sessions.lookup(idle))
            self.clock.advance(601)
            self.assertIsNone(await self.sessions.lookup(idle))
            self.assertIsNone(await self.sessions.lookup(idle))  # and it is gone for good

            busy = await self.sessions.redeem(await self.sessions.issue_login_token())
            for _ in range(6):
                self.clock.advance(500)
                self.assertIsNotNone(await self.sessions.lookup(busy))
            self.clock.advance(601)  # 3601 s after sign-in: over the absolute limit however busy
            self.assertIsNone(await self.sessions.lookup(busy))
        return self.run_async(go())

    def test_revoke_all(self):
        async def go():
            a = await self.sessions.redeem(await self.sessions.issue_login_token())
            b = await self.sessions.redeem(await self.sessions.issue_login_token())
            unused = await self.sessions.issue_login_token()
            await self.sessions.revoke_all()
            self.assertIsNone(await self.sessions.lookup(a))
            self.assertIsNone(await self.sessions.lookup(b))
            self.assertIsNone(await self.sessions.redeem(unused))
            after = await self.sessions.redeem(await self.sessions.issue_login_token())
            self.assertIsNotNone(await self.sessions.lookup(after))
        return self.run_async(go())

    def test_end_and_garbage(self):
        async def go():
            sid = await self.sessions.redeem(await self.sessions.issue_login_token())
            await self.sessions.end(sid)
            self.assertIsNone(await self.sessions.lookup(sid))
            for junk in (None, "", "short", "x" * 500, "../../etc", "a b c d e f g h i j k l m n o p"):
                self.assertIsNone(await self.sessions.redeem(junk))
                self.assertIsNone(await self.sessions.lookup(junk))
        return self.run_async(go())
