"""Issue 14: admin commands are decided by the sender's user id only — a member of a group
whose chat id is listed in telegram.admins gets no /stats (the whole bot role against the
fake Bot API)."""

from __future__ import annotations

from twisted.internet import reactor

from tests.fakes.bot_harness import ADMIN, as_deferred, make_config, new_prefix, shared_redis, start_fake
from tests.fakes.fake_telegram import Limits
from tests.test_bot_handlers import BotTestBase
from ymds.queue.redis import RedisPool, parse_redis_url

GROUP = -100555000111  # a group listed in telegram.admins: its members get no admin rights by that


class AdminBySenderTests(BotTestBase):
    def setUp(self):
        # BotTestBase.setUp with the group listed among the admins
        self.redis_server = shared_redis()
        self.prefix = new_prefix()
        self.fake, self.url = start_fake(self, limits=Limits(chat_rate=100, chat_burst=100))
        self.redis = RedisPool(reactor, parse_redis_url(self.redis_server.url), name="test:")
        self.addCleanup(self.redis.close)
        self.config = make_config(self.url, self.redis_server.url, self.prefix, telegram={"admins": [ADMIN, GROUP]})
        return as_deferred(BotTestBase.start)(self)

    @as_deferred
    async def test_group_member_gets_no_stats(self):
        before = len(self.fake.messages_to(GROUP))
        self.fake.user_sends(GROUP, "/stats", user_id=4242)   # a member who is not an admin
        reply = await self.say(GROUP, "/stats", user_id=ADMIN)  # then the listed user, in that group
        self.assertIn("Active subscribers", reply["visible"])
        await self.say(ADMIN, "/stats")  # a barrier: updates are handled in order
        # only the admin's /stats was answered in the group, not the member's
        self.assertEqual(len(self.fake.messages_to(GROUP)), before + 1)
