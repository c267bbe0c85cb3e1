"""The dashboard as the web role mounts it: sessions in the queue's Redis, data from billing.

``make_admin_resource(reactor, config, queue)`` is mounted at /admin by ymds.web.site;
``admin_sessions(redis, clock, config)`` is shared with ``ymds admin-link`` and the bot's
/admin command, so a link from any of them signs in on every web node.
"""
from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from ymds.admin.billing_data import BillingDashboardData
from ymds.admin.resource import AdminResource
from ymds.admin.sessions import AdminSessions, RedisCommands
from ymds.billing.admin_jobs import AdminClient


class QueueRedis:
    """RedisCommands over a RedisJobQueue's pool (looked up per call: it exists once started)."""

    def __init__(self, queue: Any):
        self._queue = queue

    def execute(self, *args: Any, timeout: float | None = None) -> Any:
        return self._queue.pool.execute(*args, timeout=timeout)


def admin_sessions(redis: RedisCommands, clock: Any, config: Any) -> AdminSessions:
    """The dashboard's sessions under ``<redis.prefix>:admin:*``."""
    return AdminSessions(redis, clock, prefix=config.redis.prefix)


def make_admin_resource(reactor: Any, config: Any, queue: Any, clock: Any = None) -> AdminResource:
    """/admin: the pages over billing (through ``queue``), in the owner's time zone and language."""
    clock = clock or reactor
    data = BillingDashboardData(AdminClient(queue), ZoneInfo(config.server.timezone))
    return AdminResource(admin_sessions(QueueRedis(queue), clock, config), data, clock,
                         timezone=config.server.timezone, default_lang=config.telegram.language,
                         sandbox=config.yoomoney.sandbox)
