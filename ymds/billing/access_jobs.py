"""The wire of access to paid chats (issue 15): billing's task names, argument and result
dataclasses, and :class:`AccessClient`, the bot's way to ask billing about access.

Task names appear only here (and in ymds.bot.access.jobs for the bot's side); the handlers
are ymds.billing.access.AccessTasks, registered by ymds.billing.tasks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred

from ymds.jobwire import (
    Enqueued, InvalidTaskArgs, JobQueue, wire_choice, wire_int, wire_object, wire_required_int, wire_text,
)

QUEUE = "billing"

ACCESS_COVERS = "access_covers"
ACCESS_LIVE_INVITE = "access_live_invite"
ACCESS_SWAP_INVITE = "access_swap_invite"
ACCESS_MEMBER_SEEN = "access_member_seen"

MAX_LINK = 200
MEMBER_STATUSES = ("creator", "administrator", "member", "restricted", "left", "kicked")


@dataclass(frozen=True)
class AccessQuery:
    """(user, chat): does the user's subscription cover the chat; their live link there."""
    user_id: int
    chat_id: int

    @classmethod
    def from_wire(cls, args: object) -> AccessQuery:
        a = wire_object(args)
        return cls(wire_required_int(a, "user_id"), wire_required_int(a, "chat_id"))

    def to_wire(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "chat_id": self.chat_id}


def _link(a: Any, name: str) -> str | None:
    value = wire_text(a, name, MAX_LINK) or None
    if value is not None and not value.startswith("https://"):
        raise InvalidTaskArgs(f"{name} must be an https link")
    return value


@dataclass(frozen=True)
class SwapInvite:
    """Compare-and-swap of (user, chat)'s live link: ``expected`` -> ``new_link`` (None: none)."""
    user_id: int
    chat_id: int
    expected: str | None
    new_link: str | None
    expire_date: int | None = None

    @classmethod
    def from_wire(cls, args: object) -> SwapInvite:
        a = wire_object(args)
        return cls(wire_required_int(a, "user_id"), wire_required_int(a, "chat_id"), _link(a, "expected"),
                   _link(a, "new_link"), wire_int(a, "expire_date", optional=True))

    def to_wire(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "chat_id": self.chat_id, "expected": self.expected,
                "new_link": self.new_link, "expire_date": self.expire_date}


@dataclass(frozen=True)
class MemberSeen:
    """A chat_member update's outcome for ``user_id`` in a paid chat, at the update's ``date``."""
    chat_id: int
    user_id: int
    status: str
    at: int

    @classmethod
    def from_wire(cls, args: object) -> MemberSeen:
        a = wire_object(args)
        status = wire_choice(a, "status", MEMBER_STATUSES, "member status")
        return cls(wire_required_int(a, "chat_id"), wire_required_int(a, "user_id"), status,
                   wire_required_int(a, "at"))

    def to_wire(self) -> dict[str, Any]:
        return {"chat_id": self.chat_id, "user_id": self.user_id, "status": self.status, "at": self.at}


@dataclass(frozen=True)
class Covers:
    covers: bool = False


@dataclass(frozen=True)
class InviteRecord:
    invite_link: str = ""
    expire_date: int = 0


@dataclass(frozen=True)
class Swapped:
    swapped: bool = False


class AccessClient:
    """Billing's access answers over an IJobQueue.  Calls are RPCs (fire with the result, or
    fail with a RemoteJobError / JobTimeout; each is safe to repeat); ``member_seen`` is a job
    (durable once its Deferred fires)."""

    def __init__(self, queue: JobQueue, timeout: float = 10.0):
        self.queue = queue
        self.timeout = timeout

    def _call(self, task: str, args: dict[str, Any]) -> Deferred[Any]:
        return self.queue.call(QUEUE, task, args, timeout=self.timeout)

    def covers(self, user_id: int, chat_id: int) -> Deferred[bool]:
        """True when the user's subscription (with the grace) includes ``chat_id`` now."""
        d = self._call(ACCESS_COVERS, AccessQuery(user_id, chat_id).to_wire())
        return d.addCallback(lambda w: bool(isinstance(w, dict) and w.get("covers") is True))

    def live_invite(self, user_id: int, chat_id: int) -> Deferred[InviteRecord | None]:
        """The link on record for (user, chat), or None."""
        def read(w: Any) -> InviteRecord | None:
            if not isinstance(w, dict) or not isinstance(w.get("invite_link"), str):
                return None
            return InviteRecord(w["invite_link"], int(w.get("expire_date") or 0))
        return self._call(ACCESS_LIVE_INVITE, AccessQuery(user_id, chat_id).to_wire()).addCallback(read)

    def swap_invite(self, job: SwapInvite) -> Deferred[bool]:
        """The ledger's compare-and-swap of the live link (True: done)."""
        d = self._call(ACCESS_SWAP_INVITE, job.to_wire())
        return d.addCallback(lambda w: bool(isinstance(w, dict) and w.get("swapped") is True))

    def member_seen(self, job: MemberSeen) -> Deferred[Enqueued]:
        """Record a member's status (for ``ymds members``); keyed by chat, user and time."""
        key = f"member_seen:{job.chat_id}:{job.user_id}:{job.at}:{job.status}"
        return self.queue.enqueue(QUEUE, ACCESS_MEMBER_SEEN, job.to_wire(), key=key).addCallback(Enqueued)
