"""The job queue as the other roles see it."""
from zope.interface import Attribute, Interface


class IJobQueue(Interface):
    """Enqueue jobs and make RPC calls on named queues ("billing", "bot").

    Arguments and results are JSON-compatible dicts/lists; ``decimal.Decimal`` values
    survive the round trip and come back as Decimal.
    """

    def enqueue(queue, task, args, key=None, delay=None):
        """Add a job; fires with the job id (or None when ``key`` was already used).

        ``key`` is an idempotency key (SET NX with TTL in the enqueue script);
        ``delay`` (seconds) schedules the job for later through the delayed set.
        The Deferred fires only once the job is durably in Redis.
        """

    def call(queue, task, args, timeout=10.0):
        """RPC: fires with the handler's return value, or fails with RemoteJobError
        (the handler's error) or JobTimeout."""


class ITaskRegistry(Interface):
    """Handlers by task name; a handler is ``async def handler(args: dict) -> result``."""

    def register(task, handler):
        """Register ``handler`` for ``task``."""

    def lookup(task):
        """The handler for ``task`` or None."""


class IQueueStats(Interface):
    counters = Attribute("dict of name -> number, for /metrics")
