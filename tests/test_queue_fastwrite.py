"""ymds.queue.fastwrite relies on private Twisted internals: these tests fail loudly when a
Twisted upgrade changes them (then fix or drop the fast path; the ordinary path still works)."""

from __future__ import annotations

from twisted.internet import protocol, reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.trial.unittest import TestCase

from ymds.queue import fastwrite


class _Collect(protocol.Protocol):
    def __init__(self, want: int, done: Deferred):
        self.want, self.done, self.data = want, done, b""

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        if len(self.data) >= self.want and not self.done.called:
            self.done.callback(self.data)


class DirectWriteInternalsTests(TestCase):
    async def _connected_pair(self, want: int):
        received: Deferred = Deferred()
        server_factory = protocol.Factory.forProtocol(lambda: _Collect(want, received))
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(server_factory)
        self.addCleanup(port.stopListening)
        client = await TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(
            protocol.Factory.forProtocol(protocol.Protocol))
        self.addCleanup(client.transport.loseConnection)
        return client.transport, received

    async def test_tcp_client_has_the_internals(self):
        transport, _ = await self._connected_pair(1)
        missing = [a for a in fastwrite.REQUIRED_ATTRIBUTES if not hasattr(transport, a)]
        self.assertEqual(missing, [], f"Twisted's {type(transport).__name__} changed: fastwrite's fast path is off")
        self.assertIn(type(transport), fastwrite.SUPPORTED_TRANSPORTS)
        self.assertIsInstance(fastwrite.direct_writer(transport), fastwrite.DirectWriter)

    async def test_buffered_write_is_seen_by_the_internals(self):
        # The fast path is only safe if a write Twisted has buffered shows up in the
        # attributes it checks; otherwise bytes could be reordered.
        transport, _ = await self._connected_pair(1)
        self.assertFalse(transport._tempDataBuffer)
        self.assertEqual(transport.offset, len(transport.dataBuffer))
        transport.write(b"queued by twisted")
        self.assertTrue(transport._tempDataBuffer or transport.offset != len(transport.dataBuffer))

    async def test_direct_and_buffered_writes_keep_their_order(self):
        payload = [b"first ", b"second ", b"third"]
        transport, received = await self._connected_pair(sum(map(len, payload)))
        writer = fastwrite.direct_writer(transport)
        writer.write(payload[0])          # straight to the socket
        transport.write(payload[1])       # buffered by Twisted
        writer.write(payload[2])          # must queue behind it
        self.assertEqual(await received, b"".join(payload))

    def test_other_transports_are_left_alone(self):
        sentinel = object()
        self.assertIs(fastwrite.direct_writer(sentinel), sentinel)

    async def test_switched_off_the_transport_is_left_alone(self):
        transport, _ = await self._connected_pair(1)
        self.patch(fastwrite, "ENABLED", False)
        self.assertIs(fastwrite.direct_writer(transport), transport)
