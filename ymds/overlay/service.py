"""The overlay on one web node, as one Service: the tailer, the SSE hub and the resource.

Phase-2 wiring is then: build :class:`OverlayNode` with the node's Redis URL and prefix, a
token check (:class:`ymds.overlay.tokens.CachedTokenCheck` over the ledger), add it to the
web role's services, and ``putChild(b"overlay", node.resource)`` in the web root.
"""
from __future__ import annotations

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from ymds.overlay.pages import OverlaySettings
from ymds.overlay.resource import OverlayResource
from ymds.overlay.sse import GoalSnapshot, OverlayEvents, TokenCheck
from ymds.overlay.stream import OverlayTailer, open_redis

log = Logger()


class OverlayNode(Service):
    """One web node's overlay.  ``resource`` is ready at once (streams start being served
    when the tailer knows where the stream ends); ``clock`` drives the heartbeat."""

    def __init__(self, reactor, redis_url: str, prefix: str, token_valid: TokenCheck,
                 settings: OverlaySettings | None = None, sound: tuple[bytes, bytes] | None = None, *,
                 clock=None, goal_snapshot: GoalSnapshot | None = None, max_per_token: int = 10,
                 max_total: int = 1000, heartbeat: float = 15.0):
        self.reactor = reactor
        commands, blocking = open_redis(reactor, redis_url)
        self.tailer = OverlayTailer(reactor, commands, blocking, prefix)
        self.events = OverlayEvents(clock or reactor, self.tailer, token_valid, max_per_token=max_per_token,
                                    max_total=max_total, heartbeat=heartbeat, goal_snapshot=goal_snapshot)
        self.resource = OverlayResource(self.events, token_valid, settings or OverlaySettings(), sound)

    def startService(self) -> None:
        super().startService()
        # not awaited: the web node serves pages while Redis is still being reached
        self.tailer.start().addErrback(lambda f: log.failure("overlay: the stream reader did not start", f))
        self.events.start()

    def stopService(self) -> defer.Deferred:
        super().stopService()
        self.events.stop()
        return defer.Deferred.fromCoroutine(self.tailer.stop())
