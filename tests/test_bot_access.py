"""Access to paid chats against the fake Bot API's chats: join requests bound to the payer,
one live link per subscriber, intruders removed, one owner summary per burst, rights check."""
from __future__ import annotations

from twisted.internet import defer, task
from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.fakes.access_memory import FakeCaller, MemoryInviteStore, MemoryPolicy
from tests.fakes.bot_harness import as_deferred, start_fake
from tests.fakes.fake_chats import OWNER_ID
from tests.fakes.fake_telegram import BOT_USER, DEFAULT_TOKEN, FakeBotAPI
from ymds.bot.access import (ALLOWED_UPDATES, BotCalls, DoorKeeper, InviteIssuer, PressLimiter, PressTooSoon,
                             RemovalDigest, check_bot_rights)
from ymds.bot.api import BotAPI

CHANNEL = -1001111111111
GROUP = -1002222222222
FREE = -1003333333333  # a chat the bot is in that nobody pays for
OWNER_ADMIN = 9001  # in telegram.admins
DAY = 86400


class AccessTestBase(unittest.TestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)
        self.fake = FakeBotAPI(self.clock, enforce_limits=False)
        for chat, kind in ((CHANNEL, "channel"), (GROUP, "supergroup"), (FREE, "channel")):
            self.fake.add_chat(chat, type=kind, title=f"Chat {kind}")
        self.api = BotCalls(FakeCaller(self.fake))
        self.policy = MemoryPolicy(admins=[OWNER_ADMIN])
        self.alerts: list[str] = []
        self.removals: list[str] = []
        self.digest = RemovalDigest(self.clock, self.alert, language="en", window=60)
        self.keeper = DoorKeeper(self.api, self.policy, [CHANNEL, GROUP], self.clock, self.digest,
                                 count_removal=self.removals.append, alert=self.alert, language="en")
        self.issuer = InviteIssuer(self.api, MemoryInviteStore(), self.clock, min_validity=600)
        self.offset = None
        # The bot's poller asks for what the door needs (and messages, as today).
        self.outcomes: list[str] = []

    async def alert(self, text: str) -> None:
        self.alerts.append(text)

    async def cycle(self) -> list[str]:
        """One getUpdates round handled by the DoorKeeper, as the bot's poller would."""
        params = {"allowed_updates": ["message", "callback_query", *ALLOWED_UPDATES], "timeout": 0}
        if self.offset is not None:
            params["offset"] = self.offset
        status, body = self.fake.handle(DEFAULT_TOKEN, "getUpdates", params)
        outcomes = []
        for update in body["result"]:
            outcomes.append(await self.keeper.handle(update))
            self.offset = update["update_id"] + 1
        self.outcomes += outcomes
        return outcomes

    async def link_for(self, user_id: int, chat_id: int = CHANNEL) -> str:
        invite, _ = await self.issuer.invite(user_id, chat_id, int(self.clock.seconds()) + 2 * DAY)
        return invite.invite_link

    def live_links(self, chat_id: int = CHANNEL) -> list[str]:
        return [link["invite_link"] for link in self.fake.invite_links
                if link["chat_id"] == chat_id and not link["is_revoked"] and not link["is_primary"]]


class JoinRequestTests(AccessTestBase):
    @as_deferred
    async def test_a_leaked_link_lets_only_the_subscriber_in(self):
        await self.cycle()  # the poller's first call names allowed_updates
        self.policy.subscribe(1, CHANNEL)
        link = await self.link_for(1)
        self.assertTrue(self.fake.chat_model.links[link]["creates_join_request"])
        self.assertEqual(self.fake.user_joins_by_link(2, link, language_code="ru"), "requested")  # the stranger
        self.assertEqual(await self.cycle(), ["declined"])
        self.assertEqual(self.fake.user_joins_by_link(1, link), "requested")
        self.assertEqual(await self.cycle(), ["approved"])
        self.assertEqual(await self.cycle(), ["kept"])  # the chat_member update of the approval
        self.assertEqual(self.fake.members(CHANNEL), [1, OWNER_ID])
        told = self.fake.messages_to(2)
        self.assertEqual(len(told), 1)
        self.assertIn("подписк", told[0]["visible"])
        self.assertEqual(told[0]["reply_markup"]["inline_keyboard"][0][0]["callback_data"], "subscribe")
        self.assertEqual(self.fake.chat_model.pending_requests(CHANNEL), [])
        self.assertEqual(self.removals, [])

    @as_deferred
    async def test_a_subscriber_who_leaves_and_comes_back_is_approved_again(self):
        await self.cycle()
        self.policy.subscribe(3, CHANNEL, GROUP)
        link = await self.link_for(3)
        self.fake.user_joins_by_link(3, link)
        self.assertEqual(await self.cycle(), ["approved"])
        self.fake.user_leaves(CHANNEL, 3)
        self.fake.user_joins_by_link(3, link)
        self.assertEqual(await self.cycle(), ["kept", "ignored", "approved"])  # joined, left, asked again
        self.assertIn(3, self.fake.members(CHANNEL))

    @as_deferred
    async def test_a_request_survives_a_failed_decision_and_is_decided_when_handed_over_again(self):
        await self.cycle()
        self.policy.subscribe(4, CHANNEL)
        link = await self.link_for(4)
        self.fake.user_joins_by_link(4, link)
        self.policy.failing = True
        with self.assertRaises(ConnectionError):
            await self.cycle()
        self.assertEqual(self.fake.chat_model.pending_requests(CHANNEL), [4])  # not answered, not confirmed
        self.policy.failing = False
        self.assertEqual(await self.cycle(), ["approved"])
        # An answer given twice (the bot died after answering) is not an error.
        self.assertEqual(await self.keeper.on_join_request({"chat": {"id": CHANNEL}, "from": {"id": 4}}), "approved")

    @as_deferred
    async def test_requests_to_chats_nobody_pays_for_are_left_alone(self):
        await self.cycle()
        link = self.fake.handle(DEFAULT_TOKEN, "createChatInviteLink", {"chat_id": FREE, "creates_join_request": True})
        self.fake.user_joins_by_link(5, link[1]["result"]["invite_link"])
        self.assertEqual(await self.cycle(), ["ignored"])
        self.assertEqual(self.fake.chat_model.pending_requests(FREE), [5])


class InviteTests(AccessTestBase):
    @as_deferred
    async def test_five_presses_give_one_live_link(self):
        self.policy.subscribe(10, CHANNEL)
        links = {await self.link_for(10) for _ in range(5)}
        self.assertEqual(len(links), 1)
        self.assertEqual(self.live_links(), list(links))

    def test_presses_at_once_in_one_process_make_one_link(self):
        self.api = BotCalls(FakeCaller(self.fake, self.clock, delay=0.5))  # every call takes a while
        self.issuer = InviteIssuer(self.api, MemoryInviteStore(), self.clock)
        pressed = defer.gatherResults([defer.Deferred.fromCoroutine(self.link_for(11)) for _ in range(5)])
        self.clock.pump([0.5] * 10)
        self.assertEqual(len(set(self.successResultOf(pressed))), 1)
        self.assertEqual(len(self.fake.calls_of("createChatInviteLink")), 1)

    def test_presses_at_once_in_two_processes_leave_one_live_link(self):
        store = MemoryInviteStore()  # the ledger, shared
        slow = BotCalls(FakeCaller(self.fake, self.clock, delay=0.5))
        issuers = [InviteIssuer(slow, store, self.clock), InviteIssuer(slow, store, self.clock)]
        pressed = defer.gatherResults([defer.Deferred.fromCoroutine(issuer.invite(12, CHANNEL, 1_700_100_000))
                                       for issuer in issuers])
        self.clock.pump([0.5] * 10)
        (first, _), (second, _) = self.successResultOf(pressed)
        self.assertEqual(first, second)
        self.assertEqual(self.live_links(), [first.invite_link])  # the loser revoked its own
        self.assertEqual(len(self.fake.calls_of("createChatInviteLink")), 2)

    @as_deferred
    async def test_a_link_about_to_expire_is_revoked_before_a_new_one_is_made(self):
        first = await self.link_for(12)
        self.clock.advance(2 * DAY - 599)  # less than min_validity left
        second = await self.link_for(12)
        self.assertNotEqual(first, second)
        self.assertEqual(self.live_links(), [second])
        methods = [name for name, _ in self.fake.calls if name.endswith("ChatInviteLink")]
        self.assertEqual(methods, ["createChatInviteLink", "revokeChatInviteLink", "createChatInviteLink"])
        self.assertEqual(self.fake.user_joins_by_link(13, second), "requested")
        self.assertNotEqual(await self.link_for(12, GROUP), second)  # one per chat

    @as_deferred
    async def test_the_button_is_rate_limited(self):
        self.issuer = InviteIssuer(self.api, MemoryInviteStore(), self.clock,
                                   limiter=PressLimiter(self.clock, presses=3, period=60))
        link = await self.link_for(14)
        await self.link_for(14)
        await self.link_for(14)
        with self.assertRaises(PressTooSoon) as caught:
            await self.link_for(14)
        self.assertEqual(caught.exception.retry_after, 60)
        await self.link_for(15)  # others are not held up
        self.clock.advance(60)
        self.assertEqual(await self.link_for(14), link)


class DoorTests(AccessTestBase):
    @as_deferred
    async def test_added_by_an_admin_or_through_an_old_link_is_removed_within_one_cycle(self):
        await self.cycle()
        self.fake.admin_adds(CHANNEL, 20)
        self.fake.user_joins_by_link(21, self.fake.chat_model.primary_link(GROUP))
        self.assertEqual(await self.cycle(), ["removed", "removed"])
        self.assertEqual(self.fake.members(CHANNEL), [OWNER_ID])
        self.assertEqual(self.fake.members(GROUP), [OWNER_ID])
        self.assertEqual(self.removals, ["added", "link"])
        # ban then unban: they may come back after paying
        self.assertEqual(self.fake.member_status(CHANNEL, 20), "left")
        self.assertEqual(self.fake.bans[:2], [("banChatMember", CHANNEL, 20), ("unbanChatMember", CHANNEL, 20)])
        self.assertEqual(await self.cycle(), ["ignored"] * 4)  # our own ban and unban come back as updates
        self.policy.subscribe(20, CHANNEL)
        self.fake.user_joins_by_link(20, await self.link_for(20))
        self.assertEqual(await self.cycle(), ["approved"])
        self.assertEqual(await self.cycle(), ["kept"])

    @as_deferred
    async def test_administrators_the_bot_and_telegram_admins_are_never_removed(self):
        await self.cycle()
        self.fake.admin_adds(CHANNEL, OWNER_ADMIN)
        self.fake.make_admin(CHANNEL, 22)  # a chat administrator, not a subscriber
        self.fake.admin_adds(GROUP, 23)
        self.fake.make_admin(GROUP, 23)  # promoted before the door got to the add: the ban is refused
        self.fake.make_admin(CHANNEL, BOT_USER["id"])  # the bot's own change (my_chat_member)
        self.assertEqual(await self.cycle(), ["kept", "kept", "kept", "ignored", "kept"])
        self.assertEqual(self.fake.members(CHANNEL), [22, OWNER_ID, OWNER_ADMIN])
        self.assertEqual(self.fake.members(GROUP), [23, OWNER_ID])
        self.assertEqual(self.removals, [])
        self.assertEqual(self.fake.bans, [])

    @as_deferred
    async def test_a_member_promoted_before_the_removal_is_kept(self):
        await self.cycle()
        self.fake.admin_adds(CHANNEL, 24)
        self.fake.make_admin(CHANNEL, 24)
        outcome = await self.keeper.remove(CHANNEL, "Chat", 24, "added")
        self.assertEqual(outcome, "kept")
        self.assertIn(24, self.fake.members(CHANNEL))

    @as_deferred
    async def test_other_chats_are_not_guarded(self):
        await self.cycle()
        self.fake.admin_adds(FREE, 25)
        self.assertEqual(await self.cycle(), ["ignored"])
        self.assertIn(25, self.fake.members(FREE))


class LoadTests(AccessTestBase):
    @as_deferred
    async def test_200_subscribers_and_50_intruders_at_once_leave_exactly_the_200(self):
        await self.cycle()
        subscribers, intruders = range(2000, 2200), range(5000, 5050)
        links = []
        for user in subscribers:
            self.policy.subscribe(user, CHANNEL)
            links.append(await self.link_for(user))
        old_link = self.fake.chat_model.primary_link(CHANNEL)
        for i, user in enumerate(intruders):  # leaked links, the old primary link, added by hand
            if i % 3 == 0:
                self.assertEqual(self.fake.user_joins_by_link(user, links[i]), "requested")
            elif i % 3 == 1:
                self.fake.user_joins_by_link(user, old_link)
            else:
                self.fake.admin_adds(CHANNEL, user)
        for user, link in zip(subscribers, links):
            self.fake.user_joins_by_link(user, link)
        while await self.cycle():
            pass
        self.assertEqual(self.fake.members(CHANNEL), sorted([*subscribers, OWNER_ID]))
        self.assertEqual(self.fake.chat_model.pending_requests(CHANNEL), [])
        self.assertEqual(len(self.removals), 33)  # the other 17 were declined, never in
        self.clock.advance(60)
        self.assertEqual(len(self.alerts), 1)


class DigestTests(AccessTestBase):
    def test_a_removal_reported_after_stop_arms_no_timer(self):
        """A job still finishing while the service stops may report a removal: no timer may
        outlive the service (it left the reactor dirty)."""
        clock = Clock()
        digest = RemovalDigest(clock, self._noop_alert, window=60)
        digest.removed(CHANNEL, "channel", "added")
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        digest.stop()
        self.assertEqual(clock.getDelayedCalls(), [])
        digest.removed(CHANNEL, "channel", "expired")
        digest.failed(CHANNEL, "channel")
        self.assertEqual(clock.getDelayedCalls(), [])

    async def _noop_alert(self, text):
        pass

    @as_deferred
    async def test_a_burst_gives_the_owner_one_summary(self):
        await self.cycle()
        for user in range(30, 35):
            self.fake.admin_adds(CHANNEL, user)
        self.fake.user_joins_by_link(35, self.fake.chat_model.primary_link(GROUP))
        await self.cycle()
        self.assertEqual(self.removals, ["added"] * 5 + ["link"])
        self.assertEqual(self.alerts, [])
        self.clock.advance(59)
        self.assertEqual(self.alerts, [])
        self.clock.advance(1)
        self.assertEqual(len(self.alerts), 1)
        self.assertIn("Removed from paid chats without a subscription: 6.", self.alerts[0])
        self.assertIn("Chat channel: 5 (added by hand 5)", self.alerts[0])
        self.assertIn("Chat supergroup: 1 (by link 1)", self.alerts[0])
        self.fake.admin_adds(CHANNEL, 36)  # a later one starts a new summary
        await self.cycle()
        self.clock.advance(60)
        self.assertEqual(len(self.alerts), 2)
        self.assertIn(": 1.", self.alerts[1])

    @as_deferred
    async def test_removal_when_a_subscription_ended_from_every_chat_of_the_plan(self):
        await self.cycle()
        self.policy.subscribe(38, CHANNEL, GROUP)
        for chat in (CHANNEL, GROUP):
            self.fake.user_joins_by_link(38, await self.link_for(38, chat))
        await self.cycle()
        self.policy.expire(38)
        for chat in (CHANNEL, GROUP):
            self.assertEqual(await self.keeper.remove(chat, f"Chat {chat}", 38, "expired"), "removed")
            self.assertEqual(self.fake.member_status(chat, 38), "left")
        # the joins' own updates come after the removals: nobody is removed or counted twice
        self.assertEqual(await self.cycle(), ["gone", "gone"] + ["ignored"] * 4)
        self.clock.advance(60)
        self.assertEqual(len(self.alerts), 1)
        self.assertIn("subscription ended 1", self.alerts[0])

    @as_deferred
    async def test_removals_the_bot_cannot_make_are_summed_up_too(self):
        self.fake.make_admin(CHANNEL, BOT_USER["id"], ["can_invite_users"])
        await self.cycle()
        self.alerts.clear()
        self.fake.admin_adds(CHANNEL, 37)
        self.assertEqual(await self.cycle(), ["failed"])
        self.clock.advance(60)
        self.assertEqual(len(self.alerts), 1)
        self.assertIn("Could not remove: 1", self.alerts[0])
        self.assertEqual(self.removals, [])


class RightsTests(AccessTestBase):
    @as_deferred
    async def test_one_line_per_problem_naming_the_chat_and_the_right(self):
        self.fake.add_chat(-1004, bot_rights=["can_invite_users"])
        self.fake.add_chat(-1005, bot_status="member")
        self.fake.add_chat(-1006, bot_status="left")
        problems = await check_bot_rights(self.api, [CHANNEL, -1004, -1005, -1006, -1007])
        self.assertEqual([(p.chat_id, p.kind, p.right) for p in problems],
                         [(-1004, "missing_right", "can_restrict_members"), (-1005, "not_admin", ""),
                          (-1006, "unseen", ""), (-1007, "unseen", "")])
        line = problems[0].line()
        self.assertEqual(line.count("\n"), 0)
        self.assertIn("-1004", line)
        self.assertIn("Ban users", line)
        self.assertIn("Блокировка пользователей", line)
        self.assertEqual(await check_bot_rights(self.api, [CHANNEL, GROUP]), [])

    @as_deferred
    async def test_the_owner_is_told_when_the_bot_loses_a_right(self):
        await self.cycle()
        self.fake.make_admin(GROUP, BOT_USER["id"], ["can_restrict_members"])
        self.assertEqual(await self.cycle(), ["failed"])
        self.assertEqual(len(self.alerts), 1)
        self.assertIn("can_invite_users", self.alerts[0])


class OverHTTPTests(unittest.TestCase):
    """BotCalls over the real client and the fake on loopback: the parameters survive JSON."""

    @as_deferred
    async def test_join_request_flow(self):
        from twisted.internet import reactor
        fake, url = start_fake(self, channels=[], enforce_limits=False)
        fake.add_chat(CHANNEL)
        client = BotAPI(reactor, DEFAULT_TOKEN, url)
        self.addCleanup(client.close)
        api = BotCalls(client)
        policy = MemoryPolicy()
        policy.subscribe(40, CHANNEL)
        digest = RemovalDigest(reactor, self._alert, window=60)
        self.addCleanup(digest.stop)
        keeper = DoorKeeper(api, policy, [CHANNEL], reactor, digest)
        issuer = InviteIssuer(api, MemoryInviteStore(), reactor)
        invite, reused = await issuer.invite(40, CHANNEL, int(reactor.seconds()) + DAY)
        self.assertFalse(reused)
        await client.getUpdates(timeout=0, allowed_updates=list(ALLOWED_UPDATES))
        fake.user_joins_by_link(41, invite.invite_link)
        fake.user_joins_by_link(40, invite.invite_link)
        outcomes = [await keeper.handle(u) for u in await client.getUpdates(timeout=0)]
        self.assertEqual(outcomes, ["declined", "approved"])
        self.assertEqual(fake.members(CHANNEL), [40, OWNER_ID])
        self.assertEqual(await check_bot_rights(api, [CHANNEL]), [])

    async def _alert(self, text):
        pass
