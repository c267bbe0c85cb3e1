"""Access to paid chats through the real billing handlers and ledger (SQLite), the bot's
AccessService and the fake Bot API's chats, on a fake clock: expiry with grace from every
chat of the plan, renewal in grace keeps, renewal after removal re-admits with a new link,
leaving and coming back while active, a bot restart between a join request and its answer,
and ``ymds members --audit [--fix]``."""
from __future__ import annotations

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from tests.fakes.access_memory import FakeCaller
from tests.fakes.fake_chats import OWNER_ID
from tests.fakes.fake_telegram import DEFAULT_TOKEN, FakeBotAPI
from tests.support.ledgers import sqlite_url
from tests.support.queues import QueueDown, registry_of
from tests.test_billing_tasks import make_config, note
from tests.test_cli import CLITestCase
from ymds.billing.access_config import paid_chats
from ymds.billing.open import open_ledger
from ymds.billing.tasks import BillingTasks
from ymds.billing.timers import BillingTimers
from ymds.bot.access.wiring import POLLED_UPDATES, AccessService
from ymds.metrics import Registry

T0 = 1_780_000_000.0
DAY = 86400.0
CHANNEL = -1001234567890  # telegram.channel_id: the "year" plan's only chat
GROUP = -1002222222222  # the "month" plan opens both
ADMIN = 1  # telegram.admins


class JoinedQueue:
    """The job queue joined in memory: billing RPCs answered by the real handlers (over the
    wire format); jobs kept until :meth:`drain` runs them on the billing or bot registry."""

    def __init__(self):
        self.registries: dict[str, object] = {}
        self.jobs: list[tuple[str, str, dict]] = []
        self.keys: set[str] = set()
        self.down = False
        self.unhandled: list[tuple[str, str, dict]] = []  # jobs of tasks nobody here runs (messages)

    def enqueue(self, queue, task_name, args, key=None, delay=None):
        if key is not None and key in self.keys:
            return defer.succeed(None)
        if key is not None:
            self.keys.add(key)
        self.jobs.append((queue, task_name, args))
        return defer.succeed(f"job-{len(self.jobs)}")

    def call(self, queue, task_name, args, timeout=10.0):
        if self.down:
            return defer.fail(QueueDown("billing does not answer"))
        return defer.ensureDeferred(self.registries[queue].lookup(task_name)(args))

    async def drain(self, only=None) -> list[tuple[str, str, object]]:
        """Run the jobs of the queues that have a registry (others are dropped)."""
        done = []
        while self.jobs:
            queue, name, args = self.jobs.pop(0)
            handler = self.registries.get(queue) and self.registries[queue].lookup(name)
            if handler:
                done.append((queue, name, await handler(args)))
            else:
                self.unhandled.append((queue, name, args))
        return done


class LifecycleBase(unittest.TestCase):
    def setUp(self):
        self.ledger = open_ledger(sqlite_url(self), reactor)
        self.addCleanup(self.ledger.close)
        self.clock = task.Clock()
        self.clock.advance(T0)
        self.config = make_config(
            telegram={"channel_id": CHANNEL, "admins": [ADMIN], "grace": "1d"},
            plans=[{"id": "month", "title": "1 month", "price": "199.00", "days": 30, "chats": [CHANNEL, GROUP]},
                   {"id": "year", "title": "1 year", "price": "1990.00", "days": 365}])
        self.queue = JoinedQueue()
        self.billing = BillingTasks(self.config, self.ledger, self.queue, self.clock)
        self.timers = BillingTimers(self.config, self.ledger, self.queue, self.clock, self.billing)
        self.queue.registries["billing"] = registry_of(self.billing)
        self.fake = FakeBotAPI(self.clock, enforce_limits=False)
        for chat, kind in ((CHANNEL, "channel"), (GROUP, "supergroup")):
            self.fake.add_chat(chat, type=kind, title=f"Paid {kind}")
        self.metrics = Registry(process_metrics=False)
        self.access = self.start_bot()
        self.offset = None
        return self.ledger.migrate()

    def start_bot(self) -> AccessService:
        """A bot process's access part, its tasks on the bot registry (a restart: call again)."""
        from ymds.queue.registry import TaskRegistry
        from ymds.bot.access.jobs import ACCESS_REMOVE, RemoveMember
        from ymds.jobwire import typed_handler
        access = AccessService(self.config, FakeCaller(self.fake), self.queue, self.clock, paid_chats(self.config),
                               metrics=self.metrics)
        registry = TaskRegistry()
        registry.register(ACCESS_REMOVE, typed_handler(RemoveMember.from_wire, access.remove_member))
        self.queue.registries["bot"] = registry
        return access

    async def cycle(self) -> list[str]:
        """One getUpdates round handed to the AccessService (as the bot's update jobs do),
        then the jobs it caused."""
        params = {"allowed_updates": list(POLLED_UPDATES), "timeout": 0}
        if self.offset is not None:
            params["offset"] = self.offset
        _, body = self.fake.handle(DEFAULT_TOKEN, "getUpdates", params)
        outcomes = []
        for update in body["result"]:
            self.offset = update["update_id"] + 1
            if any(k in update for k in ("chat_member", "chat_join_request", "my_chat_member")):
                outcomes.append(await self.access.handle_update(update))
        await self.queue.drain()
        return outcomes

    async def subscribe(self, user: int, plan: int = 0) -> float:
        """Pay ``plan`` (0: month, both chats; 1: year, the channel) through billing."""
        from tests.support.queues import run_task
        invoice = (await run_task(self.billing, "create_invoices", {"chat_id": user}))["invoices"][plan]
        withdraw = "199.00" if plan == 0 else "1990.00"
        await run_task(self.billing, "apply_payment", {
            "fields": note(f"op-{user}-{self.clock.seconds()}", invoice["label"], withdraw=withdraw),
            "source": "notification"})
        self.queue.jobs = [j for j in self.queue.jobs if j[0] != "bot"]  # notify/grant_access: not run here
        return (await self.ledger.subscriptions.subscription(user)).ends_at

    async def join(self, user: int, *chats: int) -> None:
        """The subscriber's live link to each chat, opened; the requests decided."""
        sub = await self.ledger.subscriptions.subscription(user)
        links, _ = await self.access.invites(user, sub.ends_at)
        for chat, link in links:
            if chat in chats:
                self.assertEqual(self.fake.user_joins_by_link(user, link), "requested")
        await self.cycle()

    async def tick_at(self, when: float) -> dict:
        self.clock.advance(when - self.clock.seconds())
        report = await self.timers.tick()
        await self.queue.drain()
        return report

    def present(self, chat: int) -> list[int]:
        return [u for u in self.fake.members(chat) if u != OWNER_ID]


class GraceTests(LifecycleBase):
    async def test_removed_from_every_chat_of_the_plan_exactly_when_grace_ends(self):
        await self.cycle()
        ends = await self.subscribe(100)
        await self.join(100, CHANNEL, GROUP)
        self.assertEqual((self.present(CHANNEL), self.present(GROUP)), ([100], [100]))
        report = await self.tick_at(ends + 1)
        self.assertEqual((report["expired_subscriptions"], report["access_removals"]), (1, 0))
        await self.cycle()
        self.assertEqual((self.present(CHANNEL), self.present(GROUP)), ([100], [100]))  # in grace: kept
        await self.tick_at(ends + DAY - 1)
        self.assertEqual((self.present(CHANNEL), self.present(GROUP)), ([100], [100]))
        report = await self.tick_at(ends + DAY)
        self.assertEqual(report["access_removals"], 2)
        self.assertEqual((self.present(CHANNEL), self.present(GROUP)), ([], []))
        self.assertEqual(self.metrics.counter("ymds_access_removed", "", ["reason"]).value(reason="expired"), 2)
        await self.cycle()  # the bans and unbans the bot caused: nobody is removed twice
        self.assertEqual(self.metrics.counter("ymds_access_removed", "", ["reason"]).value(reason="expired"), 2)
        self.assertEqual(await self.ledger.access.pending_removals(), [])
        # the live links were revoked: a renewal makes new ones
        self.assertIsNone(await self.ledger.access.live_invite(100, CHANNEL))
        # one owner summary for the burst
        self.clock.advance(61)
        await self.queue.drain()
        self.assertEqual(self.access.alerts_sent, 1)
        [(_, _, alert)] = [j for j in self.queue.unhandled if j[1] == "send"]
        self.assertEqual(alert["chat_id"], ADMIN)
        self.assertIn("Удалены из платных чатов без подписки: 2", alert["text"])
        self.assertIn('ymds_access_removed_total{reason="expired"} 2.0', self.metrics.render())

    async def test_renewal_in_grace_keeps_the_member(self):
        await self.cycle()
        ends = await self.subscribe(100)
        await self.join(100, CHANNEL, GROUP)
        await self.tick_at(ends + 1)
        self.clock.advance(3600)
        new_end = await self.subscribe(100)
        self.assertGreater(new_end, ends + DAY)
        report = await self.tick_at(ends + DAY)
        self.assertEqual(report["access_removals"], 0)
        self.assertEqual((self.present(CHANNEL), self.present(GROUP)), ([100], [100]))
        self.assertEqual(await self.ledger.access.pending_removals(), [])
        self.assertEqual(self.fake.bans, [])

    async def test_renewal_after_removal_re_admits_through_a_new_link(self):
        await self.cycle()
        ends = await self.subscribe(100, plan=1)  # the channel only
        await self.join(100, CHANNEL)
        old = (await self.ledger.access.live_invite(100, CHANNEL)).invite_link
        await self.tick_at(ends + DAY)
        self.assertEqual(self.present(CHANNEL), [])
        await self.cycle()
        await self.subscribe(100, plan=1)
        await self.join(100, CHANNEL)
        self.assertEqual(self.present(CHANNEL), [100])
        self.assertNotEqual((await self.ledger.access.live_invite(100, CHANNEL)).invite_link, old)
        self.assertTrue(self.fake.chat_model.links[old]["is_revoked"])

    async def test_a_year_plan_does_not_open_the_month_plans_group(self):
        await self.cycle()
        await self.subscribe(100, plan=1)
        links, _ = await self.access.invites(100, None)
        self.assertEqual([chat for chat, _ in links], [CHANNEL])
        self.fake.admin_adds(GROUP, 100)
        self.assertEqual(await self.cycle(), ["removed"])
        self.assertEqual(self.present(GROUP), [])


    async def test_an_owner_revoke_removes_from_every_chat_at_once(self):
        await self.cycle()
        await self.subscribe(100)
        await self.join(100, CHANNEL, GROUP)
        await self.ledger.db.run(lambda txn: txn.execute("UPDATE subscriptions SET ends_at = ? WHERE chat_id = 100",
                                                         (self.clock.seconds(),)))
        self.assertEqual(sorted(await self.access.revoke_everywhere(100)), ["removed", "removed"])
        self.assertEqual((self.present(CHANNEL), self.present(GROUP)), ([], []))
        self.assertIsNone(await self.ledger.access.live_invite(100, GROUP))


class DoorTests(LifecycleBase):
    async def test_leaving_and_coming_back_while_active_is_approved(self):
        await self.cycle()
        await self.subscribe(100)
        await self.join(100, CHANNEL)
        self.assertTrue(self.fake.user_leaves(CHANNEL, 100))
        await self.cycle()
        link = (await self.ledger.access.live_invite(100, CHANNEL)).invite_link
        self.assertEqual(self.fake.user_joins_by_link(100, link), "requested")
        self.assertEqual(await self.cycle(), ["approved"])
        self.assertEqual(await self.cycle(), ["kept"])  # the chat_member update of the approval
        self.assertEqual(self.present(CHANNEL), [100])

    async def test_a_leaked_link_and_five_presses(self):
        await self.cycle()
        await self.subscribe(100)
        links = set()
        for _ in range(5):
            found, _ = await self.access.invites(100, None)
            links.add(dict(found)[CHANNEL])
        self.assertEqual(len(links), 1)
        [link] = links
        self.assertEqual(self.fake.user_joins_by_link(200, link), "requested")  # the link, shared
        self.assertEqual(await self.cycle(), ["declined"])
        self.assertEqual(self.present(CHANNEL), [])

    async def test_telegram_admins_opening_a_link_are_approved(self):
        await self.cycle()
        await self.subscribe(100)
        link = dict((await self.access.invites(100, None))[0])[CHANNEL]
        self.assertEqual(self.fake.user_joins_by_link(ADMIN, link), "requested")
        self.assertEqual(await self.cycle(), ["approved"])
        self.assertEqual(await self.cycle(), ["kept"])  # the chat_member update of the approval

    async def test_restart_between_a_join_request_and_its_answer(self):
        """Billing does not answer: the update's handling fails (the job stays in the queue);
        a new bot process handles it again and the request is decided."""
        await self.cycle()
        await self.subscribe(100)
        link = dict((await self.access.invites(100, None))[0])[CHANNEL]
        self.fake.user_joins_by_link(100, link)
        self.fake.user_joins_by_link(200, link)
        _, body = self.fake.handle(DEFAULT_TOKEN, "getUpdates", {"offset": self.offset, "timeout": 0})
        updates = [u for u in body["result"] if "chat_join_request" in u]
        self.assertEqual(len(updates), 2)
        self.queue.down = True
        for update in updates:
            with self.assertRaises(QueueDown):
                await self.access.handle_update(update)
        self.assertEqual(len(self.fake.chat_model.chat(CHANNEL).requests), 2)  # pending
        self.access.stopService()
        self.queue.down = False
        self.access = self.start_bot()  # the restarted process gets the same jobs again
        self.assertEqual([await self.access.handle_update(u) for u in updates], ["approved", "declined"])
        self.assertEqual(self.fake.chat_model.chat(CHANNEL).requests, {})
        self.assertEqual(self.present(CHANNEL), [100])

    async def test_members_seen_are_recorded(self):
        await self.cycle()
        await self.subscribe(100)
        await self.join(100, CHANNEL)
        self.fake.admin_adds(CHANNEL, 300)
        await self.cycle()
        await self.cycle()
        seen = {m.user_id: m.status for m in await self.ledger.access.members(CHANNEL)}
        self.assertEqual(seen[100], "member")
        self.assertIn(seen[300], ("left", "kicked"))


class MembersCommandTests(CLITestCase):
    async def test_members_audit_and_fix(self):
        self.config_path = self.write_config(extra='[telegram]\nchannel_id = -1001234567890\nadmins = [1]\n')
        ledger = await self.ledger()
        now = reactor.seconds()
        await self.pay(ledger, chat_id=100)
        await ledger.access.member_seen(CHANNEL, 100, "member", now)
        await ledger.access.member_seen(CHANNEL, 300, "member", now)  # no subscription
        await ledger.access.member_seen(CHANNEL, 400, "left", now)
        await ledger.access.member_seen(CHANNEL, 2, "administrator", now)
        await ledger.close()
        out, err, code = await self.ymds("members")
        self.assertEqual(code, 0, err)
        self.assertIn("3 member(s) seen", out)
        out, err, code = await self.ymds("members", "--audit", "--json")
        self.assertEqual(code, 3, err)
        import json
        self.assertEqual([(r["user_id"], r["subscription"]) for r in json.loads(out)], [(300, "none")])
        out, err, code = await self.ymds("members", "--audit", "--fix")
        self.assertEqual(code, 3, err)
        self.assertIn("asked the bot to remove 1", err)
        jobs = self.redis.command("XRANGE", f"{self.prefix}:q:bot", "-", "+")
        self.assertEqual(len(jobs), 1)
        self.assertIn(b"access_remove" if isinstance(jobs[0][1][1], bytes) else "access_remove", str(jobs[0][1]))
        out, err, code = await self.ymds("members", "--fix")
        self.assertEqual(code, 1)


class GraceReminderTests(unittest.TestCase):
    """Reminders and the expiry message mention the grace (through the bot's real tasks)."""

    async def test_reminder_and_expiry_mention_the_grace(self):
        from tests.fakes.bot_harness import (make_config as bot_config, new_prefix, shared_redis, start_billing,
                                             start_fake, start_queue)
        from tests.support.queues import run_task
        from ymds.bot.ratelimit import RateLimiter
        from ymds.bot.service import make_bot_service
        from ymds.queue.redis import RedisPool, parse_redis_url
        server = shared_redis()
        fake, url = start_fake(self)
        redis = RedisPool(reactor, parse_redis_url(server.url), name="test:")
        self.addCleanup(redis.close)
        config = bot_config(url, server.url, new_prefix(), telegram={"grace": "1d"})
        queue = await start_queue(self, config)
        await start_billing(self, config, queue)
        bot = make_bot_service(reactor, config, queue, redis=redis, limiter=RateLimiter(reactor, chat_interval=0.01),
                               poll=False, worker=False)
        bot.startService()
        self.addCleanup(bot.stopService)
        for chat, message in ((900, "reminder"), (901, "expired")):
            await run_task(bot.parts.tasks, "notify", {"chat_id": chat, "message": message, "key": f"r{chat}",
                                                       "params": {"plan": "month", "ends_at": "2030-01-01T00:00:00Z"}})
            self.assertIn("stay in the chats for 1 d more", fake.messages_to(chat)[0]["visible"])


class AccessConfigTests(unittest.TestCase):
    def test_grace_and_chats(self):
        config = make_config(telegram={"grace": "12h"},
                             plans=[{"id": "m", "title": "M", "price": "1.00", "days": 1, "chats": [GROUP, "-100777"]}])
        self.assertEqual((config.telegram.grace, config.plans[0].chats), (43200, (GROUP, -100777)))
        self.assertEqual(make_config().telegram.grace, 0)
        self.assertEqual(paid_chats(config), (CHANNEL, GROUP, -100777))

    def test_bad_values_say_what_to_write(self):
        from ymds.config_values import ConfigError
        for telegram, plans, key in (
                ({"grace": "soon"}, None, "telegram.grace"),
                ({"grace": "91d"}, None, "telegram.grace"),
                ({"grace": True}, None, "telegram.grace"),
                ({}, [{"id": "m", "title": "M", "price": "1.00", "days": 1, "chats": [12345]}], "plans[0].chats"),
                ({}, [{"id": "m", "title": "M", "price": "1.00", "days": 1, "chats": "@channel"}], "plans[0].chats")):
            sections = {"telegram": telegram, **({"plans": plans} if plans else {})}
            with self.assertRaises(ConfigError) as caught:
                make_config(**sections)
            self.assertEqual(caught.exception.key, key)


class RightsTests(LifecycleBase):
    async def test_start_up_check_names_the_missing_right(self):
        self.fake.add_chat(GROUP, type="supergroup", title="Paid supergroup", bot_rights=["can_invite_users"])
        lines = []
        from twisted.logger import globalLogPublisher

        def observe(event):
            if event.get("log_format", "").startswith("access: {line}"):
                lines.append(event["line"])
        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        self.assertEqual(await self.access.check_rights(), 1)
        self.assertEqual(len(lines), 1)
        self.assertIn(str(GROUP), lines[0])
        self.assertIn("can_restrict_members", lines[0])

    async def test_check_command_probe(self):
        """``twistd ymds --check``'s probe (blocking HTTP, so run in a thread here)."""
        from twisted.internet.threads import deferToThread
        from tests.fakes.fake_telegram import make_site
        from ymds.bot.access.probe import probe_rights
        fake = FakeBotAPI(reactor, enforce_limits=False)
        fake.add_chat(CHANNEL, type="channel", title="Paid")
        fake.add_chat(GROUP, type="supergroup", title="Paid", bot_status="member")
        port = reactor.listenTCP(0, make_site(fake), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.addCleanup(fake.close)
        config = make_config(telegram={"token": DEFAULT_TOKEN, "api_url": f"http://127.0.0.1:{port.getHost().port}"},
                             plans=[{"id": "m", "title": "M", "price": "1.00", "days": 1, "chats": [CHANNEL, GROUP]}])
        ok, lines = await deferToThread(probe_rights, config)
        self.assertFalse(ok)
        self.assertEqual(len(lines), 1)
        self.assertIn(f"Chat {GROUP}: make the bot an administrator", lines[0])
