"""The bot's @username for the landing page's "Subscribe in Telegram" buttons
(``https://t.me/<username>?start=<plan id>``), without the web role calling Telegram.

``telegram.bot_username`` in the configuration wins; otherwise the username the bot role
stored in Redis at start (``{prefix}:bot:username``, from getMe: ymds.bot.commands_lang),
read at most once a minute.  Until one is known the landing page has no such buttons.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

log = Logger()

REFRESH = 60.0  # seconds between Redis reads of the username
READ_TIMEOUT = 0.5  # a landing page waits at most this long for Redis


def subscribe_url(username: str, plan_id: str) -> str:
    """The deep link that opens the bot on a plan (its /start payload is the plan id)."""
    return f"https://t.me/{username}?start={plan_id}"


class BotUsername:
    """``current``: the username known now ("" when none); ``refresh()``: read Redis again
    when the last read is older than REFRESH seconds."""

    def __init__(self, config: Any, queue: Any, clock: Any):
        self.configured = config.telegram.bot_username
        self.key = f"{config.redis.prefix}:bot:username"
        self.queue = queue
        self.clock = clock
        self.current = self.configured
        self._read_at: float | None = None

    @property
    def stale(self) -> bool:
        return not self.configured and (self._read_at is None or self.clock.seconds() - self._read_at >= REFRESH)

    async def refresh(self) -> None:
        """Read the username (when stale); a failed read keeps the old one."""
        if not self.stale:
            return
        self._read_at = self.clock.seconds()  # one read per interval, even while this one runs
        try:
            pool = getattr(self.queue, "pool", None)
            if pool is None:
                return
            value = await pool.execute("GET", self.key)
        except Exception as e:  # Redis down or slow: no new buttons, the page still renders
            log.info("web: could not read the bot's username ({error})", error=str(e) or type(e).__name__)
            return
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str) and value.replace("_", "").isalnum() and len(value) <= 64:
            self.current = value
