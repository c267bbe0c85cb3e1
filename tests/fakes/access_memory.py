"""Small real in-memory parts for the access code's tests: who is subscribed, where the
live links are kept, and a Bot API caller joined to the fake Bot API in memory."""
from __future__ import annotations

from typing import Any

from twisted.internet import defer, task

from tests.fakes.fake_telegram import DEFAULT_TOKEN, FakeBotAPI
from ymds.bot.access.invites import LiveInvite
from ymds.bot.errors import error_from_answer


class MemoryPolicy:
    """Subscriptions as {user id: chats covered}; ``admins`` are telegram.admins.
    ``failing`` makes every question fail (billing unreachable)."""

    def __init__(self, admins=()):
        self.subscriptions: dict[int, set[int]] = {}
        self.admins = set(admins)
        self.failing = False
        self.questions = 0

    def subscribe(self, user_id: int, *chats: int) -> None:
        self.subscriptions.setdefault(user_id, set()).update(chats)

    def expire(self, user_id: int) -> None:
        self.subscriptions.pop(user_id, None)

    async def covers(self, user_id: int, chat_id: int) -> bool:
        self.questions += 1
        if self.failing:
            raise ConnectionError("billing unreachable")
        return chat_id in self.subscriptions.get(user_id, ())

    async def is_admin(self, user_id: int) -> bool:
        return user_id in self.admins


class MemoryInviteStore:
    def __init__(self):
        self.records: dict[tuple[int, int], LiveInvite] = {}

    async def live_invite(self, user_id: int, chat_id: int) -> LiveInvite | None:
        return self.records.get((user_id, chat_id))

    async def swap_invite(self, user_id: int, chat_id: int, expected: str | None, new: LiveInvite | None) -> bool:
        current = self.records.get((user_id, chat_id))
        if (current.invite_link if current else None) != expected:
            return False
        if new is None:
            self.records.pop((user_id, chat_id), None)
        else:
            self.records[(user_id, chat_id)] = new
        return True


class FakeCaller:
    """``call(method, params)`` answered by the fake directly (no HTTP), errors typed as
    BotAPI does; with ``delay``, each call takes that long on ``clock`` (for races)."""

    def __init__(self, fake: FakeBotAPI, clock=None, delay: float = 0.0):
        self.fake = fake
        self.clock = clock
        self.delay = delay

    async def call(self, method: str, params: dict | None = None) -> Any:
        if self.delay:
            await task.deferLater(self.clock, self.delay, lambda: None)
        answer = self.fake.handle(DEFAULT_TOKEN, method, dict(params or {}))
        if isinstance(answer, defer.Deferred):
            answer = await answer
        status, body = answer
        if body.get("ok"):
            return body["result"]
        raise error_from_answer(method, status, body)
