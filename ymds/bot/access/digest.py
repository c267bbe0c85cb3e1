"""One owner alert per burst of removals, not one per person."""
from __future__ import annotations

from collections import Counter
from typing import Any, Awaitable, Callable

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ymds.bot.access.api import Clock, Timer
from ymds.bot.access.texts import say

log = Logger()

# How people got in (DoorKeeper), or "expired" for removals when a subscription (and its grace) ended.
REASONS = ("link", "added", "approved", "expired", "other")


class RemovalDigest:
    """Collects removals for ``window`` seconds after the first one, then sends ``alert``
    one summary (per chat: how many and why).  A burst longer than the window gives one
    summary per window.  A failed alert is logged and dropped: the removals themselves
    are already done, logged and counted."""

    def __init__(self, clock: Clock, alert: Callable[[str], Awaitable[Any]], language: str = "ru",
                 window: float = 60.0):
        self._clock = clock
        self._alert = alert
        self._language = language
        self._window = window
        self._removed: dict[int, Counter[str]] = {}
        self._titles: dict[int, str] = {}
        self._failed = 0
        self._timer: Timer | None = None
        self._stopped = False
        self.summaries_sent = 0

    def removed(self, chat_id: int, title: str, reason: str) -> None:
        self._titles[chat_id] = title
        self._removed.setdefault(chat_id, Counter())[reason if reason in REASONS else "other"] += 1
        self._arm()

    def failed(self, chat_id: int, title: str) -> None:
        self._titles[chat_id] = title
        self._failed += 1
        self._arm()

    @property
    def pending(self) -> int:
        return sum(sum(c.values()) for c in self._removed.values()) + self._failed

    def _arm(self) -> None:
        # After stop() a job still finishing may report a removal: it is logged and counted
        # already; arming a timer then would outlive the service.
        if self._timer is None and not self._stopped:
            self._timer = self._clock.callLater(self._window, self.flush)

    def summary(self) -> str:
        lang = self._language
        total = sum(sum(c.values()) for c in self._removed.values())
        lines = [say(lang, "removed_head", count=total)] if total else []
        for chat_id, reasons in sorted(self._removed.items()):
            why = ", ".join(f"{say(lang, 'reason_' + r)} {n}" for r, n in sorted(reasons.items()))
            lines.append(say(lang, "removed_line", chat=self._titles.get(chat_id) or chat_id,
                             count=sum(reasons.values()), reasons_html=why))
        if self._failed:
            lines.append(say(lang, "removed_failed", count=self._failed))
        return "\n".join(lines)

    def flush(self) -> Deferred | None:
        """Send what was collected now (None when nothing was)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if not self.pending:
            return None
        text = self.summary()
        self._removed, self._titles, self._failed = {}, {}, 0
        self.summaries_sent += 1
        return Deferred.fromCoroutine(self._send(text))

    async def _send(self, text: str) -> None:
        try:
            await self._alert(text)
        except Exception as e:
            log.warn("access: the removal summary could not be sent to the owner: {error}",
                     error=str(e) or type(e).__name__)

    def stop(self) -> None:
        """Forget the timer (service stopping); what was collected, or is reported from now
        on, is not sent."""
        self._stopped = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
