"""Finding the Redis master through Sentinel, on the injected reactor.

Every connection attempt of a ``redis+sentinel://`` connection asks the sentinels afresh
(``SENTINEL GET-MASTER-ADDR-BY-NAME``), so after a failover the reconnect that follows the
lost connection reaches the new master.  All sentinels are asked at once, each on a
one-shot connection bounded by ``timeout`` (a dead host costs no more than that, and no
connection to a dead sentinel is kept reconnecting in the background); the address a
majority names wins, or, once every sentinel has answered or timed out, the most named one.
A sentinel that has not yet heard of a promotion may name the old master: the connection's
``ROLE`` check (ymds.queue.redis) refuses it and the next attempt asks again.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ymds.queue.errors import RedisUnavailable

log = Logger()


class MasterNotFound(RedisUnavailable):
    """No sentinel named a master for the service in time."""


def _parse_address_reply(data: bytes) -> tuple[bool, tuple[str, int] | None]:
    """(complete, address) for the reply to GET-MASTER-ADDR-BY-NAME read so far.

    The reply is ``*2 $host $port``, ``*-1`` (service unknown) or an ``-ERR`` line."""
    if b"\r\n" not in data:
        return False, None
    first, _, rest = data.partition(b"\r\n")
    if first.startswith(b"-") or first == b"*-1":
        return True, None
    if first != b"*2":
        return True, None
    parts = []
    for _ in range(2):
        head, sep, rest = rest.partition(b"\r\n")
        if not sep:
            return False, None
        if not head.startswith(b"$"):
            return True, None
        n = int(head[1:])
        if len(rest) < n + 2:
            return False, None
        parts.append(rest[:n].decode("ascii", "replace"))
        rest = rest[n + 2:]
    try:
        return True, (parts[0], int(parts[1]))
    except ValueError:
        return True, None


class _AskMaster(Protocol):
    """Sends one SENTINEL command, reads one reply, hangs up."""

    def __init__(self, service: str, answer: defer.Deferred):
        self._service = service.encode()
        self._answer = answer
        self._buffer = b""

    def connectionMade(self) -> None:
        args = [b"SENTINEL", b"GET-MASTER-ADDR-BY-NAME", self._service]
        assert self.transport is not None
        self.transport.write(b"*3\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > 4096:
            self._finish(None)
            return
        try:
            complete, address = _parse_address_reply(self._buffer)
        except ValueError:
            complete, address = True, None
        if complete:
            self._finish(address)

    def _finish(self, address: tuple[str, int] | None) -> None:
        if not self._answer.called:
            self._answer.callback(address)
        if self.transport is not None:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if not self._answer.called:
            self._answer.callback(None)


async def ask_sentinel(reactor: Any, host: str, port: int, service: str,
                       timeout: float) -> tuple[str, int] | None:
    """The master one sentinel names, or None (no answer within ``timeout``, unknown service)."""
    answer: defer.Deferred = defer.Deferred()
    endpoint = HostnameEndpoint(reactor, host, port, timeout=timeout)
    factory = Factory.forProtocol(lambda: _AskMaster(service, answer))
    factory.noisy = False  # one per connection attempt: no "Starting factory" lines
    connecting = endpoint.connect(factory)
    protocol_box: list = []
    connecting.addCallbacks(protocol_box.append, lambda _: None if answer.called else answer.callback(None))

    def expire() -> None:
        if not answer.called:
            answer.callback(None)
        if protocol_box and protocol_box[0].transport is not None:
            protocol_box[0].transport.abortConnection()
        elif not connecting.called:
            connecting.cancel()

    timer = reactor.callLater(timeout, expire)
    address = await answer
    if timer.active():
        timer.cancel()
    return address


async def discover_master(reactor: Any, sentinels: tuple[tuple[str, int], ...], service: str,
                          timeout: float) -> tuple[str, int]:
    """The master the sentinels name (see the module docstring); MasterNotFound if none does."""
    votes: Counter = Counter()
    majority = len(sentinels) // 2 + 1
    done: defer.Deferred = defer.Deferred()
    answered = [0]

    def count(address: tuple[str, int] | None) -> None:
        answered[0] += 1
        if address is not None:
            votes[address] += 1
        if done.called:
            return
        if address is not None and votes[address] >= majority:
            done.callback(address)
        elif answered[0] == len(sentinels):
            done.callback(votes.most_common(1)[0][0] if votes else None)

    for host, port in sentinels:
        defer.Deferred.fromCoroutine(ask_sentinel(reactor, host, port, service, timeout)).addCallback(count)
    address = await done
    if address is None:
        raise MasterNotFound(f"no sentinel named a master for {service!r} within {timeout:g}s")
    return address


@implementer(IStreamClientEndpoint)
class SentinelMasterEndpoint:
    """An endpoint that asks the sentinels for the master before every connection attempt."""

    def __init__(self, reactor: Any, sentinels: tuple[tuple[str, int], ...], service: str,
                 connect_timeout: float):
        self._reactor = reactor
        self._sentinels = sentinels
        self._service = service
        self._timeout = connect_timeout
        self.last_master: tuple[str, int] | None = None

    def connect(self, factory: Any) -> defer.Deferred:
        async def go() -> Any:
            address = await discover_master(self._reactor, self._sentinels, self._service,
                                            min(self._timeout, 2.0))
            if address != self.last_master:
                log.info("redis sentinel: master of {service} is {host}:{port}", service=self._service,
                         host=address[0], port=address[1])
                self.last_master = address
            endpoint = HostnameEndpoint(self._reactor, address[0], address[1], timeout=self._timeout)
            return await endpoint.connect(factory)
        return defer.Deferred.fromCoroutine(go())

    def close(self) -> defer.Deferred:
        return defer.succeed(None)
