"""The web role's listening service: listen on a server endpoint, stop gracefully.

On stop it first stops accepting connections, then lets requests in flight finish for a
bounded time, closes idle keep-alive connections, and aborts whatever is left.
"""

from __future__ import annotations

from typing import Callable

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.server import Site

from ymds.tlsendpoint import server_endpoint

log = Logger()


class TrackingSite(Site):
    """A Site that remembers its open HTTP channels, so stopping can drain them."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.channels: set = set()

    def buildProtocol(self, addr):
        channel = super().buildProtocol(addr)
        if channel is None:
            return None
        channels = self.channels
        original_lost = channel.connectionLost

        def connectionLost(reason):
            channels.discard(channel)
            return original_lost(reason)

        channel.connectionLost = connectionLost
        channels.add(channel)
        return channel


class WebListener(Service):
    name = "web-listener"

    def __init__(self, reactor, endpoint: str, site: TrackingSite, drain_timeout: float = 10.0,
                 on_listening: Callable[[object], None] | None = None):
        self._reactor = reactor
        self._endpoint_description = endpoint
        self.site = site
        self.drain_timeout = drain_timeout
        self._on_listening = on_listening
        self.port = None
        self.listening: defer.Deferred = defer.Deferred()

    def startService(self):
        super().startService()
        endpoint = server_endpoint(self._reactor, self._endpoint_description)
        d = endpoint.listen(self.site)

        def listening(port):
            self.port = port
            address = port.getHost()
            log.info("web role listening on {host}:{port}", host=getattr(address, "host", "?"), port=getattr(address, "port", "?"))
            if self._on_listening is not None:
                self._on_listening(port)
            self.listening.callback(port)
            return port

        def failed(failure):
            log.critical("cannot listen on server.endpoint: {error}", error=failure.getErrorMessage())
            self.listening.errback(failure)
            if self._reactor.running:
                self._reactor.stop()

        d.addCallbacks(listening, failed)

    async def _drain(self) -> None:
        if self.port is not None:
            await defer.maybeDeferred(self.port.stopListening)
        deadline = self._reactor.seconds() + self.drain_timeout
        channels = getattr(self.site, "channels", set())
        while True:
            busy = [c for c in channels if _in_flight(c)]
            for idle in [c for c in channels if not _in_flight(c)]:
                _transport(idle).loseConnection()
            if not busy or self._reactor.seconds() >= deadline:
                break
            await _sleep(self._reactor, 0.05)
        for channel in list(channels):
            _transport(channel).abortConnection()

    def stopService(self):
        super().stopService()
        return defer.Deferred.fromCoroutine(self._drain())


def _in_flight(channel) -> bool:
    # Site builds a protocol that picks HTTP/1.1 or HTTP/2 and wraps the real channel.
    inner = getattr(channel, "_channel", channel)
    return bool(getattr(inner, "requests", None) or getattr(inner, "streams", None))


def _transport(channel):
    return getattr(getattr(channel, "_channel", channel), "transport")


def _sleep(reactor, seconds: float) -> defer.Deferred:
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d
