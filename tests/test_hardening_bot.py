"""Issue 14: admin commands are decided by the sender's user id only — a member of a group
whose chat id is listed in telegram.admins gets no /stats (the whole bot role against the
fake Bot API)."""

from __future__ import annotations

from tests.fakes.bot_harness import ADMIN, as_deferred
from tests.test_bot_handlers import BotTestBase

GROUP = -100555000111  # a group listed in telegram.admins: its members get no admin rights by that


class AdminBySenderTests(BotTestBase):
    def config_options(self):
        return {**super().config_options(), "telegram": {"admins": [ADMIN, GROUP]}}  # the group among the admins

    @as_deferred
    async def test_group_member_gets_no_stats(self):
        before = len(self.fake.messages_to(GROUP))
        self.fake.user_sends(GROUP, "/stats", user_id=4242)   # a member who is not an admin
        reply = await self.say(GROUP, "/stats", user_id=ADMIN)  # then the listed user, in that group
        self.assertIn("Active subscribers", reply["visible"])
        await self.say(ADMIN, "/stats")  # a barrier: updates are handled in order
        # only the admin's /stats was answered in the group, not the member's
        self.assertEqual(len(self.fake.messages_to(GROUP)), before + 1)
