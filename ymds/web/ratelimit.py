"""Token buckets per client address, with bounded memory, on an injected clock.

Public POSTs (/donate, refusals of /yoomoney/notify, quarantine writes) spend a token from
the bucket of the client's address.  A full bucket costs nothing to keep, so the table
forgets buckets that have refilled and, past ``max_clients``, the least recently seen one:
an attacker cycling addresses can only make us forget, never grow.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from typing import Iterable

from zope.interface import Interface, implementer


class IRateLimiter(Interface):
    def allow(key, cost=1.0):
        """Spend ``cost`` tokens of ``key``'s bucket; False when it does not hold them."""

    def retry_after(key, cost=1.0):
        """Seconds until ``key`` could spend ``cost`` tokens (0 when it can now)."""


@implementer(IRateLimiter)
class TokenBucketLimiter:
    """``rate`` tokens per second up to ``burst`` per key; ``clock`` has ``seconds()``."""

    def __init__(self, clock, rate: float, burst: float, max_clients: int = 10000):
        if rate <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("rate must be positive, burst at least 1, max_clients at least 1")
        self._clock = clock
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: str, now: float) -> float:
        state = self._buckets.get(key)
        if state is None:
            return self.burst
        tokens, at = state
        return min(self.burst, tokens + max(0.0, now - at) * self.rate)

    def allow(self, key: str, cost: float = 1.0) -> bool:
        now = self._clock.seconds()
        tokens = self._level(key, now)
        if tokens < cost:
            self._buckets[key] = (tokens, now)
            self._buckets.move_to_end(key)
            return False
        self._buckets[key] = (tokens - cost, now)
        self._buckets.move_to_end(key)
        self._trim(now)
        return True

    def retry_after(self, key: str, cost: float = 1.0) -> float:
        missing = cost - self._level(key, self._clock.seconds())
        return 0.0 if missing <= 0 else missing / self.rate

    def _trim(self, now: float) -> None:
        # Oldest first: drop buckets that have refilled (they equal a fresh one) ...
        while self._buckets:
            key, (tokens, at) = next(iter(self._buckets.items()))
            if tokens + (now - at) * self.rate >= self.burst:
                del self._buckets[key]
            else:
                break
        # ... and past the bound, the least recently seen ones.
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)


class ClientAddress:
    """The client's address, believing X-Forwarded-For only from trusted proxies.

    ``trusted`` holds addresses or networks (``"10.0.0.0/8"``).  Behind trusted proxies the
    client is the rightmost X-Forwarded-For entry that is not itself a trusted proxy.
    """

    def __init__(self, trusted: Iterable[str] = ()):
        self._networks = [ipaddress.ip_network(t.strip(), strict=False) for t in trusted if t.strip()]

    def is_trusted(self, host: str) -> bool:
        if not self._networks:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self._networks)

    def of(self, request) -> str:
        peer = request.getClientAddress()
        host = getattr(peer, "host", None) or "unix"
        if not self.is_trusted(host):
            return host
        forwarded = b",".join(request.requestHeaders.getRawHeaders(b"x-forwarded-for", []))
        hops = [h.strip() for h in forwarded.decode("latin-1").split(",") if h.strip()]
        for hop in reversed(hops):
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                return host  # garbage in the header: do not believe any of it
            if not self.is_trusted(hop):
                return hop
        return hops[0] if hops else host

    def via_trusted_https(self, request) -> bool:
        """The client reached a trusted proxy over HTTPS (X-Forwarded-Proto: https)."""
        peer = request.getClientAddress()
        if not self.is_trusted(getattr(peer, "host", "") or ""):
            return False
        proto = request.getHeader(b"x-forwarded-proto") or b""
        return proto.strip().lower() == b"https"
