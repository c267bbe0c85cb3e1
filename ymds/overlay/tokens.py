"""The overlay's secret token: making one, the two OBS URLs, and checking a token cheaply.

One token per shop, kept in the ledger (phase 2); ``ymds overlay-url --rotate`` stores a
new one and the old stops working.  Web nodes check tokens through :class:`CachedTokenCheck`,
which asks the ledger at most every ``ttl`` seconds, so a rotation takes effect on every
node within ``ttl`` seconds (plus the SSE heartbeat for streams already open).
"""
from __future__ import annotations

import hmac
import secrets
from typing import Awaitable, Callable

from twisted.logger import Logger

log = Logger()

TOKEN_BYTES = 24  # 32 URL-safe characters: matches ymds.overlay.resource.TOKEN


def new_token() -> str:
    """A fresh random overlay token (URL-safe, 32 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def overlay_urls(public_url: str, token: str) -> dict[str, str]:
    """The browser-source URLs ``ymds overlay-url`` prints: alerts, goal (and the raw events)."""
    base = f"{public_url.rstrip('/')}/overlay/{token}"
    return {"alerts": f"{base}/alerts", "goal": f"{base}/goal", "events": f"{base}/events"}


class CachedTokenCheck:
    """``await check(token)``: is ``token`` the current overlay token?

    ``current()`` fetches the stored token (None when none was made yet); its answer is kept
    ``ttl`` seconds on ``clock``.  Comparison is constant-time.  When the fetch fails and an
    earlier answer exists, that answer is used (and the failure logged) so a short ledger
    outage does not take every overlay down; with no earlier answer the failure is raised
    (the resource answers 503).
    """

    def __init__(self, clock, current: Callable[[], Awaitable[str | None]], ttl: float = 10.0):
        self.clock = clock
        self.current = current
        self.ttl = ttl
        self._cached: str | None = None
        self._fetched_at: float | None = None

    async def _token(self) -> str | None:
        now = self.clock.seconds()
        if self._fetched_at is not None and now - self._fetched_at < self.ttl:
            return self._cached
        try:
            self._cached = await self.current()
        except Exception as e:
            if self._fetched_at is None:
                raise
            log.warn("overlay: could not read the overlay token ({error}); using the one read before",
                     error=str(e))
            return self._cached
        self._fetched_at = now
        return self._cached

    async def __call__(self, token: str) -> bool:
        current = await self._token()
        return current is not None and hmac.compare_digest(current.encode(), token.encode())
