"""The dashboard's moderation of the stream overlay (issue 17): skip or replay one donation
alert, the same as ``ymds overlay skip|replay ID`` does, from billing (which writes the
overlay event stream).  AdminTasks applies each once per idempotency key and audits it."""
from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from ymds.jobwire import InvalidTaskArgs
from ymds.overlay.events import BadEvent, entry_order


class _QueuePool:
    """The job queue's Redis pool, looked up when used (the queue makes it on first use)."""

    def __init__(self, queue: Any):
        self._queue = queue

    def execute(self, *args: Any, timeout: float | None = None) -> Deferred[Any]:
        result: Deferred[Any] = self._queue.pool.execute(*args, timeout=timeout)
        return result


def queue_stream_writer(config: Any, queue: Any) -> Any:
    """An OverlayStreamWriter over the job queue's Redis, or None for a queue without one."""
    if getattr(queue, "pool", None) is None:
        return None
    from ymds.overlay.stream import OverlayStreamWriter
    return OverlayStreamWriter(_QueuePool(queue), config.redis.prefix)


class StreamAlerts:
    """Skip and replay through ``writer`` (an OverlayStreamWriter; None: this billing
    process has no Redis, and the actions are refused)."""

    def __init__(self, ledger: Any, writer: Any):
        self.ledger = ledger
        self.writer = writer

    @staticmethod
    def entry(item: str) -> str:
        """The overlay stream entry id named by a dashboard form; refused when it is not one."""
        try:
            entry_order(item)
        except BadEvent:
            raise InvalidTaskArgs("a stream alert is its overlay entry id (e.g. 1732900000000-0)") from None
        return item

    def _writer(self) -> Any:
        if self.writer is None:
            raise InvalidTaskArgs("this billing process has no Redis to write the overlay stream")
        return self.writer

    async def skip(self, entry_id: str) -> dict[str, Any]:
        """The overlays drop (or stop showing) the alert of ``entry_id``."""
        skip_entry = await self._writer().skip(entry_id)
        return {"item": entry_id, "count": 1, "entry": str(skip_entry)}

    async def replay(self, entry_id: str) -> dict[str, Any]:
        """The alert of ``entry_id`` is shown again; count 0 when the stream no longer holds it
        (it keeps the newest 1000 entries)."""
        new_entry = await self._writer().replay(entry_id)
        return {"item": entry_id, "count": 0 if new_entry is None else 1, "entry": str(new_entry or "")}
