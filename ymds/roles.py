"""Assemble the roles' services from their parts.

``build_service`` takes the reactor and a validated Config and returns one MultiService
holding, in start order: the private Redis (demo), the shared queue client, then one
service per role.  Stopping runs in reverse: web stops accepting and drains first, the bot
and billing workers finish in-flight jobs within queue.stop_timeout, then the ledger pool,
the Redis connections and the private Redis close.
"""

from __future__ import annotations

import os
import sys

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ymds.config import Config
from ymds.metrics import Registry
from ymds.services import SequentialMultiService
from ymds.util.services import CloseOnStop

log = Logger()


def fatal(reactor, message: str) -> None:
    """Stop with one line on stderr and exit status 1 (a start-up problem found late)."""
    log.critical("{message}", message=message)
    sys.stderr.write(message.rstrip() + "\n")
    sys.stderr.flush()
    reactor.addSystemEventTrigger("after", "shutdown", os._exit, 1)
    if reactor.running:
        reactor.stop()
    else:
        reactor.callWhenRunning(reactor.stop)


class BillingRole(SequentialMultiService):
    """Migrates the ledger, then starts the billing worker, timers and heartbeat.

    The worker must not take jobs before the schema is current, so the inner services are
    built only once ``migrate()`` succeeded; a schema newer than this code stops ymds.
    """

    name = "billing"

    def __init__(self, reactor, config: Config, queue, metrics: Registry, stats, redis_execute):
        super().__init__()
        self._reactor = reactor
        self._config = config
        self._queue = queue
        self._metrics = metrics
        self._stats = stats
        self._redis_execute = redis_execute
        self.ledger = None
        self.started: Deferred = Deferred()

    def startService(self):
        Service.startService(self)
        Deferred.fromCoroutine(self._start()).addErrback(
            lambda f: fatal(self._reactor, f"ledger: {f.getErrorMessage()}"))

    async def _start(self) -> None:
        from ymds.billing.open import open_ledger
        from ymds.billing.service import make_billing_service
        from ymds.heartbeat import LedgerHeartbeat

        config = self._config
        from ymds.observability import InstrumentedLedger
        self.ledger = InstrumentedLedger(open_ledger(config.ledger.url, self._reactor), self._metrics)
        await self.ledger.migrate()
        wallet_api = None
        if config.yoomoney.api_token:
            from ymds.yoomoney.wallet_api import WalletAPI
            wallet_api = WalletAPI(self._reactor, config.yoomoney.api_url, config.yoomoney.api_token,
                                   **_sandbox_tls_options(config))
        if not self.running:  # stopped while migrating
            await self.ledger.close()
            return
        from ymds.bot.service import dead_letter_alert
        billing = make_billing_service(self._reactor, config, self._queue, self.ledger, wallet_api=wallet_api,
                                       stats=self._stats, worker_options={"on_dead": dead_letter_alert(self._queue)})
        billing.setServiceParent(self)
        LedgerHeartbeat(self.ledger, self._redis_execute, config.redis.prefix, self._reactor).setServiceParent(self)
        log.info("billing role started (ledger {kind})", kind=config.ledger.url.split(":", 1)[0])
        self.started.callback(None)


def _sandbox_tls_options(config: Config) -> dict:
    """The demo's sandbox API lives on our own self-signed TLS endpoint."""
    from ymds.sandbox.trust import local_tls_options
    return local_tls_options(config, config.yoomoney.api_url)


def build_service(reactor, config: Config, roles: set[str], private_redis=None, say=print, demo=False) -> MultiService:
    from ymds.heartbeat import ledger_health_check
    from ymds.queue.client import RedisJobQueue
    from ymds.queue.stats import QueueStats

    top = SequentialMultiService()
    top.setName("ymds")
    if private_redis is not None:
        private_redis.setServiceParent(top)
    metrics = Registry()
    stats = QueueStats()
    queue = RedisJobQueue(reactor, config.redis, stats=stats)
    queue.setServiceParent(top)
    top.queue = queue
    top.metrics = metrics

    def redis_execute(*args):
        return queue.pool.execute(*args)

    async def redis_check():
        answer = await redis_execute("PING")
        return answer in ("PONG", b"PONG", True), "ok"

    from ymds.web.health import checks_for_roles
    # the ledger heartbeat decides /healthz only where billing runs (issue 14)
    checks = checks_for_roles(roles, {"redis": redis_check, "ledger": ledger_health_check(redis_execute, config.redis.prefix)})
    from ymds.observability import MetricsOnly, QueueDepthPoller, queue_collector
    metrics.add_collector(queue_collector(stats))
    QueueDepthPoller(queue, metrics, reactor).setServiceParent(top)

    if "billing" in roles:
        top.billing = BillingRole(reactor, config, queue, metrics, stats, redis_execute)
        top.billing.setServiceParent(top)

    if "bot" in roles:
        from ymds.bot.service import make_bot_service
        top.bot = make_bot_service(reactor, config, queue, metrics=metrics, stats=stats)
        top.bot.setServiceParent(top)

    if "web" in roles:
        from ymds.web.listener import ConnectionGuard, TrackingSite, WebListener
        from ymds.web.site import make_site

        sandbox = None
        if config.yoomoney.sandbox:
            from ymds.sandbox.resource import SandboxResource
            local = config.server.public_url.startswith("https://localhost")
            from ymds.sandbox.store import PersistentOperationStore, store_directory
            operations = PersistentOperationStore(store_directory(config, os.getcwd()))
            sandbox = SandboxResource(reactor, config, insecure_local_tls=local, operations=operations)
            log.warn("yoomoney.sandbox is on: /sandbox is a FAKE wallet for tests and demos; turn it off to go live")
        from ymds.api.resource import make_api_resource
        api = make_api_resource(reactor, config, queue, metrics)
        from ymds.overlay.web import make_overlay_node
        overlay = make_overlay_node(reactor, config, queue)  # issue 17: /overlay/<token>/...
        from ymds.admin.web import make_admin_resource
        admin = make_admin_resource(reactor, config, queue)  # issue 16: /admin, the owner's dashboard
        site = make_site(reactor, config, queue, metrics, checks, sandbox=sandbox, site_class=TrackingSite, api=api,
                         overlay=overlay.resource, admin=admin)
        site.guard = ConnectionGuard(trusted=config.server.trusted_proxies)  # deadline + per-address cap (issue 14)

        def listening(port):
            if demo:
                say(f"demo: open {config.server.public_url}/ in your browser (self-signed certificate for localhost)")

        web = SequentialMultiService()
        web.setName("web")
        if sandbox is not None:
            CloseOnStop(sandbox.stop, name="sandbox").setServiceParent(web)
        top.web_listener = WebListener(reactor, config.server.endpoint, site, on_listening=listening)
        top.web_listener.setServiceParent(web)
        overlay.setServiceParent(web)  # stops first: its endless streams end before the listener drains
        web.setServiceParent(top)
    if config.server.metrics_endpoint:
        from ymds.web.listener import TrackingSite, WebListener
        metrics_site = TrackingSite(MetricsOnly(metrics))
        metrics_site.log = lambda request: None
        WebListener(reactor, config.server.metrics_endpoint, metrics_site, drain_timeout=1.0).setServiceParent(top)
    _notify_systemd_when_ready(reactor, [d for d in (getattr(getattr(top, "web_listener", None), "listening", None),
                                                     getattr(getattr(top, "billing", None), "started", None))
                                         if d is not None])
    log.info("roles: {roles}", roles=",".join(sorted(roles)))
    return top


def _notify_systemd_when_ready(reactor, waits: list[Deferred]) -> None:
    """READY=1 to systemd (Type=notify units) once the web listener is up and the billing
    role has migrated the ledger; at once for a process with neither.  A failed start
    never reports ready (systemd then times the unit out or sees it exit)."""
    from twisted.internet.defer import gatherResults

    from ymds import sdnotify

    if not waits:
        reactor.callWhenRunning(sdnotify.ready)
        return
    mine = []
    for d in waits:
        relay: Deferred = Deferred()

        def passing(result, relay=relay):
            (relay.errback if hasattr(result, "getErrorMessage") else relay.callback)(result)
            return result

        d.addBoth(passing)
        mine.append(relay)
    gatherResults(mine, consumeErrors=True).addCallbacks(lambda _: sdnotify.ready(), lambda failure: None)
