"""The overlay on a web node: the OverlayNode service, the cached token check (rotation),
a Redis restart under open streams, a reader not ready yet, and a client that stops reading."""
from __future__ import annotations

import socket
from decimal import Decimal

from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import Site

from ymds.overlay.events import GoalEvent
from ymds.overlay.resource import TOKEN as TOKEN_PATTERN
from ymds.overlay.service import OverlayNode
from ymds.overlay.sse import OverlayEvents
from ymds.overlay.stream import OverlayStreamWriter, OverlayTailer, open_redis
from ymds.overlay.tokens import CachedTokenCheck, new_token, overlay_urls
from tests.support.redis_server import RedisServer
from tests.test_overlay import PREFIX, TOKEN, Node, RedisCase, SSEConnection, Tokens, donation, run, wait_for


class TokenHelpers(unittest.TestCase):
    def test_new_tokens_are_random_and_fit_the_url_pattern(self):
        tokens = {new_token() for _ in range(50)}
        self.assertEqual(len(tokens), 50)
        for token in tokens:
            self.assertRegex(token, TOKEN_PATTERN)

    def test_urls(self):
        self.assertEqual(overlay_urls("https://pay.example.ru/", "T" * 32), {
            "alerts": "https://pay.example.ru/overlay/" + "T" * 32 + "/alerts",
            "goal": "https://pay.example.ru/overlay/" + "T" * 32 + "/goal",
            "events": "https://pay.example.ru/overlay/" + "T" * 32 + "/events"})


class CachedCheck(unittest.TestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.stored: str | None = TOKEN
        self.reads = 0
        self.fail = False

        async def current():
            self.reads += 1
            if self.fail:
                raise ConnectionError("ledger unreachable")
            return self.stored
        self.check = CachedTokenCheck(self.clock, current, ttl=10)

    def answer(self, token: str) -> bool:
        out: list = []
        defer.Deferred.fromCoroutine(self.check(token)).addBoth(out.append)
        if isinstance(out[0], Exception) or hasattr(out[0], "raiseException"):
            out[0].raiseException()
        return out[0]

    def test_rotation_takes_effect_after_the_ttl(self):
        self.assertTrue(self.answer(TOKEN))
        self.assertFalse(self.answer("x" * 32))
        self.assertEqual(self.reads, 1)  # cached
        self.stored = "n" * 32  # `ymds overlay-url --rotate`
        self.clock.advance(9)
        self.assertTrue(self.answer(TOKEN))
        self.clock.advance(1)
        self.assertFalse(self.answer(TOKEN))
        self.assertTrue(self.answer("n" * 32))
        self.assertEqual(self.reads, 2)

    def test_no_token_yet(self):
        self.stored = None
        self.assertFalse(self.answer(TOKEN))

    def test_ledger_outage_keeps_the_last_answer_or_fails(self):
        self.fail = True
        with self.assertRaises(ConnectionError):
            self.answer(TOKEN)  # nothing known yet: the resource answers 503
        self.fail = False
        self.assertTrue(self.answer(TOKEN))
        self.fail = True
        self.clock.advance(60)
        self.assertTrue(self.answer(TOKEN))


class Service(RedisCase):
    @run
    async def test_overlay_node_serves_and_stops(self):
        clock = task.Clock()
        node = OverlayNode(reactor, self.redis.url, PREFIX, Tokens().valid, clock=clock)
        root = Resource()
        root.putChild(b"overlay", node.resource)
        port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        node.startService()
        self.addCleanup(lambda: node.stopService() if node.running else None)
        await wait_for(lambda: node.tailer.ready)
        conn = await SSEConnection(self, port.getHost().port, f"/overlay/{TOKEN}/events").open()
        await conn.until(lambda: conn.frames())
        entry = await self.writer.append(donation())
        await conn.until(lambda: conn.events("donation"))
        self.assertEqual(conn.events("donation")[0]["id"], entry)
        clock.advance(15)
        await conn.until(lambda: b": hb" in conn.body)
        await node.stopService()
        await conn.until_closed()  # streams end; browsers reconnect to another node

    @run
    async def test_streams_wait_for_the_reader(self):
        commands, blocking = open_redis(reactor, self.redis.url)
        tailer = OverlayTailer(reactor, commands, blocking, PREFIX)  # not started
        self.addCleanup(lambda: defer.Deferred.fromCoroutine(tailer.stop()))
        events = OverlayEvents(task.Clock(), tailer, Tokens().valid)
        node = Node(self, self.redis.url, self.tokens)
        node.events = events
        port = reactor.listenTCP(0, Site(node.root()), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        conn = await SSEConnection(self, port.getHost().port, f"/overlay/{TOKEN}/events").open()
        await conn.until_closed()
        self.assertEqual((conn.status, conn.header("retry-after")), (503, "2"))


class RedisRestart(unittest.TestCase):
    timeout = 60

    @run
    async def test_streams_survive_a_redis_restart(self):
        redis = RedisServer(appendonly=True).start()
        self.addCleanup(redis.cleanup)
        commands, blocking = open_redis(reactor, redis.url, "writer")
        blocking.close()
        self.addCleanup(commands.close)
        writer = OverlayStreamWriter(commands, PREFIX, reactor=reactor)
        node = await Node(self, redis.url, Tokens()).start()
        conn = await node.connected()
        before = await writer.append_once(donation("100.00"), "op-1")
        await conn.until(lambda: conn.events("donation"))
        redis.restart()
        # the writer finds its connection gone and retries; the key keeps it from adding twice
        after = await writer.append_once(donation("200.00"), "op-2")
        self.assertIsNone(await writer.append_once(donation("200.00"), "op-2"))
        goal = await writer.append(GoalEvent(Decimal("300.00"), Decimal("1000.00"), "Цель", None))
        await conn.until(lambda: any(f.get("id") == goal for f in conn.frames()))
        self.assertEqual([f["id"] for f in conn.events()], [before, after, goal])


class AppendOnce(RedisCase):
    @run
    async def test_the_same_payment_is_appended_once(self):
        first = await self.writer.append_once(donation("100.00"), "op-7")
        self.assertIsNotNone(first)
        self.assertIsNone(await self.writer.append_once(donation("100.00"), "op-7"))
        self.assertIsNotNone(await self.writer.append_once(donation("100.00"), "op-8"))
        self.assertEqual(self.redis.command("XLEN", f"{PREFIX}:overlay:events"), 2)
        ttl = self.redis.command("TTL", f"{PREFIX}:overlay:once:op-7")
        self.assertTrue(0 < ttl <= 7 * 24 * 3600)


class SlowClient(RedisCase):
    @run
    async def test_a_client_that_stops_reading_is_dropped(self):
        node = await self.node(max_backlog=20)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", node.port))
        self.addCleanup(sock.close)
        sock.sendall(f"GET /overlay/{TOKEN}/events HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        await wait_for(lambda: len(node.events.clients) == 1)
        [stuck] = node.events.clients
        # small kernel buffers on both ends, so Twisted's own buffer fills after a few dozen messages
        stuck.request.channel.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        reader = await node.connected()  # a healthy overlay next to it
        message = "ж" * 500
        sent = 0
        while stuck in node.events.clients and sent < 1000:
            await defer.gatherResults([defer.Deferred.fromCoroutine(self.writer.append(donation(message=message)))
                                       for _ in range(50)])
            sent += 50
            await reader.until(lambda: reader.body.count(b"event: donation") == sent)
        await wait_for(lambda: stuck not in node.events.clients)
        self.assertLess(sent, 1000)
        self.assertEqual(len(node.events.clients), 1)  # the healthy one stays, and got every message
        await reader.until(lambda: reader.body.count(b"event: donation") == sent)
