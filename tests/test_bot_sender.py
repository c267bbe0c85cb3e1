"""Sending: dedup, flood control, blocked users, refused and slow sends, the bot queue's
tasks (notify, notify_admins, grant_access, revoke_access) against the fake Bot API."""
from __future__ import annotations

import json
from decimal import Decimal

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from tests.fakes.bot_harness import (ADMIN, CHANNEL, as_deferred, make_config, pause, start_billing, start_queue,
                                     start_world, wait_until)
from ymds.bot.ratelimit import RateLimiter
from ymds.bot.service import make_bot_service
from tests.support.queues import run_task
from ymds.queue.errors import PermanentJobError

PAID = {"amount": Decimal("199.00"), "received": Decimal("193.03"), "plan": "year", "plan_title": "1 year <best>",
        "price": Decimal("1990.00"), "operation_id": "op-1", "label": "abcdefgh12345678",
        "ends_at": "2026-12-26T10:00:00+00:00"}


class SenderTestBase(unittest.TestCase):
    channel = CHANNEL
    language = "en"

    def setUp(self):
        start_world(self)
        self.config = make_config(self.url, self.redis_server.url, self.prefix, channel=self.channel,
                                  language=self.language)

    async def bot(self, limiter=None, worker=False, **kw):
        self.queue = await start_queue(self, self.config)
        self.billing = await start_billing(self, self.config, self.queue)
        limiter = limiter or RateLimiter(reactor, chat_interval=0.01)
        service = make_bot_service(reactor, self.config, self.queue, redis=self.redis, limiter=limiter,
                                   poll=False, worker=worker, **kw)
        service.startService()
        self.addCleanup(service.stopService)
        self.parts = service.parts
        self.tasks = service.parts.tasks
        return service

    def stream(self, queue: str) -> list[dict]:
        entries = self.redis_server.command("XRANGE", f"{self.prefix}:q:{queue}", "-", "+")
        jobs = []
        for _, fields in entries:
            values = dict(zip(fields[::2], fields[1::2]))
            jobs.append(json.loads(values["j"]))
        return jobs


class DedupTests(SenderTestBase):
    @as_deferred
    async def test_a_redelivered_job_does_not_send_twice(self):
        await self.bot()
        args = {"chat_id": 501, "message": "payment_confirmed", "params": PAID}
        first = await run_task(self.tasks, "notify", args)
        again = await run_task(self.tasks, "notify", dict(args))  # what a redelivery runs: the same args
        self.assertEqual(first, {"outcome": "sent"})
        self.assertEqual(again, {"outcome": "duplicate"})
        self.assertEqual(len(self.fake.messages_to(501)), 1)
        # An explicit key wins over the content.
        await run_task(self.tasks, "send", {"chat_id": 501, "text": "one", "key": "k1"})
        await run_task(self.tasks, "send", {"chat_id": 501, "text": "other text, same key", "key": "k1"})
        self.assertEqual(len(self.fake.messages_to(501)), 2)

    @as_deferred
    async def test_redelivery_through_the_real_queue(self):
        await self.bot(worker=True)
        args = {"chat_id": 502, "message": "reminder", "params": {"plan": "month", "ends_at": "2026-12-01T00:00:00Z"}}
        # Two deliveries of one job look, to the handler, like the same args twice.
        await self.queue.enqueue("bot", "notify", args)
        await self.queue.enqueue("bot", "notify", args)
        await wait_until(lambda: len(self.fake.messages_to(502)) >= 1)
        await wait_until(lambda: self.redis_server.command("XLEN", f"{self.prefix}:q:bot") == 0, what="both jobs acked")
        self.assertEqual(len(self.fake.messages_to(502)), 1)
        self.assertIn("2026-12-01", self.fake.messages_to(502)[0]["text"])

    @as_deferred
    async def test_sent_record_is_written_after_the_send(self):
        await self.bot()
        self.fake.fail_next("sendMessage", 500)
        with self.assertRaises(Exception):
            await run_task(self.tasks, "send", {"chat_id": 503, "text": "x", "key": "after"})
        self.assertFalse(await self.parts.store.was_sent("after"))
        self.assertEqual(await run_task(self.tasks, "send", {"chat_id": 503, "text": "x", "key": "after"}), {"outcome": "sent"})
        self.assertTrue(await self.parts.store.was_sent("after"))


class FaultTests(SenderTestBase):
    @as_deferred
    async def test_flood_control_waits_retry_after_then_sends(self):
        clock = task.Clock()
        clock.advance(5000)
        await self.bot(limiter=RateLimiter(clock))
        self.fake.fail_next("sendMessage", 429, retry_after=3)
        sending = defer.Deferred.fromCoroutine(run_task(self.tasks, "send", {"chat_id": 510, "text": "hello", "key": "f1"}))
        other = defer.Deferred.fromCoroutine(run_task(self.tasks, "send", {"chat_id": 511, "text": "hello", "key": "f2"}))
        await wait_until(lambda: len(self.fake.calls_of("sendMessage")) == 1)
        await wait_until(lambda: self.parts.limiter.paused_until == 5003)
        clock.advance(2.99)
        await pause(0.1)
        self.assertEqual(len(self.fake.calls_of("sendMessage")), 1)  # everyone waits, not just 510
        clock.advance(0.01)
        await wait_until(lambda: len(self.fake.sent) == 1)
        clock.advance(1 / 30)
        await wait_until(lambda: len(self.fake.sent) == 2)
        self.assertEqual(await sending, {"outcome": "sent"})
        self.assertEqual(await other, {"outcome": "sent"})
        self.assertEqual(self.parts.sender.counters["flood_waits"], 1)

    @as_deferred
    async def test_blocked_user_marks_the_chat_and_stops_sending(self):
        await self.bot()
        self.fake.block_chat(520)
        self.assertEqual(await run_task(self.tasks, "notify", {"chat_id": 520, "message": "expired", "params": {"plan": "month"}}),
                         {"outcome": "blocked"})
        ledger = self.billing.tasks.ledger
        await wait_until(lambda: self.redis_server.command("XLEN", f"{self.prefix}:q:billing") == 0,
                         what="billing handled mark_blocked")
        self.assertTrue(await ledger.subscriptions.is_blocked(520))
        self.assertTrue(await self.parts.store.is_blocked(520))
        calls = len(self.fake.calls_of("sendMessage"))
        self.assertEqual(await run_task(self.tasks, "send", {"chat_id": 520, "text": "more", "key": "b2"}), {"outcome": "blocked"})
        self.assertEqual(len(self.fake.calls_of("sendMessage")), calls)
        # The user unblocks the bot and writes: messages flow again.
        self.fake.unblock_chat(520)
        update = self.fake.user_sends(520, "/help")
        await self.parts.handlers.handle(update)
        self.assertFalse(await self.parts.store.is_blocked(520))
        self.assertEqual(len(self.fake.messages_to(520)), 1)

    @as_deferred
    async def test_refused_messages(self):
        await self.bot()
        self.fake.forget_chat(530)
        self.assertEqual(await run_task(self.tasks, "send", {"chat_id": 530, "text": "x", "key": "r1"}), {"outcome": "rejected"})
        with self.assertRaises(PermanentJobError):
            await run_task(self.tasks, "send", {"chat_id": 531, "text": "<b>broken", "key": "r2"})
        for bad in ({"chat_id": "531", "text": "x"}, {"chat_id": 531, "text": ""}, {"chat_id": True, "text": "x"},
                    {"chat_id": 531, "text": "x" * 5000}, {"chat_id": 531, "text": "x", "buttons": "no"}):
            with self.assertRaises(PermanentJobError, msg=repr(bad)):
                await run_task(self.tasks, "send", bad)
        for bad in ({"chat_id": 1, "message": "surprise"}, {"chat_id": 1, "message": "expired", "params": []}):
            with self.assertRaises(PermanentJobError):
                await run_task(self.tasks, "notify", bad)
        with self.assertRaises(PermanentJobError):
            await run_task(self.tasks, "notify_admins", {"message": "nonsense"})

    @as_deferred
    async def test_server_error_is_retried_by_the_queue(self):
        await self.bot(worker=True)
        self.fake.fail_next("sendMessage", 500, times=2)
        await self.queue.enqueue("bot", "send", {"chat_id": 540, "text": "eventually", "key": "s1"})
        await wait_until(lambda: len(self.fake.messages_to(540)) == 1)
        await wait_until(lambda: self.redis_server.command("XLEN", f"{self.prefix}:q:bot") == 0)
        self.assertEqual(len(self.fake.messages_to(540)), 1)
        self.assertEqual(len(self.fake.calls_of("sendMessage")), 3)

    @as_deferred
    async def test_slow_answers_do_not_hold_up_other_chats(self):
        await self.bot(worker=True)
        self.fake.slow("sendMessage", 1.0)
        for chat in range(550, 555):
            await self.queue.enqueue("bot", "send", {"chat_id": chat, "text": f"to {chat}", "key": f"slow{chat}"})
        await wait_until(lambda: len(self.fake.calls_of("sendMessage")) == 5, what="all five requests made while slow")
        self.assertEqual(len(self.fake.sent), 5)
        await wait_until(lambda: self.redis_server.command("XLEN", f"{self.prefix}:q:bot") == 0)
        self.assertEqual(sorted(m["chat_id"] for m in self.fake.sent), list(range(550, 555)))

    @as_deferred
    async def test_a_send_that_times_out_is_sent_again(self):
        """The documented window: Telegram got it but we never heard back, so the queue
        retries and the user sees it twice (at-least-once rather than lost)."""
        await self.bot(worker=True)
        self.parts.api._timeout = 0.3
        self.fake.slow("sendMessage", 2.0)
        await self.queue.enqueue("bot", "send", {"chat_id": 560, "text": "ambiguous", "key": "t1"})
        await wait_until(lambda: len(self.fake.calls_of("sendMessage")) == 1)
        self.fake.slow("sendMessage", 0)
        await wait_until(lambda: len(self.fake.messages_to(560)) == 2, what="the retry")
        await wait_until(lambda: self.redis_server.command("EXISTS", f"{self.prefix}:bot:sent:t1") == 1, what="recorded")
        await pause(0.5)
        self.assertEqual(len(self.fake.messages_to(560)), 2)


class NotifyTests(SenderTestBase):
    @as_deferred
    async def test_payment_confirmation_in_the_users_language(self):
        await self.bot()
        await run_task(self.tasks, "notify", {"chat_id": 600, "message": "payment_confirmed", "params": PAID})
        await self.parts.store.set_language(601, "ru")
        await run_task(self.tasks, "notify", {"chat_id": 601, "message": "payment_confirmed", "params": PAID})
        en, ru = self.fake.messages_to(600)[0], self.fake.messages_to(601)[0]
        self.assertIn("1 year <best>", en["visible"])
        self.assertIn("&lt;best&gt;", en["text"])
        self.assertIn("2026-12-26", en["visible"])
        self.assertIn("199.00", en["visible"])
        self.assertIn("Оплата получена", ru["visible"])
        self.assertIn("26.12.2026", ru["visible"])
        self.assertIn("199,00", ru["visible"])

    @as_deferred
    async def test_every_notification_renders(self):
        await self.bot()
        params = {"payment_underpaid": {"amount": Decimal("100.00"), "price": Decimal("199.00"), "plan": "month"},
                  "payment_held": {"amount": "199.00", "plan": "month"},
                  "reminder": {"plan": "month", "ends_at": "2026-12-01T00:00:00+00:00", "days_left": 3},
                  "expired": {"plan": "month", "ends_at": "2026-12-01T00:00:00+00:00"},
                  "invite": {"link": "https://t.me/+abc", "expires_at": "2026-12-01T00:00:00Z"}}
        for lang in ("en", "ru"):
            chat = 610 if lang == "en" else 611
            await self.parts.store.set_language(chat, lang)
            for message, p in params.items():
                self.assertEqual(await run_task(self.tasks, "notify", {"chat_id": chat, "message": message, "params": p}),
                                 {"outcome": "sent"})
            self.assertEqual(len(self.fake.messages_to(chat)), len(params))
        en = [m["visible"] for m in self.fake.messages_to(610)]
        self.assertIn("100.00", en[0])
        self.assertIn("199.00", en[0])
        self.assertIn("199.00", en[1])
        self.assertIn("2026-12-01", en[2])
        self.assertIn("1 month", en[3])
        self.assertIn("2026-12-01", en[4])
        for message in self.fake.messages_to(610)[2:4]:  # reminder and expiry carry renew buttons
            self.assertEqual(len(message["reply_markup"]["inline_keyboard"]), 2)
        self.assertEqual(self.fake.messages_to(611)[4]["reply_markup"]["inline_keyboard"][0][0]["url"], "https://t.me/+abc")

    @as_deferred
    async def test_owner_alerts_escape_what_donors_typed(self):
        await self.bot()
        hostile = {"amount": Decimal("500.00"), "name": "<b>Eve</b> & co", "message": "<a href='x'>click</a> </pre>",
                   "operation_id": "op-9", "label": "x"}
        result = await run_task(self.tasks, "notify_admins", {"message": "donation", "params": hostile})
        self.assertEqual(result, {"outcomes": {str(ADMIN): "sent"}})
        message = self.fake.messages_to(ADMIN)[0]
        self.assertIn("<b>Eve</b> & co", message["visible"])
        self.assertIn("<a href='x'>click</a> </pre>", message["visible"])
        self.assertIn("500.00", message["visible"])
        for alert, p in (("underpaid", {"amount": "1.00", "price": "2.00", "label": "l"}),
                         ("overpaid", {"amount": "3.00", "price": "2.00", "label": "l"}),
                         ("unmatched", {"amount": "4.00", "operation_id": "o", "label": "<l>"}),
                         ("quarantine", {"reason": "bad signature <sha1>", "id": 3}),
                         ("dead_letter", {"queue": "billing", "task": "apply_payment", "error": "Boom: <x>"}),
                         ("webhook_failed", {"endpoint_id": 7, "host": "shop.example", "event_id": "ev_1",
                                             "event_type": "invoice.paid", "attempts": 30, "error": "HTTP 500 <b>"})):
            await run_task(self.tasks, "notify_admins", {"message": alert, "params": p})
        self.assertEqual(len(self.fake.messages_to(ADMIN)), 7)
        self.assertIn("invoice.paid", self.fake.messages_to(ADMIN)[-1]["visible"])
        self.assertIn("HTTP 500 <b>", self.fake.messages_to(ADMIN)[-1]["visible"])


class ChannelTests(SenderTestBase):
    async def subscribe(self, chat_id: int, ends_at: float = 1_893_456_000.0) -> None:
        """A subscription in billing's ledger (grant_access links only chats it covers)."""
        ledger = self.billing.timers.ledger
        await ledger.db.run(lambda txn: txn.execute(
            "INSERT INTO subscriptions (chat_id, plan, ends_at, updated_at) VALUES (?, NULL, ?, ?)",
            (chat_id, ends_at, reactor.seconds())))

    @as_deferred
    async def test_grant_access_sends_a_one_person_link_once(self):
        await self.bot()
        await self.subscribe(700)
        args = {"chat_id": 700, "ends_at": "2030-01-01T00:00:00+00:00"}
        result = await run_task(self.tasks, "grant_access", args)
        self.assertEqual(result, {"granted": True, "outcome": "sent"})
        link = self.fake.invite_links[0]
        self.assertEqual(link["chat_id"], CHANNEL)
        self.assertEqual(link["creates_join_request"], True)  # issue 15: only the subscriber is let in
        now = reactor.seconds()
        self.assertTrue(now < link["expire_date"] <= now + 2 * 86400 + 5)
        message = self.fake.messages_to(700)[0]
        self.assertEqual(message["reply_markup"]["inline_keyboard"][0][0]["url"], link["invite_link"])
        # Redelivered: neither a new link nor a new message.
        self.assertEqual(await run_task(self.tasks, "grant_access", dict(args)), {"granted": True, "outcome": "duplicate"})
        self.assertEqual(len(self.fake.invite_links), 1)
        self.assertEqual(len(self.fake.messages_to(700)), 1)

    @as_deferred
    async def test_invite_expires_with_the_subscription_when_that_is_sooner(self):
        await self.bot()
        soon = reactor.seconds() + 3600
        await self.subscribe(701, soon)
        from datetime import datetime, timezone
        await run_task(self.tasks, "grant_access", {"chat_id": 701, "ends_at": datetime.fromtimestamp(soon, timezone.utc).isoformat()})
        self.assertEqual(self.fake.invite_links[0]["expire_date"], int(soon))

    @as_deferred
    async def test_link_survives_a_crash_between_link_and_message(self):
        await self.bot()
        await self.subscribe(702)
        self.fake.fail_next("sendMessage", 500)
        args = {"chat_id": 702, "ends_at": "2030-01-01T00:00:00+00:00"}
        with self.assertRaises(Exception):
            await run_task(self.tasks, "grant_access", args)
        await run_task(self.tasks, "grant_access", args)
        self.assertEqual(len(self.fake.invite_links), 1)
        self.assertEqual(self.fake.messages_to(702)[0]["reply_markup"]["inline_keyboard"][0][0]["url"],
                         self.fake.invite_links[0]["invite_link"])

    @as_deferred
    async def test_revoke_is_ban_then_unban(self):
        await self.bot()
        self.fake.admin_adds(CHANNEL, 703)  # a member (issue 15: nobody else is banned)
        self.assertEqual(await run_task(self.tasks, "revoke_access", {"chat_id": 703}), {"revoked": True, "outcome": "removed"})
        self.assertEqual(self.fake.bans, [("banChatMember", CHANNEL, 703), ("unbanChatMember", CHANNEL, 703)])
        unban = self.fake.calls_of("unbanChatMember")[0]
        self.assertIs(unban["only_if_banned"], True)

    @as_deferred
    async def test_channel_refusals(self):
        await self.bot()
        self.fake.fail_next("banChatMember", 400, "Bad Request: PARTICIPANT_ID_INVALID")
        self.assertEqual(await run_task(self.tasks, "revoke_access", {"chat_id": 704}), {"revoked": True, "outcome": "not_member"})
        self.fake.admin_adds(CHANNEL, 705)
        self.fake.fail_next("banChatMember", 400, "Bad Request: not enough rights to restrict/unrestrict chat member")
        with self.assertRaises(PermanentJobError) as caught:
            await run_task(self.tasks, "revoke_access", {"chat_id": 705})
        self.assertIn("administrator", str(caught.exception))
        await self.subscribe(706)
        self.fake.channels.clear()
        # issue 20: a refused invitation is tried again later by itself; after a day of retries, a dead letter
        outcome = await run_task(self.tasks, "grant_access", {"chat_id": 706, "ends_at": "2030-01-01T00:00:00Z"})
        self.assertIs(outcome["granted"], False)
        with self.assertRaises(PermanentJobError):
            await run_task(self.tasks, "grant_access", {"chat_id": 706, "ends_at": "2030-01-01T00:00:00Z",
                                                        "attempt": 288})


class NoChannelTests(SenderTestBase):
    channel = 0

    @as_deferred
    async def test_grant_and_revoke_do_nothing_without_a_channel(self):
        await self.bot()
        self.assertEqual((await run_task(self.tasks, "grant_access", {"chat_id": 800, "ends_at": "2030-01-01T00:00:00Z"}))["granted"], False)
        self.assertEqual((await run_task(self.tasks, "revoke_access", {"chat_id": 800}))["revoked"], False)
        self.assertEqual(self.fake.calls, [])


class SharedPaceTests(SenderTestBase):
    """Two bot processes sending for one bot stay under the overall limit together."""

    async def two_bots(self, shared_pace: bool):
        self.queue = await start_queue(self, self.config)
        bots = []
        for _ in range(2):
            bot = make_bot_service(reactor, self.config, self.queue, poll=False, shared_pace=shared_pace)
            bot.startService()
            self.addCleanup(bot.stopService)
            bots.append(bot)
        return bots

    async def broadcast(self, n: int) -> None:
        for i in range(n):
            await self.queue.enqueue("bot", "send", {"chat_id": 900 + i, "text": f"news {i}", "key": f"bc{i}"})
        await wait_until(lambda: len(self.fake.sent) == n, timeout=30, what="broadcast delivered")

    @as_deferred
    async def test_two_processes_share_thirty_per_second(self):
        bots = await self.two_bots(shared_pace=True)
        await self.broadcast(75)
        self.assertEqual(self.fake.throttled, 0)
        times = sorted(m["at"] for m in self.fake.sent)
        self.assertGreaterEqual(times[-1] - times[0], (75 - 1) / 30 - 0.2)
        self.assertTrue(all(b.parts.sender.counters["sent"] > 0 for b in bots), "both processes sent")

    @as_deferred
    async def test_without_sharing_two_processes_exceed_the_limit(self):
        await self.two_bots(shared_pace=False)
        await self.broadcast(75)
        self.assertGreater(self.fake.throttled, 0)


class DeadLetterTests(SenderTestBase):
    @as_deferred
    async def test_a_dead_bot_job_alerts_the_owner(self):
        await self.bot(worker=True)
        await self.queue.enqueue("bot", "send", {"chat_id": "not a chat", "text": "x"})
        await wait_until(lambda: len(self.fake.messages_to(ADMIN)) == 1, what="dead-letter alert")
        alert = self.fake.messages_to(ADMIN)[0]["visible"]
        self.assertIn("bot.send", alert)
        self.assertIn("chat_id must be an integer", alert)
        self.assertEqual(self.redis_server.command("XLEN", f"{self.prefix}:q:bot:dead"), 1)


class ChannelFloodTests(SenderTestBase):
    @as_deferred
    async def test_flood_control_on_channel_calls_pauses_and_retries_later(self):
        await self.bot()
        self.fake.admin_adds(CHANNEL, 710)
        self.fake.fail_next("banChatMember", 429, retry_after=9)
        from ymds.bot.errors import RetryAfter
        with self.assertRaises(RetryAfter):
            await run_task(self.tasks, "revoke_access", {"chat_id": 710})
        self.assertGreaterEqual(self.parts.limiter.paused_until, reactor.seconds() + 8)


class MetricsTests(SenderTestBase):
    @as_deferred
    async def test_outcomes_and_state_in_the_registry(self):
        from ymds.metrics import Registry
        metrics = Registry()
        await self.bot(metrics=metrics)
        await run_task(self.tasks, "send", {"chat_id": 720, "text": "x", "key": "m1"})
        await run_task(self.tasks, "send", {"chat_id": 720, "text": "x", "key": "m1"})
        text = metrics.render()
        self.assertIn('ymds_bot_messages_total{outcome="sent"} 1.0', text)
        self.assertIn('ymds_bot_messages_total{outcome="duplicate"} 1.0', text)
        self.assertIn("ymds_bot_polling 0.0", text)
        self.assertIn("ymds_bot_waiting_for_slot 0.0", text)
