"""ymds.util: the shared helpers (HTTP bodies and Retry-After, clock, services, endpoint strings)."""

from __future__ import annotations

from hypothesis import given, strategies as st
from twisted.application.service import MultiService
from twisted.internet import endpoints, reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import Site

from ymds.util.clock import Deadline, sleep, wait_until
from ymds.util.endpoints import parse_endpoint_description
from ymds.util.http import BodyTooLarge, read_body, retry_after_seconds
from ymds.util.services import CloseOnStop


class EndpointDescriptionTests(SynchronousTestCase):
    @given(st.text(alphabet=":=\\ab1/.", max_size=30).filter(lambda s: not s.endswith("\\") or s.endswith("\\\\")))
    def test_same_split_as_twisted(self, description):
        # Twisted's parser is private; ours must agree with it on every string
        try:
            expected = endpoints._parse(description)
        except RuntimeError:  # Twisted fails on a trailing lone backslash
            with self.assertRaises(ValueError):
                parse_endpoint_description(description)
            return
        self.assertEqual(parse_endpoint_description(description), expected)

    def test_escaped_colon_and_keywords(self):
        self.assertEqual(parse_endpoint_description(r"tls:443:dir=/etc/le\:x:interface=\:\:1"),
                         (["tls", "443"], {"dir": "/etc/le:x", "interface": "::1"}))

    def test_trailing_backslash_is_refused(self):
        with self.assertRaises(ValueError):
            parse_endpoint_description("tcp:80\\")


class RetryAfterTests(SynchronousTestCase):
    def test_rounds_up_to_whole_seconds_at_least_one(self):
        self.assertEqual([retry_after_seconds(w) for w in (0, 0.2, 1.0, 1.01, 59.5)], [1, 1, 1, 2, 60])


class ClockTests(SynchronousTestCase):
    def test_sleep_fires_after_the_time_on_the_clock(self):
        clock = Clock()
        d = sleep(clock, 5)
        clock.advance(4.9)
        self.assertNoResult(d)
        clock.advance(0.1)
        self.assertIsNone(self.successResultOf(d))

    def test_deadline(self):
        clock = Clock()
        deadline = Deadline(clock, 2)
        self.assertEqual(deadline.remaining(), 2)
        self.assertFalse(deadline.passed)
        clock.advance(3)
        self.assertEqual(deadline.remaining(), 0)
        self.assertTrue(deadline.passed)

    def test_wait_until_returns_at_the_deadline_or_when_fired(self):
        clock = Clock()
        slow: Deferred = Deferred()
        waiting = Deferred.fromCoroutine(wait_until(clock, slow, 10))
        clock.advance(9)
        self.assertNoResult(waiting)
        clock.advance(1)
        self.successResultOf(waiting)
        self.assertNoResult(slow)  # not cancelled: its other users still get its result
        fast: Deferred = Deferred()
        waiting = Deferred.fromCoroutine(wait_until(clock, fast, 20))
        fast.callback("r")
        self.successResultOf(waiting)
        self.assertEqual(self.successResultOf(fast), "r")
        self.assertEqual(clock.getDelayedCalls(), [])


class CloseOnStopTests(TestCase):
    async def test_stopping_waits_for_the_close(self):
        closing: Deferred = Deferred()
        calls = []

        def close():
            calls.append("closed")
            return closing

        top = MultiService()
        CloseOnStop(close, name="pool").setServiceParent(top)
        top.startService()
        self.assertEqual(calls, [])
        stopped = top.stopService()
        self.assertEqual(calls, ["closed"])
        self.assertNoResult(stopped)
        closing.callback(None)
        await stopped

    async def test_coroutine_and_none(self):
        seen = []

        async def close_async():
            seen.append("async")

        for service in (CloseOnStop(close_async), CloseOnStop(lambda: seen.append("sync"))):
            service.startService()
            await service.stopService()
        self.assertEqual(seen, ["async", "sync"])


class _Body(Resource):
    isLeaf = True

    def __init__(self, body: bytes):
        super().__init__()
        self.body = body

    def render_GET(self, request):
        return self.body


class ReadBodyTests(TestCase):
    async def _response(self, body: bytes):
        port = reactor.listenTCP(0, Site(_Body(body)), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        agent = Agent(reactor, pool=pool)
        return await agent.request(b"GET", b"http://127.0.0.1:%d/" % port.getHost().port)

    async def test_whole_body_within_the_limit(self):
        response = await self._response(b"x" * 100)
        self.assertEqual(await read_body(response, 100), b"x" * 100)

    async def test_too_large_fails(self):
        response = await self._response(b"x" * 101)
        with self.assertRaises(BodyTooLarge):
            await read_body(response, 100)

    async def test_truncate_keeps_the_first_bytes(self):
        response = await self._response(b"0123456789" * 10)
        self.assertEqual(await read_body(response, 15, truncate=True), b"012345678901234")
