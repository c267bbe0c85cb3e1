"""The bot's access task (issue 15): remove a member from a paid chat unless a
subscription covers them.  Asked by billing when a subscription's grace ends and by
``ymds members --fix``; the handler is ymds.bot.access.wiring.AccessService.remove_member."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred

from ymds.jobwire import Enqueued, InvalidTaskArgs, JobQueue, wire_object, wire_required_int

QUEUE = "bot"

ACCESS_REMOVE = "access_remove"

REASONS = ("expired", "audit")


@dataclass(frozen=True)
class RemoveMember:
    """Remove ``user_id`` from ``chat_id`` (ban then unban) unless covered; ``reason`` is
    "expired" (the grace ended) or "audit" (``ymds members --fix``)."""
    chat_id: int
    user_id: int
    reason: str
    key: str | None = None

    @classmethod
    def from_wire(cls, args: object) -> RemoveMember:
        a = wire_object(args)
        reason = a.get("reason")
        if reason not in REASONS:
            raise InvalidTaskArgs(f"unknown removal reason {str(reason)[:20]!r}")
        key = a.get("key")
        return cls(wire_required_int(a, "chat_id"), wire_required_int(a, "user_id"), str(reason),
                   str(key) if key else None)

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"chat_id": self.chat_id, "user_id": self.user_id, "reason": self.reason}
        if self.key is not None:
            wire["key"] = self.key
        return wire


@dataclass(frozen=True)
class RemoveOutcome:
    """"removed", "kept" (covered or an administrator), "gone" (not a member) or "failed"."""
    outcome: str = ""


class AccessBotClient:
    """Asks the bot to remove members; durable once the Deferred fires, at most once per key."""

    def __init__(self, queue: JobQueue):
        self.queue = queue

    def remove_member(self, job: RemoveMember) -> Deferred[Enqueued]:
        return self.queue.enqueue(QUEUE, ACCESS_REMOVE, job.to_wire(), key=job.key).addCallback(Enqueued)
