"""Assemble the roles' services from their parts.

``build_service`` takes the reactor and a validated Config and returns one MultiService
holding, in start order: the private Redis (demo), the shared queue client, then one
MultiService per role.  Stopping runs in reverse: web stops accepting first, the bot and
billing workers finish in-flight jobs, then connections and pools close.
"""

from __future__ import annotations

from twisted.application.service import MultiService
from twisted.logger import Logger

from ymds.config import Config
from ymds.metrics import Registry

log = Logger()


def build_service(reactor, config: Config, roles: set[str], private_redis=None, say=print, demo=False) -> MultiService:
    top = MultiService()
    top.setName("ymds")
    if private_redis is not None:
        private_redis.setServiceParent(top)
    metrics = Registry()

    # TEMPORARY until the queue's connector lands: a plain txredisapi connection.
    import txredisapi
    from urllib.parse import urlsplit
    parts = urlsplit(config.redis.url)
    if parts.scheme == "unix":
        conn = txredisapi.lazyUnixConnection(parts.path, convertNumbers=False)
    else:
        conn = txredisapi.lazyConnection(parts.hostname, parts.port or 6379, convertNumbers=False)

    async def redis_check():
        await conn.ping()
        return True, "ok"

    checks = {"redis": redis_check}

    if "web" in roles:
        from ymds.web.health import HealthResource
        from ymds.web.listener import TrackingSite, WebListener
        from twisted.web.resource import Resource

        root = Resource()
        root.putChild(b"healthz", HealthResource(reactor, checks))
        site = TrackingSite(root)

        def listening(port):
            if demo:
                say(f"demo: open {config.server.public_url}/ in your browser (self-signed certificate for localhost)")

        web = MultiService()
        web.setName("web")
        WebListener(reactor, config.server.endpoint, site, on_listening=listening).setServiceParent(web)
        web.setServiceParent(top)
    log.info("roles: {roles}", roles=",".join(sorted(roles)))
    return top
