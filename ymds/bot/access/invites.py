"""One live invitation link per (subscriber, chat), and a rate limit on the button.

Links are created with ``creates_join_request``: whoever opens one only asks to join, and
the DoorKeeper approves the subscriber alone, so a shared link lets nobody else in.  On top
of that a subscriber holds at most one live link per chat: pressing again returns the same
link while it stays valid for ``min_validity`` seconds; otherwise the old link is revoked
before a new one is made.  Where the link is remembered is an :class:`InviteStore` (the
ledger in production, so that the rule holds across processes); within a process presses
of one (user, chat) are handled one at a time.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Protocol

from twisted.internet.defer import DeferredLock
from twisted.logger import Logger

from ymds.bot.access.api import ChatAdminAPI, Clock
from ymds.bot.errors import BadRequest

log = Logger()


@dataclass(frozen=True)
class LiveInvite:
    user_id: int
    chat_id: int
    invite_link: str
    expire_date: int  # Unix time


class InviteStore(Protocol):
    """Where each (user, chat)'s live link is kept."""

    async def live_invite(self, user_id: int, chat_id: int) -> LiveInvite | None:
        """The link on record, or None."""

    async def swap_invite(self, user_id: int, chat_id: int, expected: str | None, new: LiveInvite | None) -> bool:
        """Atomically replace the record when it is ``expected`` (None: no record) by
        ``new`` (None: remove it); False, changing nothing, when the record differs."""


class PressTooSoon(Exception):
    """The button was pressed too often; ``retry_after`` seconds until it works again."""

    def __init__(self, retry_after: float):
        super().__init__(f"retry after {retry_after:.0f} s")
        self.retry_after = retry_after


class PressLimiter:
    """At most ``presses`` per ``period`` seconds per key (a sliding window).

    ymds.bot.ratelimit paces sends by making callers wait; a button must refuse at once
    instead, hence this.  Memory is bounded: at most ``max_keys`` keys, oldest dropped."""

    def __init__(self, clock: Clock, presses: int = 3, period: float = 60.0, max_keys: int = 100_000):
        self._clock = clock
        self._presses = presses
        self._period = period
        self._max_keys = max_keys
        self._seen: OrderedDict[object, deque[float]] = OrderedDict()

    def check(self, key: object) -> None:
        """Record a press, or raise PressTooSoon without recording it."""
        now = self._clock.seconds()
        times = self._seen.pop(key, None) or deque()
        while times and times[0] <= now - self._period:
            times.popleft()
        if len(times) >= self._presses:
            self._seen[key] = times
            raise PressTooSoon(times[0] + self._period - now)
        times.append(now)
        self._seen[key] = times
        while len(self._seen) > self._max_keys:
            self._seen.popitem(last=False)


class InviteIssuer:
    """Hands out each subscriber's one live join-request link to a chat."""

    def __init__(self, api: ChatAdminAPI, store: InviteStore, clock: Clock,
                 limiter: PressLimiter | None = None, min_validity: int = 600, name: str = "ymds"):
        self._api = api
        self._store = store
        self._clock = clock
        self._limiter = limiter
        self._min_validity = min_validity
        self._name = name
        self._locks: dict[tuple[int, int], DeferredLock] = {}

    async def invite(self, user_id: int, chat_id: int, expire_date: int) -> tuple[LiveInvite, bool]:
        """(the live link, True when it is the one handed out before).  ``expire_date`` is
        when a new link should stop working (the caller bounds it by the subscription).
        Raises PressTooSoon, or the Telegram error of a failed call (nothing half done)."""
        if self._limiter is not None:
            self._limiter.check(("invite", user_id))
        key = (user_id, chat_id)
        lock = self._locks.setdefault(key, DeferredLock())
        await lock.acquire()
        try:
            return await self._invite(user_id, chat_id, expire_date)
        finally:
            lock.release()
            if not lock.locked and not lock.waiting:
                self._locks.pop(key, None)

    async def _invite(self, user_id: int, chat_id: int, expire_date: int) -> tuple[LiveInvite, bool]:
        for _ in range(3):  # another process may change the record between our steps
            current = await self._store.live_invite(user_id, chat_id)
            if current is not None and current.expire_date - self._clock.seconds() >= self._min_validity:
                return current, True
            if current is not None:
                await self._revoke(chat_id, current.invite_link)
                if not await self._store.swap_invite(user_id, chat_id, current.invite_link, None):
                    continue
            made = await self._api.createChatInviteLink(chat_id, creates_join_request=True,
                                                        expire_date=expire_date, name=self._name)
            new = LiveInvite(user_id, chat_id, str(made["invite_link"]), expire_date)
            if await self._store.swap_invite(user_id, chat_id, None, new):
                return new, False
            await self._revoke(chat_id, new.invite_link)  # lost the race: keep the other one
        raise RuntimeError("the invite record kept changing; try again")

    async def forget(self, user_id: int, chat_id: int) -> bool:
        """Revoke and drop the user's live link to the chat (their access ended: a renewal
        then gets a new link); False when there was none."""
        key = (user_id, chat_id)
        lock = self._locks.setdefault(key, DeferredLock())
        await lock.acquire()
        try:
            current = await self._store.live_invite(user_id, chat_id)
            if current is None:
                return False
            await self._revoke(chat_id, current.invite_link)
            return await self._store.swap_invite(user_id, chat_id, current.invite_link, None)
        finally:
            lock.release()
            if not lock.locked and not lock.waiting:
                self._locks.pop(key, None)

    async def _revoke(self, chat_id: int, invite_link: str) -> None:
        try:
            await self._api.revokeChatInviteLink(chat_id, invite_link)
        except BadRequest as e:  # already gone (expired, revoked by hand): nothing to do
            log.info("access: revoking an old invite link in {chat_id}: {error}", chat_id=chat_id, error=e.description)
