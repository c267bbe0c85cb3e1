"""The overall rate shared by every bot process of one token, through Redis.

Each process's :class:`~ymds.bot.ratelimit.RateLimiter` paces its own sends (overall, per
chat, per group, fairly).  When several bot processes send for the same bot, their sum
must still stay under Telegram's overall limit: before each send a process takes a turn
from a GCRA kept in Redis (``{prefix}:bot:pace``), dated by Redis's own clock (``TIME``) so
hosts with skewed clocks agree.  A turn is at most ``tolerance`` early, which absorbs the
local timers' jitter: a single process pacing itself never waits here.
"""

from __future__ import annotations


from ymds.bot.store import run_script
from ymds.util.clock import sleep

_TURN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tonumber(ARGV[2]) - now
if wait < 0 then wait = 0 end
redis.call('SET', KEYS[1], string.format('%.0f', tat + tonumber(ARGV[1])), 'PX', 60000)
return wait
"""


class RedisPacer:
    def __init__(self, redis, clock, key: str, rate: float = 30.0, tolerance: float = 0.1):
        self.redis = redis
        self.clock = clock
        self.key = key
        self.interval_us = int(round(1_000_000 / rate))
        self.tolerance_us = int(tolerance * 1_000_000)
        self.waited = 0.0  # seconds spent waiting for turns (for metrics and the benchmark)

    async def turn(self) -> None:
        """Return when this process may send the next message."""
        wait_us = int(await run_script(self.redis, _TURN, [self.key], [self.interval_us, self.tolerance_us]))
        if wait_us > 0:
            self.waited += wait_us / 1_000_000
            await sleep(self.clock, wait_us / 1_000_000)
