"""Issue 14: a per-connection deadline from the moment the connection opens, and a cap on
connections per address (real TCP on loopback; the deadline runs on a Clock)."""

from __future__ import annotations

from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.trial import unittest
from twisted.web.resource import Resource

from ymds.web.listener import ConnectionGuard, TrackingSite


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"hello"


class Client(Protocol):
    def __init__(self):
        self.received = b""
        self.closed: defer.Deferred = defer.Deferred()
        self.connected_d: defer.Deferred = defer.Deferred()

    def connectionMade(self):
        self.connected_d.callback(self)

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.closed.callback(None)


async def turn():
    """Let the real reactor move bytes (a zero-delay turn, not a sleep)."""
    await task.deferLater(reactor, 0, lambda: None)


class GuardTestBase(unittest.TestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.site = TrackingSite(Hello(), reactor=self.clock)
        self.site.guard = ConnectionGuard(request_deadline=30.0, per_address=2, exempt_loopback=False)
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    async def connect(self) -> Client:
        client = Client()
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port), client)
        self.addCleanup(lambda: client.transport.abortConnection() if not client.closed.called else None)
        await self.until(lambda: len(self.site.channels) >= 1)
        return client

    async def until(self, condition, turns=2000):
        for _ in range(turns):
            if condition():
                return
            await turn()
        self.fail("condition never became true")


class DeadlineTests(GuardTestBase):
    async def test_trickling_bytes_do_not_extend_the_deadline(self):
        client = await self.connect()
        for byte in b"GET / HT":  # one byte every 20 s would keep Twisted's idle timeout alive
            client.transport.write(bytes([byte]))
            await turn()
            if self.clock.seconds() + 20 >= 30:
                break
            self.clock.advance(20)
        self.assertFalse(client.closed.called)
        self.clock.advance(11)  # 31 s after the connection opened
        await self.until(lambda: client.closed.called)
        self.assertEqual(client.received, b"")

    async def test_answered_request_then_idle_keepalive_is_closed(self):
        client = await self.connect()
        client.transport.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await self.until(lambda: b"hello" in client.received)
        self.clock.advance(29)
        await turn()
        self.assertFalse(client.closed.called)
        self.clock.advance(2)
        await self.until(lambda: client.closed.called)


class PerAddressCapTests(GuardTestBase):
    async def test_third_connection_from_one_address_is_closed(self):
        first = await self.connect()
        second = await self.connect()
        await self.until(lambda: len(self.site.channels) == 2)
        third = await self.connect()
        await self.until(lambda: third.closed.called)
        self.assertFalse(first.closed.called or second.closed.called)
        self.assertEqual(self.site.guard.open, {"127.0.0.1": 2})
        first.transport.loseConnection()
        await self.until(lambda: self.site.guard.open == {"127.0.0.1": 1})
        fourth = await self.connect()
        fourth.transport.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await self.until(lambda: b"hello" in fourth.received)

    def test_loopback_and_trusted_proxies_are_exempt(self):
        guard = ConnectionGuard(per_address=1, trusted=["10.0.0.0/8"])
        self.assertTrue(all(guard.admit("127.0.0.1") for _ in range(5)))
        self.assertTrue(all(guard.admit("10.1.2.3") for _ in range(5)))
        self.assertTrue(guard.admit("203.0.113.7"))
        self.assertFalse(guard.admit("203.0.113.7"))
