"""Long polling against the fake Bot API and a real Redis: offset persistence, the lease,
and every fault (409, 5xx, network errors, 429, malformed updates)."""
from __future__ import annotations

from twisted.internet import reactor, task
from twisted.logger import globalLogPublisher, formatEvent
from twisted.trial import unittest

from tests.fakes.bot_harness import make_config, pause, start_queue, start_world, wait_until
from tests.fakes.fake_telegram import DEFAULT_TOKEN
from ymds.bot.api import BotAPI
from ymds.bot.lease import RedisLease
from ymds.bot.polling import CONFLICT_FIX, PollingService
from ymds.bot.store import BotStore
from ymds.queue.redis import RedisPool, parse_redis_url


class PollingTestBase(unittest.TestCase):
    def setUp(self):
        start_world(self)
        self.store = BotStore(self.redis, self.prefix)
        self.dispatched: list[int] = []
        self.logged: list[str] = []

        def observe(event):
            try:
                self.logged.append(formatEvent(event))
            except Exception:
                pass
        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    async def dispatch(self, update):
        self.dispatched.append(update["update_id"])

    def poller(self, clock=None, ttl=15.0, url=None, dispatch=None, **kw) -> PollingService:
        clock = clock or reactor
        api = BotAPI(reactor, DEFAULT_TOKEN, url or self.url, timeout=5)
        self.addCleanup(api.close)
        lease = RedisLease(self.redis, clock, self.store.lease_key, ttl=ttl)
        kw.setdefault("poll_timeout", 1)
        service = PollingService(clock, api, self.store, lease, dispatch or self.dispatch, **kw)
        return service

    def start(self, service: PollingService) -> PollingService:
        service.startService()
        self.addCleanup(lambda: service.running and service.stopService())
        return service

    def polls(self) -> list[dict]:
        return self.fake.calls_of("getUpdates")


class OffsetTests(PollingTestBase):
    async def test_restart_neither_loses_nor_repeats(self):
        first = self.start(self.poller())
        ids = [self.fake.user_sends(10 + i, f"hello {i}")["update_id"] for i in range(3)]
        await wait_until(lambda: len(self.dispatched) == 3, what="three updates dispatched")
        await first.stopService()
        self.assertEqual(await self.store.get_offset(), ids[-1] + 1)
        # Updates that arrive while no bot runs are fetched after the restart, once.
        ids += [self.fake.user_sends(20 + i, f"later {i}")["update_id"] for i in range(2)]
        polls_before = len(self.polls())
        self.start(self.poller())
        await wait_until(lambda: len(self.dispatched) == 5, what="two more updates dispatched")
        await pause(0.3)
        self.assertEqual(self.dispatched, ids)
        self.assertEqual(self.polls()[polls_before]["offset"], ids[2] + 1)
        self.assertEqual(await self.store.get_offset(), ids[-1] + 1)

    async def test_crash_before_the_offset_was_stored_is_no_repeat(self):
        """The update job is enqueued with a key made of the update id: fetching the update
        again after a crash (offset not yet stored) enqueues nothing new."""
        from ymds.bot.service import make_bot_service
        config = make_config(self.url, self.redis_server.url, self.prefix)
        queue = await start_queue(self, config)
        bot = make_bot_service(reactor, config, queue, redis=self.redis, worker=False)
        bot.startService()
        update_id = self.fake.user_sends(31, "/help")["update_id"]
        await wait_until(lambda: self.redis_server.command("GET", f"{self.prefix}:bot:offset") == str(update_id + 1))
        await bot.stopService()
        # The crash: the offset write never happened.
        self.redis_server.command("SET", f"{self.prefix}:bot:offset", str(update_id))
        # ... so Telegram still has the update and hands it out again.
        self.fake.push_update({"update_id": update_id, "message": {
            "message_id": 1, "chat": {"id": 31, "type": "private"}, "date": 0, "text": "/help"}})
        again = make_bot_service(reactor, config, queue, redis=self.redis, worker=False)
        again.startService()
        self.addCleanup(again.stopService)
        await wait_until(lambda: self.redis_server.command("GET", f"{self.prefix}:bot:offset") == str(update_id + 1))
        self.assertEqual(self.redis_server.command("XLEN", f"{self.prefix}:q:bot"), 1)

    async def test_offset_only_moves_forward_and_is_fenced_by_the_lease(self):
        self.assertTrue(await self.store.set_offset(100))
        self.assertTrue(await self.store.set_offset(90))  # allowed but ignored
        self.assertEqual(await self.store.get_offset(), 100)
        self.redis_server.command("SET", self.store.lease_key, "someone-else")
        self.assertFalse(await self.store.set_offset(200, "me"))
        self.assertEqual(await self.store.get_offset(), 100)
        self.redis_server.command("SET", self.store.offset_key, "garbage")
        self.assertIsNone(await self.store.get_offset())


class LeaseTests(PollingTestBase):
    async def test_takeover_when_the_holder_stops_renewing(self):
        a = self.start(self.poller(ttl=0.9))
        await wait_until(lambda: a.polling, what="first poller holds the lease")
        b = self.start(self.poller(ttl=0.9))
        await pause(0.7)
        self.assertTrue(a.polling)
        self.assertFalse(b.polling)
        first = self.fake.user_sends(40, "one")["update_id"]
        await wait_until(lambda: self.dispatched == [first])
        # The holder can no longer reach Redis (a network split; it still reaches Telegram):
        # no renewal succeeds.  Its local deadline makes it stop polling before the key
        # lapses in Redis, and then the standby takes over.
        unreachable = RedisPool(reactor, parse_redis_url("redis://127.0.0.1:1/0"), name="split:", command_timeout=0.2)
        self.addCleanup(unreachable.close)
        a.lease.redis = unreachable
        await wait_until(lambda: not a.polling, what="cut-off holder stopped polling")
        self.assertFalse(b.polling)
        await wait_until(lambda: b.polling, what="standby took over")
        self.assertFalse(a.polling)
        second = self.fake.user_sends(41, "two")["update_id"]
        await wait_until(lambda: len(self.dispatched) == 2)
        await pause(0.5)
        self.assertEqual(self.dispatched, [first, second])
        self.assertEqual(self.redis_server.command("GET", self.store.lease_key), b.lease.owner)
        self.assertTrue(any("lease" in line and "taken" in line for line in self.logged))

    async def test_holder_stops_at_once_when_the_lease_is_someone_elses(self):
        a = self.start(self.poller(ttl=0.9))
        await wait_until(lambda: a.polling)
        self.redis_server.command("SET", self.store.lease_key, "intruder", "PX", "5000")
        await wait_until(lambda: not a.polling, what="holder noticed the lost lease")
        polls = len(self.polls())
        self.fake.user_sends(42, "nobody polls")
        await pause(0.5)
        self.assertEqual(self.dispatched, [])
        self.assertLessEqual(len(self.polls()), polls + 1)

    async def test_stop_releases_the_lease(self):
        a = self.start(self.poller())
        await wait_until(lambda: a.polling)
        await a.stopService()
        self.assertIsNone(self.redis_server.command("GET", self.store.lease_key))


class FaultTests(PollingTestBase):
    """The poller's sleeps run on a Clock: backoff and waits are checked exactly."""

    def setUp(self):
        super().setUp()
        self.clock = task.Clock()
        self.clock.advance(1000)

    def poller(self, **kw):
        # The Clock jumps ahead while Redis keeps real time: a lease far longer than any
        # jump keeps lease expiry out of these tests (LeaseTests covers it).
        kw.setdefault("ttl", 10_000)
        return super().poller(**kw)

    async def polled(self, n: int) -> None:
        await wait_until(lambda: len(self.polls()) >= n, what=f"{n} getUpdates calls")

    async def no_poll_for(self, n: int) -> None:
        await pause(0.15)
        self.assertEqual(len(self.polls()), n)

    async def test_server_errors_back_off_exponentially(self):
        self.fake.fail_next("getUpdates", 500, times=3)
        self.start(self.poller(clock=self.clock, backoff_initial=1.0, backoff_max=60))
        await self.polled(1)
        await self.no_poll_for(1)
        self.clock.advance(1.0)
        await self.polled(2)
        self.clock.advance(1.9)
        await self.no_poll_for(2)
        self.clock.advance(0.1)
        await self.polled(3)
        self.clock.advance(3.9)
        await self.no_poll_for(3)
        self.clock.advance(0.1)
        await self.polled(4)
        update = self.fake.user_sends(50, "after the outage")["update_id"]
        await wait_until(lambda: self.dispatched == [update])

    async def test_network_errors_back_off(self):
        service = self.start(self.poller(clock=self.clock, url="http://127.0.0.1:1", backoff_initial=2.0))
        attempts = []
        await wait_until(lambda: any("getUpdates failed" in line for line in self.logged))
        attempts.append(sum("getUpdates failed" in line for line in self.logged))
        self.clock.advance(1.9)
        await pause(0.1)
        self.assertEqual(sum("getUpdates failed" in line for line in self.logged), attempts[0])
        self.clock.advance(0.1)
        await wait_until(lambda: sum("getUpdates failed" in line for line in self.logged) == 2)
        self.assertTrue(any("again in 4s" in line for line in self.logged))
        self.assertTrue(service.polling)

    async def test_conflict_is_explained_and_retried_slowly(self):
        self.fake.fail_next("getUpdates", 409)
        self.start(self.poller(clock=self.clock, conflict_delay=30))
        await self.polled(1)
        await wait_until(lambda: any("409" in line for line in self.logged))
        self.assertTrue(any(CONFLICT_FIX in line for line in self.logged))
        self.clock.advance(29)
        await self.no_poll_for(1)
        self.clock.advance(1)
        await self.polled(2)
        update = self.fake.user_sends(51, "hi")["update_id"]
        await wait_until(lambda: self.dispatched == [update])

    async def test_webhook_set_later_is_deleted_again(self):
        self.start(self.poller(clock=self.clock, conflict_delay=5))
        await self.polled(1)
        self.assertEqual(len(self.fake.calls_of("deleteWebhook")), 1)
        self.fake.webhook_url = "https://elsewhere.example/hook"
        await wait_until(lambda: len(self.fake.calls_of("deleteWebhook")) == 2, what="deleteWebhook again")
        # The poller arms its conflict delay on the fake clock when Telegram's answer arrives:
        # advance only once it has (advancing before left the timer unfired under load).
        await wait_until(lambda: any(call.getTime() <= self.clock.seconds() + 5 for call in self.clock.getDelayedCalls()),
                         what="the conflict delay armed")
        self.clock.advance(5)
        update = self.fake.user_sends(52, "hi")["update_id"]
        await wait_until(lambda: self.dispatched == [update])

    async def test_flood_control_waits_retry_after(self):
        self.fake.fail_next("getUpdates", 429, retry_after=7)
        self.start(self.poller(clock=self.clock))
        await self.polled(1)
        self.clock.advance(6.9)
        await self.no_poll_for(1)
        self.clock.advance(0.1)
        await self.polled(2)

    async def test_slow_answers_time_out_and_are_retried(self):
        self.fake.slow("getUpdates", 30)
        api_timeout_poller = self.poller(clock=self.clock, backoff_initial=1.0)
        api_timeout_poller.api._timeout = 0.3  # HTTP timeout = poll timeout (1 s) + 0.3 s
        self.start(api_timeout_poller)
        await wait_until(lambda: any("no answer within 1.3s" in line for line in self.logged), what="timeout logged")
        self.fake.slow("getUpdates", 0)
        self.fake.close()
        self.clock.advance(1.0)
        update = self.fake.user_sends(53, "hi")["update_id"]
        await wait_until(lambda: self.dispatched == [update])

    async def test_malformed_updates_are_skipped(self):
        self.start(self.poller(clock=self.clock))
        self.fake.push_update("not an update")
        self.fake.push_update({"update_id": "7", "message": {}})
        good = self.fake.user_sends(54, "fine")["update_id"]
        await wait_until(lambda: self.dispatched == [good])
        self.assertTrue(any("malformed" in line for line in self.logged))

    async def test_failed_dispatch_is_retried_without_advancing(self):
        failures = [RuntimeError("redis down"), RuntimeError("still down")]

        async def flaky(update):
            if failures:
                raise failures.pop(0)
            self.dispatched.append(update["update_id"])

        self.start(self.poller(clock=self.clock, dispatch=flaky, backoff_initial=1.0))
        update = self.fake.user_sends(55, "hi")["update_id"]
        await wait_until(lambda: len(failures) == 1)
        self.assertIsNone(await self.store.get_offset())
        self.clock.advance(1.0)
        await wait_until(lambda: not failures)
        self.clock.advance(2.0)
        await wait_until(lambda: self.dispatched == [update])
        await wait_until(lambda: self.redis_server.command("GET", self.store.offset_key) == str(update + 1))
