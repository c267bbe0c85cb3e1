"""Issue 20: the bot's HTTP client sends a request again, once, when the pooled keep-alive
connection it was written to had been closed by the server (no answer came at all)."""

from __future__ import annotations

import json

from twisted.internet import protocol, reactor
from twisted.trial import unittest

from ymds.bot.api import BotAPI
from ymds.bot.errors import NetworkError

TOKEN = "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef"


class ClosesIdleConnections(protocol.Protocol):
    """An HTTP server that answers the first request of each connection (keep-alive) and drops
    the connection, unanswered, when a second request arrives on it: what a server that has
    just timed out an idle connection looks like to the client."""

    def connectionMade(self):
        self.buffer = b""
        self.answered = 0

    def dataReceived(self, data):
        self.buffer += data
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        if len(rest) < length:
            return
        self.buffer = rest[length:]
        self.factory.requests += 1
        if self.answered:
            self.transport.loseConnection()
            return
        self.answered += 1
        body = json.dumps({"ok": True, "result": {"message_id": self.factory.requests}}).encode()
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)


class RetryOnClosedConnection(unittest.TestCase):
    def setUp(self):
        self.factory = protocol.ServerFactory.forProtocol(ClosesIdleConnections)
        self.factory.requests = 0
        port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.url = f"http://127.0.0.1:{port.getHost().port}"

    async def test_a_closed_pooled_connection_is_not_a_telegram_failure(self):
        api = BotAPI(reactor, TOKEN, self.url, timeout=5.0)
        self.addCleanup(api.close)
        first = await api.sendMessage(1, "one")
        second = await api.sendMessage(1, "two")  # written to the connection the server drops
        self.assertEqual((first["message_id"], second["message_id"]), (1, 3))
        self.assertEqual((self.factory.requests, api.retried_connections), (3, 1))

    async def test_only_once(self):
        """A server that never answers twice in a row is a network failure after one retry."""
        api = BotAPI(reactor, TOKEN, self.url, timeout=5.0)
        self.addCleanup(api.close)
        await api.sendMessage(1, "one")
        self.factory.protocol = DropsEverything
        with self.assertRaises(NetworkError):
            await api.sendMessage(1, "two")
        self.assertEqual(api.retried_connections, 1)


class DropsEverything(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.loseConnection()
