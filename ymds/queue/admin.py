"""Dead letters for the admin CLI: ``ymds dead-letters`` lists, ``ymds replay`` re-enqueues.

Use the class from code that already holds a reactor and a config::

    admin = QueueAdmin(reactor, config.redis)
    letters = await admin.list_dead("billing", limit=20)
    replayed = await admin.replay("billing")            # all
    replayed = await admin.replay("billing", "1732..-0") # one entry id
    await admin.close()

or the module functions ``list_dead(reactor, redis_config, queue, limit)`` and
``replay(reactor, redis_config, queue, entry_id=None)`` that open and close a connection.
"""
from __future__ import annotations

import re

from ymds.queue import codec, scripts
from ymds.queue.keys import QueueKeys, check_name
from ymds.queue.redis import RedisPool, parse_redis_url

_ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


class QueueAdmin:
    def __init__(self, reactor, redis_config, command_timeout: float = 10.0):
        self.prefix = redis_config.prefix
        self.pool = RedisPool(reactor, parse_redis_url(redis_config.url), 1, "admin", command_timeout)

    def _keys(self, queue: str) -> QueueKeys:
        return QueueKeys(self.prefix, check_name("queue", queue))

    async def list_dead(self, queue: str, limit: int = 50) -> list[dict]:
        """Newest first: ``{"id", "task", "args", "job_id", "attempts", "error", "reason",
        "failed_at" (epoch seconds)}``."""
        limit = max(1, min(int(limit), 10000))
        rows = await self.pool.execute("XREVRANGE", self._keys(queue).dead, "+", "-", "COUNT", limit)
        out = []
        for entry_id, fields in rows or []:
            f = dict(zip(fields[::2], fields[1::2]))
            try:
                job = codec.loads(f.get("j", ""))
            except codec.CodecError:
                job = {}
            if not isinstance(job, dict):
                job = {}
            failed_at = f.get("failed_at", "")
            out.append({
                "id": entry_id,
                "task": f.get("task") or job.get("t", ""),
                "job_id": job.get("i", ""),
                "args": job.get("a"),
                "attempts": int(f["n"]) if f.get("n", "").isdigit() else 1,
                "error": f.get("error", ""),
                "reason": f.get("reason", ""),
                "failed_at": int(failed_at) / 1000 if failed_at.isdigit() else None,
            })
        return out

    async def replay(self, queue: str, entry_id: str | None = None) -> int:
        """Re-enqueue one dead letter (by its entry id) or all of them, as first attempts;
        they leave the dead stream in the same script call.  Returns how many."""
        keys = self._keys(queue)
        ids = []
        if entry_id is not None:
            if not _ENTRY_ID.match(entry_id):
                raise ValueError(f"{entry_id!r} is not a stream entry id (like 1732012345678-0)")
            ids = [entry_id]
        total = 0
        while True:
            replayed, removed = await scripts.REPLAY.run(self.pool, [keys.dead, keys.stream], ids)
            total += int(replayed)
            if ids or int(removed) < 1000:
                return total

    async def close(self) -> None:
        await self.pool.close()


async def list_dead(reactor, redis_config, queue: str, limit: int = 50) -> list[dict]:
    admin = QueueAdmin(reactor, redis_config)
    try:
        return await admin.list_dead(queue, limit)
    finally:
        await admin.close()


async def replay(reactor, redis_config, queue: str, entry_id: str | None = None) -> int:
    admin = QueueAdmin(reactor, redis_config)
    try:
        return await admin.replay(queue, entry_id)
    finally:
        await admin.close()
