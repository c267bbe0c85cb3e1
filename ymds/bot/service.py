"""The bot role as one MultiService: the polling (with its lease), the ``bot`` queue worker,
and the shared pieces (API client, rate limiter, Redis state).

For ymds/tap.py::

    from ymds.bot.service import make_bot_service
    bot = make_bot_service(reactor, config, queue)       # queue: the process's RedisJobQueue
    bot.setServiceParent(top)

Every bot process runs a worker (sending is shared by all of them: each paces itself with
its RateLimiter, and all of them together through the Redis pacer); only the lease holder
polls.
"""

from __future__ import annotations

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger

from ymds.billing.access_config import paid_chats
from ymds.bot.access.wiring import POLLED_UPDATES, AccessService
from ymds.bot.api import BotAPI
from ymds.bot.commands_lang import BotIntroduction
from ymds.bot.handlers import UpdateHandler
from ymds.bot.jobs import NOTIFY_ADMINS, BotClient, NotifyAdmins
from ymds.bot.lease import RedisLease
from ymds.bot.pacer import RedisPacer
from ymds.bot.polling import PollingService
from ymds.bot.ratelimit import RateLimiter
from ymds.bot.sender import BotTasks, Sender
from ymds.bot.store import BotStore

log = Logger()


def dead_letter_alert(queue):
    """An ``on_dead`` callback for any Worker: tell the owner (not for the alerts themselves)."""

    bot = BotClient(queue)

    def on_dead(queue_name: str, info: dict):
        if info.get("task") == NOTIFY_ADMINS:
            return None
        params = {"queue": queue_name, "task": str(info.get("task", "")), "error": str(info.get("error", ""))[:300]}
        return bot.notify_admins(NotifyAdmins("dead_letter", params, f"dead:{queue_name}:{info.get('job_id')}"))

    return on_dead


class BotService(MultiService):
    """Stops its children (polling, worker) first and only then closes the shared
    resources, so that no request is still using the HTTP or Redis pool when they close."""

    parts: BotParts  # set by make_bot_service: the pieces, for tests and /healthz

    def __init__(self, limiter, api, redis, own_redis: bool):
        super().__init__()
        self.setName("bot")
        self._limiter = limiter
        self._api = api
        self._redis = redis
        self._own_redis = own_redis

    def stopService(self):
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        await DeferredList([d for d in [super().stopService()] if d is not None], consumeErrors=True)
        self._limiter.close()
        closing = [Deferred.fromCoroutine(self._api.close())]
        if self._own_redis and hasattr(self._redis, "close"):
            closing.append(self._redis.close())
        await DeferredList(closing, consumeErrors=True)


class BotParts:
    """The pieces, for tests and tools that want to reach them."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def make_bot_service(reactor, config, queue, registry=None, worker_factory=None, redis=None, *,
                     api=None, limiter=None, lease_ttl: float = 15.0, poll: bool = True,
                     worker: bool = True, shared_pace: bool = True, metrics=None, stats=None) -> MultiService:
    """Build the bot role.

    - ``queue``: an IJobQueue (enqueue to billing/bot, RPC to billing).
    - ``registry``: an ITaskRegistry for the ``bot`` queue (a new TaskRegistry by default);
      the bot's tasks are registered in it.
    - ``worker_factory(registry) -> IService``: the bot queue's consumer; by default
      ``Worker(reactor, config.redis, config.queue, "bot", registry, on_dead=...)``.
    - ``redis``: an object with ``execute(*args) -> Deferred`` (default: a RedisPool of its own
      from config.redis.url, convertNumbers=False, closed on stop).
    - ``poll``/``worker``: leave out polling or the worker (e.g. a send-only process).
    - ``metrics``: the /metrics Registry (ymds_bot_messages_total{outcome}, ymds_bot_polling,
      ymds_bot_waiting_for_slot); ``stats``: the QueueStats given to the default Worker.
    - ``shared_pace``: also take a turn from the Redis pacer before each message, so that
      several bot processes together stay under the overall 30/s.

    The returned MultiService has ``.parts`` (api, limiter, store, sender, tasks, handlers,
    polling, lease) for tests and /healthz.
    """
    telegram = config.telegram
    if not telegram.token:
        raise ValueError("the bot role needs telegram.token")
    api = api or BotAPI(reactor, telegram.token, telegram.api_url)
    own_redis = redis is None
    if redis is None:
        from ymds.queue.redis import RedisPool, parse_redis_url
        redis = RedisPool(reactor, parse_redis_url(config.redis.url), size=1, name="bot:")
    store = BotStore(redis, config.redis.prefix, config.redis.min_replicas, config.redis.replica_timeout)
    limiter = limiter or RateLimiter(reactor)
    pacer = RedisPacer(redis, reactor, f"{config.redis.prefix}:bot:pace") if shared_pace else None
    sender = Sender(api, limiter, store, queue, reactor, pacer=pacer, metrics=metrics)
    handlers = UpdateHandler(config, queue, sender, store, api)
    tasks = BotTasks(config, sender, api, store, queue, reactor, limiter, handlers)
    access = None
    chats = paid_chats(config)
    if chats:  # issue 15: join requests bound to the payer, intruders removed
        access = AccessService(config, api, queue, reactor, chats, metrics=metrics)
        handlers.access = tasks.access = access
    if registry is None:
        from ymds.queue.registry import TaskRegistry
        registry = TaskRegistry()
    tasks.register(registry)
    top = BotService(limiter, api, redis, own_redis)
    if access is not None:
        access.setServiceParent(top)  # started first, stopped last

    consumer = None
    if worker:
        if worker_factory is None:
            from ymds.queue.worker import Worker

            def worker_factory(registry):
                return Worker(reactor, config.redis, config.queue, "bot", registry, stats=stats,
                              on_dead=dead_letter_alert(queue))

        consumer = worker_factory(registry)
        consumer.setServiceParent(top)

    polling = lease = None
    if poll:
        BotIntroduction(config, api, redis, reactor).setServiceParent(top)  # issue 19: menu, username
        bot_id = telegram.token.split(":", 1)[0]  # the public numeric id, not the secret part

        async def dispatch(update: dict) -> None:
            # The key makes a re-fetched update (crash before the offset was stored) a no-op.
            await BotClient(queue).update(update, key=f"update:{bot_id}:{update['update_id']}")

        lease = RedisLease(redis, reactor, store.lease_key, ttl=lease_ttl)
        updates = POLLED_UPDATES if access is not None else ("message", "callback_query")
        polling = PollingService(reactor, api, store, lease, dispatch, poll_timeout=telegram.poll_timeout,
                                 allowed_updates=updates)
        polling.setServiceParent(top)

    if metrics is not None:
        metrics.gauge("ymds_bot_polling", "1 if this process holds the Telegram polling lease").set_function(
            lambda: 1.0 if polling is not None and polling.polling else 0.0)
        metrics.gauge("ymds_bot_waiting_for_slot", "Messages of this process waiting for a rate-limit slot"
                      ).set_function(lambda: float(limiter.waiting()))
    top.parts = BotParts(api=api, limiter=limiter, pacer=pacer, store=store, sender=sender, tasks=tasks, handlers=handlers,
                         polling=polling, lease=lease, worker=consumer, registry=registry, redis=redis,
                         access=access)
    return top
