"""The dashboard served for real on loopback: a private redis-server, Redis sessions, the
in-memory data, and /admin + /static in a twisted.web Site (phase 2 mounts it in make_site)."""
from __future__ import annotations

from datetime import datetime, timezone

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.support.admin_data import sample_data
from tests.support.redis_server import RedisServer
from ymds.admin.resource import AdminResource
from ymds.admin.sessions import AdminSessions, login_url
from ymds.queue.redis import RedisPool, parse_redis_url
from ymds.web.site import StaticResource


class AdminSite:
    """``sessions_clock`` drives session expiry (a task.Clock starting at the real time)."""

    def __init__(self, testcase, timezone_name: str = "Europe/Moscow", default_lang: str = "ru"):
        self.redis = RedisServer(appendonly=False).start()
        testcase.addCleanup(self.redis.cleanup)
        self.pool = RedisPool(reactor, parse_redis_url(self.redis.url), name="admin-test")
        testcase.addCleanup(self.pool.close)
        self.sessions_clock = Clock()
        self.sessions_clock.advance(reactor.seconds())
        self.sessions = AdminSessions(self.pool, self.sessions_clock, prefix="test", idle=600, absolute=3600)
        self.now = datetime.now(timezone.utc)
        self.data = sample_data(self.now)
        root = Resource()
        self.admin = AdminResource(self.sessions, self.data, reactor, timezone_name, default_lang)
        root.putChild(b"admin", self.admin)
        root.putChild(b"static", StaticResource())
        self.port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        testcase.addCleanup(self.port.stopListening)
        self.base = f"http://localhost:{self.port.getHost().port}"

    async def login_url(self, minutes: int = 10) -> str:
        return login_url(self.base, await self.sessions.issue_login_token(minutes, admin="tg:42"))
