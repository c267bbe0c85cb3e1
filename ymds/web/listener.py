"""The web role's listening service: listen on a server endpoint, stop gracefully.

On stop it first stops accepting connections, then lets requests in flight finish for a
bounded time, closes idle keep-alive connections, and aborts whatever is left.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.error import CannotListenError
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
    noisy = False  # no "Starting factory ..." lines at info on every start and stop (issue 14)

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
        self._started: defer.Deferred | None = None

    def endpoint(self) -> Any:
        """Where to listen (a worker child of ymds.workers adopts its parent's socket instead)."""
        return server_endpoint(self._reactor, self._endpoint_description)

    def privilegedStartService(self) -> None:
        # Listen before the reactor runs (and before privileges are shed): a port in use or
        # a bad certificate then ends the process at once with one line (issue 14).
        super().privilegedStartService()
        self._listen(at_start=True)

    def startService(self) -> None:
        super().startService()
        if self._started is None:
            self._listen(at_start=False)

    def _listen(self, at_start: bool) -> None:
        failed_now: list[Failure] = []
        try:
            d = self.endpoint().listen(self.site)
        except Exception:  # a bad endpoint string or certificate: raised while building it
            d = defer.fail()
        self._started = d

        def listening(port):
            self.port = port
            address = port.getHost()
            log.info("web role listening on {host}:{port}", host=getattr(address, "host", "?"), port=getattr(address, "port", "?"))
            if self._on_listening is not None:
                self._on_listening(port)
            self.listening.callback(port)
            return port

        def failed(failure):
            line = cannot_listen_line(self._endpoint_description, failure)
            log.critical("{line}", line=line)
            if not self.listening.called:
                self.listening.errback(failure)
                self.listening.addErrback(lambda _: None)
            if at_start and not self._reactor.running:
                failed_now.append(failure)
                return None
            die(self._reactor, line)
            return None

        d.addCallbacks(listening, failed)
        if failed_now:  # synchronously, before the reactor runs: end here, one line, status 1
            to_terminal(cannot_listen_line(self._endpoint_description, failed_now[0]))
            raise SystemExit(1)

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


def cannot_listen_line(description: str, failure: Failure) -> str:
    """One line naming the endpoint, what went wrong and what to do."""
    shown = description.split(":privateKey")[0]
    error = failure.value
    text = " ".join(str(error).split())[:300] or type(error).__name__
    if isinstance(error, CannotListenError) or "Address already in use" in text:
        fix = "stop the process using it or choose another port in server.endpoint"
        if "Permission denied" in text:
            fix = "use a port above 1023 (behind a reverse proxy) or give the process the right to bind it"
    else:
        fix = "fix server.endpoint (and its certificate files), then check with twistd ymds --check"
    return f"cannot listen on {shown}: {text}; {fix}"


def to_terminal(line: str) -> None:
    """``line`` on the process's real stderr (twistd turns ``sys.stderr`` into log events)."""
    stream = sys.__stderr__ or sys.stderr
    stream.write(line + "\n")
    stream.flush()


def die(reactor: Any, line: str) -> None:
    """End a running process with status 1 after ``line`` (the reactor stops first, so the
    other services stop cleanly; twistd itself would exit 0 after reactor.stop)."""
    to_terminal(line)

    def exit_now() -> None:
        sys.stdout.flush()
        os._exit(1)
    reactor.addSystemEventTrigger("after", "shutdown", exit_now)
    if reactor.running:
        reactor.stop()


def _transport(channel: TrackedHTTPChannel) -> Any:
    # a connected channel's transport is a TCP or TLS transport (both can abortConnection)
    return channel.transport
