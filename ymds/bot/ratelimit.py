"""Pacing of outgoing Telegram calls on an injected clock.

Telegram's limits: about 30 messages per second overall, one per second per chat, 20 per
minute per group (negative chat ids).  The limiter hands out send slots:

- overall: evenly spaced slots ``1/30 s`` apart (no bursts), so that arrivals at Telegram
  never bunch up even with scheduling jitter.  When our own timer fires late while
  messages were waiting, the lost slots are made up for, but never more than ``catch_up``
  seconds' worth, so a stalled process does not burst afterwards;
- per chat: one message per ``chat_interval``;
- per group: at most ``group_count`` messages in any ``group_period`` (sliding window);
- a global pause (``pause(retry_after)`` after a 429) stops every slot until it ends.

Fairness: waiters are served first come, first served among the chats that may receive
a message now; a chat waiting for its own per-chat slot never holds up other chats.
Memory stays bounded: a chat's history is forgotten as soon as it no longer constrains
anything (1 s for private chats, 60 s for groups).
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict, deque

from twisted.internet.defer import CancelledError, Deferred
from zope.interface import implementer

from ymds.bot.interfaces import IRateLimiter

_NEVER = float("-inf")


class _Waiter:
    __slots__ = ("chat", "since", "deferred")

    def __init__(self, chat, since: float):
        self.chat = chat
        self.since = since
        self.deferred: Deferred | None = None


@implementer(IRateLimiter)
class RateLimiter:
    def __init__(self, clock, overall: int = 30, overall_period: float = 1.0, chat_interval: float = 1.0,
                 group_count: int = 20, group_period: float = 60.0, catch_up: float = 0.1):
        self._clock = clock
        self._interval = overall_period / overall
        self._chat_interval = chat_interval
        self._group_count = group_count
        self._group_period = group_period
        self._catch_up = catch_up
        self._next_slot = _NEVER
        self._paused_until = _NEVER
        self._waiting: dict[object, deque[_Waiter]] = {}
        self._ready: deque[tuple[object, float]] = deque()  # (chat, may send since)
        self._sleeping: list[tuple[float, int, object]] = []  # heap of (may send at, seq, chat)
        self._scheduled: set = set()
        self._seq = itertools.count()
        self._last: OrderedDict[object, float] = OrderedDict()  # chat -> last send, oldest first
        self._group_sends: OrderedDict[object, deque[float]] = OrderedDict()
        self._timer = None
        self._running = False
        self.sent = 0

    # --- public -------------------------------------------------------------------------

    async def acquire(self, chat_id=None) -> None:
        """Return when a message to ``chat_id`` may go out now (the slot is taken)."""
        waiter = _Waiter(chat_id, self._clock.seconds())

        def cancel(d: Deferred) -> None:
            queue = self._waiting.get(waiter.chat)
            if queue is not None and waiter in queue:
                queue.remove(waiter)

        waiter.deferred = Deferred(cancel)
        self._waiting.setdefault(chat_id, deque()).append(waiter)
        if chat_id not in self._scheduled:
            self._schedule(chat_id, self._clock.seconds())
        self._run()
        await waiter.deferred

    def pause(self, seconds: float) -> None:
        """No slot for anyone during the next ``seconds`` (Telegram said retry_after)."""
        until = self._clock.seconds() + max(0.0, seconds)
        if until > self._paused_until:
            self._paused_until = until
            self._next_slot = max(self._next_slot, until)
            self._run()

    @property
    def paused_until(self) -> float:
        return self._paused_until

    def waiting(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    def tracked_chats(self) -> int:
        """How many chats' histories are kept (bounded: only recently active chats)."""
        return len(self._last) + len(self._group_sends)

    def close(self) -> None:
        """Fail every waiter with CancelledError (service stopping)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        waiters = [w for q in self._waiting.values() for w in q]
        self._waiting.clear()
        self._ready.clear()
        self._sleeping.clear()
        self._scheduled.clear()
        for w in waiters:
            if not w.deferred.called:
                w.deferred.errback(CancelledError("rate limiter closed"))

    # --- inside -------------------------------------------------------------------------

    def _chat_ready_at(self, chat) -> float:
        if chat is None:
            return _NEVER
        at = self._last.get(chat, _NEVER) + self._chat_interval
        window = self._group_sends.get(chat)
        if window is not None and len(window) >= self._group_count:
            at = max(at, window[0] + self._group_period)
        return at

    def _schedule(self, chat, now: float) -> None:
        at = self._chat_ready_at(chat)
        self._scheduled.add(chat)
        if at <= now:
            self._ready.append((chat, max(at, self._waiting[chat][0].since)))
        else:
            heapq.heappush(self._sleeping, (at, next(self._seq), chat))

    def _record(self, chat, now: float) -> None:
        self.sent += 1
        if chat is None:
            return
        self._last[chat] = now
        self._last.move_to_end(chat)
        if chat < 0:
            window = self._group_sends.get(chat)
            if window is None:
                window = self._group_sends[chat] = deque(maxlen=self._group_count)
            window.append(now)
            self._group_sends.move_to_end(chat)

    def _forget_idle(self, now: float) -> None:
        # Ordered by last send: the front is the oldest, so stop at the first still relevant.
        while self._last:
            chat, last = next(iter(self._last.items()))
            if last + self._chat_interval > now:
                break
            del self._last[chat]
        while self._group_sends:
            chat, window = next(iter(self._group_sends.items()))
            if window[-1] + self._group_period > now:
                break
            del self._group_sends[chat]

    def _run(self) -> None:
        if self._running:  # a waiter's callback called acquire(): the outer loop goes on
            return
        self._running = True
        fired: list[_Waiter] = []
        try:
            now = self._clock.seconds()
            while True:
                while self._sleeping and self._sleeping[0][0] <= now:
                    at, _, chat = heapq.heappop(self._sleeping)
                    if self._waiting.get(chat):
                        self._ready.append((chat, max(at, self._waiting[chat][0].since)))
                    else:
                        self._waiting.pop(chat, None)
                        self._scheduled.discard(chat)
                while self._ready and not self._waiting.get(self._ready[0][0]):
                    chat, _ = self._ready.popleft()
                    self._waiting.pop(chat, None)
                    self._scheduled.discard(chat)
                if not self._ready:
                    break
                slot = max(self._next_slot, self._paused_until)
                if now < slot:
                    break
                chat, since = self._ready.popleft()
                waiter = self._waiting[chat].popleft()
                # Keep the even grid while demand was continuous (a late timer is made up for,
                # within catch_up); after idleness the grid restarts at this send.
                self._next_slot = max(self._next_slot, since, waiter.since, now - self._catch_up) + self._interval
                self._record(chat, now)
                fired.append(waiter)
                if self._waiting[chat]:
                    self._schedule(chat, now)
                else:
                    del self._waiting[chat]
                    self._scheduled.discard(chat)
            self._forget_idle(now)
            wake = []
            if self._ready:
                wake.append(max(self._next_slot, self._paused_until))
            if self._sleeping:
                wake.append(self._sleeping[0][0])
            if self._timer is not None and self._timer.active():
                self._timer.cancel()
            self._timer = None
            if wake:
                self._timer = self._clock.callLater(max(0.0, min(wake) - now), self._wake)
        finally:
            self._running = False
        for waiter in fired:
            waiter.deferred.callback(None)

    def _wake(self) -> None:
        self._timer = None
        self._run()
