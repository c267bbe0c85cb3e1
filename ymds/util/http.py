"""HTTP helpers shared by the clients and resources: bounded bodies, Retry-After, quiet pools."""

from __future__ import annotations

import math
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import BrowserLikePolicyForHTTPS, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer


class BodyTooLarge(Exception):
    """A response body was larger than allowed."""


def retry_after_seconds(wait: float) -> int:
    """The whole number of seconds for a Retry-After header: ``wait`` rounded up, at least 1."""
    return max(1, math.ceil(wait - 1e-3))


class _BoundedBody(Protocol):
    """Collects a body up to ``limit`` bytes; past it, fails (or, with ``truncate``, keeps the
    first ``limit`` bytes); cancelling stops reading and closes the connection."""

    def __init__(self, finished: Deferred[bytes], limit: int, truncate: bool):
        self.finished: Deferred[bytes] | None = finished
        self.limit = limit
        self.truncate = truncate
        self.size = 0
        self.chunks: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        if self.finished is None:
            return
        room = self.limit - self.size
        self.size += len(data)
        if self.size <= self.limit:
            self.chunks.append(data)
            return
        d, self.finished = self.finished, None
        self._stop()
        if self.truncate:
            self.chunks.append(data[:room])
            d.callback(b"".join(self.chunks))
        else:
            d.errback(BodyTooLarge(f"response body larger than {self.limit} bytes"))

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self.finished is None:
            return
        d, self.finished = self.finished, None
        if reason is None or reason.check(ResponseDone, PotentialDataLoss):
            d.callback(b"".join(self.chunks))
        else:
            d.errback(reason)

    def cancel(self) -> None:
        self.finished = None
        self._stop()

    def _stop(self) -> None:
        # a response body's transport is its IPushProducer (twisted.web.client's body protocol)
        producer: Any = self.transport
        if producer is not None:
            producer.stopProducing()


def read_body(response: Any, limit: int, truncate: bool = False) -> Deferred[bytes]:
    """Deferred[bytes] with the whole body of ``response``.

    Past ``limit`` bytes the connection is closed and the Deferred fails with BodyTooLarge,
    or, when ``truncate`` is true, fires with the first ``limit`` bytes.  Cancelling the
    Deferred closes the connection too, so a timeout never leaves a body streaming in.
    """
    protocol: _BoundedBody

    def cancel(_: Deferred[bytes]) -> None:
        protocol.cancel()

    finished: Deferred[bytes] = Deferred(cancel)
    protocol = _BoundedBody(finished, limit, truncate)
    response.deliverBody(protocol)
    return finished


@implementer(IStreamClientEndpoint)
class _QuietEndpoint:
    def __init__(self, endpoint: Any):
        self._endpoint = endpoint

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        # Factory.noisy is public: off, a pooled connection logs no "Starting factory" line
        if hasattr(protocolFactory, "noisy"):
            protocolFactory.noisy = False
        return self._endpoint.connect(protocolFactory)


@implementer(IAgentEndpointFactory)
class QuietEndpointFactory:
    """Endpoints as ``Agent`` makes them (TCP for http, TLS for https, a connect timeout)
    whose connections log nothing when they open and close.

    Use with ``Agent.usingEndpointFactory(reactor, QuietEndpointFactory(...), pool)``.
    """

    def __init__(self, reactor: object, connect_timeout: float | None = None,
                 policy: Any = None):
        self._reactor = reactor
        self._connect_timeout = connect_timeout
        self._policy = policy if policy is not None else BrowserLikePolicyForHTTPS()

    def endpointForURI(self, uri: Any) -> Any:
        endpoint: Any = HostnameEndpoint(self._reactor, uri.host, uri.port,
                                         timeout=30 if self._connect_timeout is None else self._connect_timeout)
        if uri.scheme == b"https":
            creator = self._policy.creatorForNetloc(uri.host, uri.port)
            endpoint = wrapClientTLS(creator, endpoint)
        return _QuietEndpoint(endpoint)
