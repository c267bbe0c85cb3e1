"""The web role's listening service: listen on a server endpoint, stop gracefully.

On stop it first stops accepting connections, then lets requests in flight finish for a
bounded time, closes idle keep-alive connections, and aborts whatever is left.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from typing import Any, Callable, Iterable

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


class ConnectionGuard:
    """Per-connection deadline and per-address cap (issue 14: a client sending one byte
    every 20 s held a connection for 100 s+, and one address could hold any number).

    - A connection must deliver a whole request within ``request_deadline`` seconds of
      opening, and the next one within the same time after each answer; slower ones are
      aborted.  A request being answered (a long poll, a stream) is not limited by it.
    - At most ``per_address`` connections per client address; more are closed at once.
      Loopback and ``trusted`` proxies (server.trusted_proxies) are exempt: every client
      behind a reverse proxy shares its address.
    """

    def __init__(self, request_deadline: float = 30.0, per_address: int = 64, trusted: Iterable[str] = (),
                 exempt_loopback: bool = True):
        self.request_deadline = request_deadline
        self.per_address = per_address
        self.exempt_loopback = exempt_loopback
        self._trusted = [ipaddress.ip_network(t.strip(), strict=False) for t in trusted if t.strip()]
        self.open: dict[str, int] = {}

    def exempt(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return True  # a unix socket or similar: not a network client
        return (address.is_loopback and self.exempt_loopback) or any(address in network for network in self._trusted)

    def admit(self, host: str) -> bool:
        """Count a new connection from ``host``; False when it is over the cap (not counted)."""
        if self.exempt(host):
            return True
        if self.open.get(host, 0) >= self.per_address:
            return False
        self.open[host] = self.open.get(host, 0) + 1
        return True

    def release(self, host: str) -> None:
        if host in self.open:
            self.open[host] -= 1
            if self.open[host] <= 0:
                del self.open[host]


class TrackedHTTPChannel(HTTPChannel):
    """An HTTP/1.1 channel that registers itself with its TrackingSite while connected and
    obeys the site's :class:`ConnectionGuard`."""

    _peer_host: str | None = None
    _deadline_call: Any = None

    def connectionMade(self) -> None:
        self.factory.channels.add(self)
        guard: ConnectionGuard = self.factory.guard
        host = getattr(_transport(self).getPeer(), "host", "")
        if not guard.admit(host):
            log.info("connection refused: more than {cap} open from one address", cap=guard.per_address)
            super().connectionMade()
            _transport(self).abortConnection()
            return
        self._peer_host = host
        super().connectionMade()
        self._arm_deadline()

    def _arm_deadline(self) -> None:
        self._disarm_deadline()
        self._deadline_call = self.callLater(self.factory.guard.request_deadline, self._too_slow)

    def _disarm_deadline(self) -> None:
        if self._deadline_call is not None and self._deadline_call.active():
            self._deadline_call.cancel()
        self._deadline_call = None

    def _too_slow(self) -> None:
        self._deadline_call = None
        log.info("connection aborted: no whole request within {seconds} s", seconds=self.factory.guard.request_deadline)
        _transport(self).abortConnection()

    def allContentReceived(self) -> None:
        self._disarm_deadline()  # the request is in: answering it has no deadline here
        super().allContentReceived()

    def requestDone(self, request: Any) -> None:
        super().requestDone(request)
        if self.persistent and not self.requests and self.transport is not None \
                and not getattr(self.transport, "disconnecting", False):
            self._arm_deadline()  # the next request must come whole within the deadline too

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._disarm_deadline()
        self.factory.channels.discard(self)
        if self._peer_host is not None:
            self.factory.guard.release(self._peer_host)
            self._peer_host = None
        super().connectionLost(reason)

    def in_flight(self) -> bool:
        """True while a request on this connection has not been answered."""
        return bool(self.requests)


class TrackingSite(Site):
    """A Site that remembers its open HTTP channels, so stopping can drain them, and guards
    them (``guard``: deadline and per-address cap, replaceable before listening).

    It speaks HTTP/1.1 through Twisted's public HTTPChannel (ymds offers no HTTP/2).
    """

    # HTTPFactory types this as building its private generic channel; any channel class will do
    protocol: Any = TrackedHTTPChannel
    noisy = False  # no "Starting factory ..." lines at info on every start and stop (issue 14)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.channels: set[TrackedHTTPChannel] = set()
        self.guard = ConnectionGuard()


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
