"""The Redis job queue (Redis Streams through txredisapi); see DESIGN.md section 7.

Wiring (one client per process, one Worker per consumed queue)::

    from twisted.application.service import MultiService
    from ymds.queue.client import RedisJobQueue
    from ymds.queue.registry import TaskRegistry
    from ymds.queue.stats import QueueStats
    from ymds.queue.worker import Worker

    stats = QueueStats()                                   # shared, read by /metrics
    queue = RedisJobQueue(reactor, config.redis, stats=stats)
    queue.setServiceParent(top)                            # IJobQueue: enqueue() / call()

    registry = TaskRegistry()
    registry.register(TASK_NAME, handler)                 # async def handler(args) -> JSON-able
    Worker(reactor, config.redis, config.queue, "billing", registry,
           stats=stats, on_dead=alert_admins).setServiceParent(top)

``on_dead(queue, info)`` gets ``{"queue", "task", "job_id", "args", "error", "attempts",
"reason"}`` for every job moved to ``{prefix}:q:<queue>:dead``.  Dead letters are listed and
replayed with :class:`ymds.queue.admin.QueueAdmin`.
"""
from ymds.queue.errors import JobTimeout, PermanentJobError, QueueError, QueueStopped, RedisUnavailable, RemoteJobError

__all__ = ["JobTimeout", "PermanentJobError", "QueueError", "QueueStopped", "RedisUnavailable", "RemoteJobError"]
