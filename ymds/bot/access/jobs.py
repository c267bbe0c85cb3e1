"""The bot's access task (issue 15): remove a member from a paid chat unless a
subscription covers them.  Asked by billing when a subscription's grace ends and by
``ymds members --fix``; the handler is ymds.bot.access.wiring.AccessService.remove_member."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred

from ymds.jobwire import Enqueued, JobQueue, wire_choice, wire_key, wire_object, wire_required_int, with_key

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
        reason = wire_choice(a, "reason", REASONS, "removal reason")
        return cls(wire_required_int(a, "chat_id"), wire_required_int(a, "user_id"), reason, wire_key(a))

    def to_wire(self) -> dict[str, Any]:
        return with_key({"chat_id": self.chat_id, "user_id": self.user_id, "reason": self.reason}, self.key)


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
