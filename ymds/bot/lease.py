"""A Redis lease: at most one process holds it; it lapses unless renewed.

``SET key owner NX PX ttl`` takes it; the holder extends it with a compare-and-extend
script (only if the value is still its own token), and gives it back with
compare-and-delete.  The holder also keeps a local deadline: if renewals fail (Redis
unreachable) it must consider the lease lost once ``ttl`` minus a safety margin has
passed since its last successful renewal, because by then another process may hold it.
"""

from __future__ import annotations

import os
import socket

from ymds.bot.store import run_script

_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def new_owner_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(6).hex()}"


class RedisLease:
    def __init__(self, redis, clock, key: str, ttl: float = 15.0, owner: str | None = None,
                 safety: float = 0.2):
        self.redis = redis
        self.clock = clock
        self.key = key
        self.ttl = ttl
        self.owner = owner or new_owner_token()
        self._safety = safety  # fraction of ttl given up locally for clock drift and latency
        self._valid_until = float("-inf")

    @property
    def held(self) -> bool:
        """Whether we may act as the holder right now (by our own clock)."""
        return self.clock.seconds() < self._valid_until

    @property
    def valid_until(self) -> float:
        """The clock time until which we may act as the holder (-inf when not held)."""
        return self._valid_until

    def _granted(self, asked_at: float) -> None:
        # Counted from when we asked: Redis started the PX clock no earlier than that.
        self._valid_until = asked_at + self.ttl * (1 - self._safety)

    async def acquire(self) -> bool:
        asked_at = self.clock.seconds()
        reply = await self.redis.execute("SET", self.key, self.owner, "PX", int(self.ttl * 1000), "NX")
        if reply in ("OK", b"OK"):
            self._granted(asked_at)
            return True
        return await self.renew()  # still ours from before (e.g. a quick reconnect)?

    async def renew(self) -> bool:
        asked_at = self.clock.seconds()
        result = await run_script(self.redis, _EXTEND, [self.key], [self.owner, int(self.ttl * 1000)])
        if int(result) == 1:
            self._granted(asked_at)
            return True
        self._valid_until = float("-inf")
        return False

    async def release(self) -> None:
        self._valid_until = float("-inf")
        await run_script(self.redis, _RELEASE, [self.key], [self.owner])

    def forget(self) -> None:
        """Stop considering the lease ours (without telling Redis)."""
        self._valid_until = float("-inf")
