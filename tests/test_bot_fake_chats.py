"""The fake Bot API's chats: membership, invite links, join requests, bans, rights, and
chat_member updates delivered only when allowed_updates asks for them (as Telegram does)."""
from __future__ import annotations

from twisted.internet import reactor, task
from twisted.trial import unittest

from tests.fakes.bot_harness import as_deferred, fake_control, start_fake_process
from tests.fakes.fake_chats import OWNER_ID, JoinRefused
from tests.fakes.fake_telegram import BOT_USER, DEFAULT_TOKEN, FakeBotAPI
from ymds.bot import errors
from ymds.bot.api import BotAPI

CHANNEL = -1001111111111
GROUP = -1002222222222
BOT = BOT_USER["id"]


class ChatTestBase(unittest.TestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)
        self.fake = FakeBotAPI(self.clock, enforce_limits=False)
        self.fake.add_chat(CHANNEL)

    def ok(self, method, **params):
        status, body = self.fake.handle(DEFAULT_TOKEN, method, params)
        self.assertEqual(status, 200, body)
        return body["result"]

    def refused(self, method, **params):
        status, body = self.fake.handle(DEFAULT_TOKEN, method, params)
        self.assertNotEqual(status, 200, body)
        return status, body["description"]

    def poll(self, allowed=None):
        """One getUpdates (confirming what it returns), as a poller would."""
        params = {} if allowed is None else {"allowed_updates": allowed}
        updates = self.ok("getUpdates", **params)
        if updates:
            self.ok("getUpdates", offset=updates[-1]["update_id"] + 1)
        return updates

    def join_refused(self, user_id, link) -> str:
        with self.assertRaises(JoinRefused) as caught:
            self.fake.user_joins_by_link(user_id, link)
        return caught.exception.reason


class InviteLinkTests(ChatTestBase):
    def test_link_fields_and_the_join_request_member_limit_refusal(self):
        link = self.ok("createChatInviteLink", chat_id=CHANNEL, creates_join_request=True, name="sub",
                       expire_date=int(self.clock.seconds()) + 3600)
        self.assertEqual({k: link[k] for k in ("creates_join_request", "is_primary", "is_revoked", "name",
                                               "pending_join_request_count")},
                         {"creates_join_request": True, "is_primary": False, "is_revoked": False, "name": "sub",
                          "pending_join_request_count": 0})
        self.assertEqual(link["creator"]["id"], BOT)
        self.assertNotIn("member_limit", link)
        self.assertEqual(self.refused("createChatInviteLink", chat_id=CHANNEL, creates_join_request="true",
                                      member_limit=1),
                         (400, "Bad Request: member limit can't be specified for links requiring administrator approval"))
        self.assertEqual(self.refused("createChatInviteLink", chat_id=CHANNEL, expire_date=5)[1],
                         "Bad Request: EXPIRE_DATE_INVALID")
        self.assertEqual(self.refused("createChatInviteLink", chat_id=-100999)[1], "Bad Request: chat not found")

    def test_the_bot_needs_the_rights(self):
        self.fake.add_chat(GROUP, type="supergroup", bot_rights=["can_restrict_members"])
        self.assertEqual(self.refused("createChatInviteLink", chat_id=GROUP),
                         (400, "Bad Request: not enough rights to manage chat invite link"))
        self.fake.make_admin(GROUP, BOT, ["can_invite_users"])
        self.ok("createChatInviteLink", chat_id=GROUP)
        self.assertEqual(self.refused("banChatMember", chat_id=GROUP, user_id=5),
                         (400, "Bad Request: not enough rights to restrict/unrestrict chat member"))
        self.fake.add_chat(-1003, bot_status="left")
        self.assertEqual(self.refused("createChatInviteLink", chat_id=-1003),
                         (403, "Forbidden: bot is not a member of the channel chat"))

    def test_member_limit_counts_members_who_joined_by_the_link(self):
        link = self.ok("createChatInviteLink", chat_id=CHANNEL, member_limit=1)["invite_link"]
        self.assertEqual(self.fake.user_joins_by_link(11, link), "joined")
        self.assertEqual(self.join_refused(12, link), "USERS_TOO_MUCH")
        self.assertEqual(self.join_refused(11, link), "USER_ALREADY_PARTICIPANT")
        self.assertTrue(self.fake.user_leaves(CHANNEL, 11))
        self.assertEqual(self.fake.user_joins_by_link(12, link), "joined")  # Telegram's limit is "at once"
        self.assertEqual(self.fake.members(CHANNEL), [12, OWNER_ID])

    def test_expired_and_revoked_links_stop_working(self):
        soon = self.ok("createChatInviteLink", chat_id=CHANNEL, expire_date=int(self.clock.seconds()) + 60)
        self.clock.advance(60)
        self.assertEqual(self.join_refused(11, soon["invite_link"]), "INVITE_HASH_EXPIRED")
        link = self.ok("createChatInviteLink", chat_id=CHANNEL)["invite_link"]
        revoked = self.ok("revokeChatInviteLink", chat_id=CHANNEL, invite_link=link)
        self.assertEqual((revoked["invite_link"], revoked["is_revoked"]), (link, True))
        self.assertEqual(self.join_refused(11, link), "INVITE_HASH_EXPIRED")
        self.assertEqual(self.join_refused(11, "https://t.me/+nothing"), "INVITE_HASH_EXPIRED")
        self.assertEqual(self.refused("revokeChatInviteLink", chat_id=CHANNEL, invite_link="https://t.me/+x")[1],
                         "Bad Request: INVITE_HASH_EXPIRED")
        self.assertEqual(self.fake.members(CHANNEL), [OWNER_ID])

    def test_edit_sets_every_field_and_revoking_the_primary_link_makes_a_new_one(self):
        link = self.ok("createChatInviteLink", chat_id=CHANNEL, member_limit=3, name="a")["invite_link"]
        edited = self.ok("editChatInviteLink", chat_id=CHANNEL, invite_link=link, creates_join_request=True)
        self.assertEqual((edited["creates_join_request"], "member_limit" in edited, "name" in edited), (True, False, False))
        primary = self.fake.chat_model.primary_link(CHANNEL)
        self.assertEqual(self.fake.user_joins_by_link(11, primary), "joined")
        self.ok("revokeChatInviteLink", chat_id=CHANNEL, invite_link=primary)
        self.assertNotEqual(self.fake.chat_model.primary_link(CHANNEL), primary)
        self.assertEqual(self.join_refused(12, primary), "INVITE_HASH_EXPIRED")


class JoinRequestTests(ChatTestBase):
    def test_a_request_is_an_update_and_waits_for_an_answer(self):
        link = self.ok("createChatInviteLink", chat_id=CHANNEL, creates_join_request=True)
        self.assertEqual(self.fake.user_joins_by_link(21, link["invite_link"], language_code="ru"), "requested")
        self.assertEqual(self.fake.user_joins_by_link(21, link["invite_link"]), "requested")  # still one request
        self.assertEqual(self.fake.members(CHANNEL), [OWNER_ID])
        updates = self.poll()  # chat_join_request is in Telegram's default list
        self.assertEqual(len(updates), 1)
        request = updates[0]["chat_join_request"]
        self.assertEqual((request["chat"]["id"], request["from"]["id"], request["user_chat_id"]), (CHANNEL, 21, 21))
        self.assertEqual(request["from"]["language_code"], "ru")
        self.assertEqual(request["invite_link"]["invite_link"], link["invite_link"])
        self.assertEqual(request["invite_link"]["pending_join_request_count"], 1)
        self.assertTrue(self.ok("approveChatJoinRequest", chat_id=CHANNEL, user_id=21))
        self.assertEqual(self.fake.members(CHANNEL), [21, OWNER_ID])
        self.assertEqual(self.refused("approveChatJoinRequest", chat_id=CHANNEL, user_id=21)[1],
                         "Bad Request: USER_ALREADY_PARTICIPANT")

    def test_decline_and_missing_requests(self):
        link = self.ok("createChatInviteLink", chat_id=CHANNEL, creates_join_request=True)["invite_link"]
        self.fake.user_joins_by_link(22, link)
        self.assertTrue(self.ok("declineChatJoinRequest", chat_id=CHANNEL, user_id=22))
        self.assertEqual(self.fake.members(CHANNEL), [OWNER_ID])
        for method in ("declineChatJoinRequest", "approveChatJoinRequest"):
            self.assertEqual(self.refused(method, chat_id=CHANNEL, user_id=22),
                             (400, "Bad Request: HIDE_REQUESTER_MISSING"))
        self.assertEqual(self.fake.user_joins_by_link(22, link), "requested")  # may ask again

    def test_no_request_update_when_not_allowed(self):
        link = self.ok("createChatInviteLink", chat_id=CHANNEL, creates_join_request=True)["invite_link"]
        self.poll(["message"])
        self.fake.user_joins_by_link(23, link)
        self.assertEqual(self.poll(), [])
        self.assertEqual(self.fake.suppressed_updates, ["chat_join_request"])
        self.assertEqual(self.fake.chat_model.pending_requests(CHANNEL), [23])  # the request itself exists


class ChatMemberUpdateTests(ChatTestBase):
    def test_chat_member_updates_only_when_asked_and_the_setting_is_remembered(self):
        link = self.ok("createChatInviteLink", chat_id=CHANNEL)["invite_link"]
        self.fake.user_joins_by_link(31, link)
        self.assertEqual(self.poll(), [])  # Telegram's default leaves chat_member out
        self.assertEqual(self.fake.suppressed_updates, ["chat_member"])
        self.poll(["message", "chat_member"])
        self.fake.user_leaves(CHANNEL, 31)
        self.fake.user_joins_by_link(32, link)
        updates = self.poll()  # no allowed_updates: the last setting stays
        self.assertEqual([u["chat_member"]["new_chat_member"]["user"]["id"] for u in updates], [31, 32])
        left, joined = (u["chat_member"] for u in updates)
        self.assertEqual((left["old_chat_member"]["status"], left["new_chat_member"]["status"]), ("member", "left"))
        self.assertEqual((joined["old_chat_member"]["status"], joined["new_chat_member"]["status"]), ("left", "member"))
        self.assertEqual(joined["from"]["id"], 32)
        self.assertEqual(joined["invite_link"]["invite_link"], link)
        self.assertEqual(joined["chat"], {"id": CHANNEL, "type": "channel", "title": "Paid channel"})
        self.poll([])  # an empty list goes back to the default
        self.fake.admin_adds(CHANNEL, 33)
        self.assertEqual(self.poll(), [])

    def test_queued_updates_of_kinds_no_longer_allowed_are_not_delivered(self):
        self.poll(["chat_member"])
        self.fake.admin_adds(CHANNEL, 34)
        self.fake.user_sends(77, "hi")
        updates = self.poll(["message"])
        self.assertEqual([list(u)[1] for u in updates], ["message"])

    def test_added_by_an_admin_and_promotion_and_no_updates_when_the_bot_is_not_admin(self):
        self.poll(["chat_member", "my_chat_member"])
        self.fake.admin_adds(CHANNEL, 35)
        self.fake.make_admin(CHANNEL, 35, ["can_invite_users"])
        added, promoted = (u["chat_member"] for u in self.poll())
        self.assertEqual((added["from"]["id"], "invite_link" in added), (OWNER_ID, False))
        self.assertEqual(promoted["new_chat_member"]["status"], "administrator")
        self.assertIs(promoted["new_chat_member"]["can_invite_users"], True)
        self.assertIs(promoted["new_chat_member"]["can_restrict_members"], False)
        self.fake.make_admin(CHANNEL, BOT, ["can_invite_users"])  # the bot loses the ban right
        mine = self.poll()[0]["my_chat_member"]
        self.assertIs(mine["new_chat_member"]["can_restrict_members"], False)
        self.fake.user_leaves(CHANNEL, BOT)
        self.assertEqual(self.poll()[0]["my_chat_member"]["new_chat_member"]["status"], "left")
        self.fake.admin_adds(CHANNEL, 36)
        self.assertEqual(self.poll(), [])  # a bot that is no administrator sees no chat_member


class BanTests(ChatTestBase):
    def test_ban_removes_and_keeps_out_until_unbanned(self):
        self.poll(["chat_member"])
        link = self.ok("createChatInviteLink", chat_id=CHANNEL)["invite_link"]
        self.fake.user_joins_by_link(41, link)
        self.assertTrue(self.ok("banChatMember", chat_id=CHANNEL, user_id=41))
        self.assertEqual(self.fake.member_status(CHANNEL, 41), "kicked")
        self.assertEqual(self.join_refused(41, link), "USER_BANNED_IN_CHANNEL")
        self.assertTrue(self.ok("unbanChatMember", chat_id=CHANNEL, user_id=41, only_if_banned=True))
        self.assertEqual(self.fake.member_status(CHANNEL, 41), "left")
        self.assertEqual(self.fake.user_joins_by_link(41, link), "joined")
        statuses = [(u["chat_member"]["old_chat_member"]["status"], u["chat_member"]["new_chat_member"]["status"])
                    for u in self.poll()]
        self.assertEqual(statuses, [("left", "member"), ("member", "kicked"), ("kicked", "left"), ("left", "member")])
        self.assertEqual(self.fake.bans, [("banChatMember", CHANNEL, 41), ("unbanChatMember", CHANNEL, 41)])

    def test_unban_without_only_if_banned_removes_a_member(self):
        self.fake.admin_adds(CHANNEL, 42)
        self.ok("unbanChatMember", chat_id=CHANNEL, user_id=42, only_if_banned=True)
        self.assertEqual(self.fake.member_status(CHANNEL, 42), "member")
        self.ok("unbanChatMember", chat_id=CHANNEL, user_id=42)
        self.assertEqual(self.fake.member_status(CHANNEL, 42), "left")

    def test_administrators_and_the_owner_cannot_be_banned(self):
        self.fake.admin_adds(CHANNEL, 43)
        self.fake.make_admin(CHANNEL, 43)
        self.assertEqual(self.refused("banChatMember", chat_id=CHANNEL, user_id=43)[1],
                         "Bad Request: user is an administrator of the chat")
        self.assertEqual(self.refused("banChatMember", chat_id=CHANNEL, user_id=OWNER_ID)[1],
                         "Bad Request: can't remove chat owner")
        self.assertEqual(self.fake.members(CHANNEL), [43, OWNER_ID])
        self.assertEqual(self.fake.bans, [])

    def test_a_temporary_ban_ends_on_its_own(self):
        now = int(self.clock.seconds())
        self.ok("banChatMember", chat_id=CHANNEL, user_id=44, until_date=now + 120)
        self.assertEqual(self.ok("getChatMember", chat_id=CHANNEL, user_id=44)["until_date"], now + 120)
        self.clock.advance(120)
        self.assertEqual(self.fake.member_status(CHANNEL, 44), "left")
        self.ok("banChatMember", chat_id=CHANNEL, user_id=45, until_date=now + 10)  # under 30 s: forever
        self.clock.advance(10 * 86400)
        self.assertEqual(self.fake.member_status(CHANNEL, 45), "kicked")


class ReadTests(ChatTestBase):
    def test_get_chat_member_administrators_and_count(self):
        self.fake.add_chat(GROUP, type="supergroup", title="Club", bot_rights=["can_invite_users"])
        me = self.ok("getChatMember", chat_id=GROUP, user_id=BOT)
        self.assertEqual((me["status"], me["can_invite_users"], me["can_restrict_members"]), ("administrator", True, False))
        self.assertIn("can_pin_messages", me)
        self.assertNotIn("can_post_messages", me)
        self.assertEqual(self.ok("getChatMember", chat_id=GROUP, user_id=51), {"status": "left", "user": {
            "id": 51, "is_bot": False, "first_name": "User 51"}})
        self.fake.admin_adds(GROUP, 51)
        self.fake.admin_adds(GROUP, 52)
        self.fake.make_admin(GROUP, 52)
        admins = self.ok("getChatAdministrators", chat_id=GROUP)
        self.assertEqual([(a["user"]["id"], a["status"]) for a in admins], [(52, "administrator"), (OWNER_ID, "creator")])
        self.assertEqual(self.ok("getChatMemberCount", chat_id=GROUP), 4)
        self.assertEqual(self.ok("getChat", chat_id=GROUP)["type"], "supergroup")
        self.fake.add_chat(-1004, bot_status="kicked")
        self.assertEqual(self.refused("getChat", chat_id=-1004)[1], "Bad Request: chat not found")

    def test_channels_given_to_the_constructor_keep_working(self):
        fake = FakeBotAPI(self.clock, channels=[-1005])
        status, body = fake.handle(DEFAULT_TOKEN, "createChatInviteLink", {"chat_id": -1005, "member_limit": 1})
        self.assertEqual((status, body["result"]["member_limit"]), (200, 1))
        self.assertEqual(fake.invite_links[0]["chat_id"], -1005)
        fake.channels.clear()
        self.assertEqual(fake.handle(DEFAULT_TOKEN, "banChatMember", {"chat_id": -1005, "user_id": 1})[0], 400)


class StandaloneChatTests(unittest.TestCase):
    """The chat actions through the process's control API, the methods through BotAPI."""

    def setUp(self):
        self.base = start_fake_process(self, "tests.support.fake_telegram_process", "--no-limits")
        self.api = BotAPI(reactor, DEFAULT_TOKEN, self.base)
        self.addCleanup(self.api.close)

    async def control(self, path, body=None):
        return await fake_control(self.base, path, body)

    @as_deferred
    async def test_join_request_flow_over_http(self):
        self.assertEqual((await self.control("add_chat", {"chat_id": GROUP, "type": "supergroup"}))[0], 200)
        link = await self.api.call("createChatInviteLink", {"chat_id": GROUP, "creates_join_request": True})
        with self.assertRaises(errors.BadRequest):
            await self.api.call("createChatInviteLink", {"chat_id": GROUP, "creates_join_request": True, "member_limit": 1})
        code, body = await self.control("user_joins_by_link", {"user_id": 61, "invite_link": link["invite_link"]})
        self.assertEqual((code, body["result"]), (200, "requested"))
        updates = await self.api.getUpdates(timeout=0, allowed_updates=["chat_join_request", "chat_member"])
        self.assertEqual(updates[0]["chat_join_request"]["from"]["id"], 61)
        self.assertTrue(await self.api.call("approveChatJoinRequest", {"chat_id": GROUP, "user_id": 61}))
        updates = await self.api.getUpdates(offset=updates[-1]["update_id"] + 1, timeout=0)
        self.assertEqual(updates[0]["chat_member"]["new_chat_member"]["status"], "member")
        self.assertEqual((await self.control(f"members?chat_id={GROUP}"))[1], {"members": [61, OWNER_ID], "pending": []})
        code, body = await self.control("user_joins_by_link", {"user_id": 62, "invite_link": "https://t.me/+gone"})
        self.assertEqual((code, body), (400, {"error": "INVITE_HASH_EXPIRED"}))
