"""The web role's listening service: listen on a server endpoint, stop gracefully.

On stop it first stops accepting connections, then lets requests in flight finish for a
bounded time, closes idle keep-alive connections, and aborts whatever is left.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.server import Site

from ymds.tlsendpoint import server_endpoint
from ymds.util.clock import Deadline, sleep

log = Logger()


class TrackedHTTPChannel(HTTPChannel):
    """An HTTP/1.1 channel that registers itself with its TrackingSite while connected."""

    def connectionMade(self) -> None:
        self.factory.channels.add(self)
        super().connectionMade()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.channels.discard(self)
        super().connectionLost(reason)

    def in_flight(self) -> bool:
        """True while a request on this connection has not been answered."""
        return bool(self.requests)


class TrackingSite(Site):
    """A Site that remembers its open HTTP channels, so stopping can drain them.

    It speaks HTTP/1.1 through Twisted's public HTTPChannel (ymds offers no HTTP/2).
    """

    # HTTPFactory types this as building its private generic channel; any channel class will do
    protocol: Any = TrackedHTTPChannel

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.channels: set[TrackedHTTPChannel] = set()


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
        deadline = Deadline(self._reactor, self.drain_timeout)
        channels: set[TrackedHTTPChannel] = getattr(self.site, "channels", set())
        while True:
            busy = [c for c in channels if c.in_flight()]
            for idle in [c for c in channels if not c.in_flight()]:
                _transport(idle).loseConnection()
            if not busy or deadline.passed:
                break
            await sleep(self._reactor, 0.05)
        for channel in list(channels):
            _transport(channel).abortConnection()

    def stopService(self):
        super().stopService()
        return defer.Deferred.fromCoroutine(self._drain())


def _transport(channel: TrackedHTTPChannel) -> Any:
    # a connected channel's transport is a TCP or TLS transport (both can abortConnection)
    return channel.transport
