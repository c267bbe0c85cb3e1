"""The billing role's subscriber-management contract: task names, argument and result
dataclasses and :class:`SubscribersClient`, the way the REST API (web role) reaches the
handlers in ymds.billing.subscribers.

Task names appear only here and where the handlers are registered.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from twisted.internet.defer import Deferred

from ymds.billing.jobs import QUEUE
from ymds.jobwire import InvalidTaskArgs, JobQueue, wire_int, wire_object, wire_required_int, wire_text

LIST_SUBSCRIBERS = "list_subscribers"
CHANGE_SUBSCRIBER = "change_subscriber"

ACTIONS = ("grant", "extend", "revoke")
STATUSES = ("active", "expired", "all")
MAX_DAYS = 36500
MAX_LIST = 1000
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _days(a: Mapping[str, Any], optional: bool) -> int | None:
    days = wire_int(a, "days", optional=optional)
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise InvalidTaskArgs(f"days must be between 1 and {MAX_DAYS}")
    return days


def _plan(a: Mapping[str, Any]) -> str | None:
    plan = wire_text(a, "plan", 64, default="") or None
    return plan


@dataclass(frozen=True)
class ListSubscribers:
    """Subscriptions by status (active, expired, all), plan, and ending within ``expiring_within`` seconds."""
    status: str = "active"
    plan: str | None = None
    expiring_within: int | None = None
    limit: int = MAX_LIST

    @classmethod
    def from_wire(cls, args: object) -> ListSubscribers:
        a = wire_object(args)
        status = a.get("status", "active")
        if status not in STATUSES:
            raise InvalidTaskArgs(f"status must be one of {', '.join(STATUSES)}")
        within = wire_int(a, "expiring_within", optional=True)
        if within is not None and within <= 0:
            raise InvalidTaskArgs("expiring_within must be a positive number of seconds")
        limit = wire_int(a, "limit", optional=True) or MAX_LIST
        if not 1 <= limit <= MAX_LIST:
            raise InvalidTaskArgs(f"limit must be between 1 and {MAX_LIST}")
        return cls(str(status), _plan(a), within, limit)

    def to_wire(self) -> dict[str, Any]:
        return {"status": self.status, "plan": self.plan, "expiring_within": self.expiring_within,
                "limit": self.limit}


@dataclass(frozen=True)
class ChangeSubscriber:
    """grant (``plan`` or ``days``), extend (``days``) or revoke one chat's subscription;
    ``by`` names who asked (``cli``, ``api:<key id>``) for the audit log; ``request_key`` and
    ``request_hash`` (an API Idempotency-Key) make a retried request change nothing twice."""
    action: str
    chat_id: int
    plan: str | None = None
    days: int | None = None
    by: str = ""
    request_key: str | None = None
    request_hash: str | None = None

    @classmethod
    def from_wire(cls, args: object) -> ChangeSubscriber:
        a = wire_object(args)
        action = a.get("action")
        if action not in ACTIONS:
            raise InvalidTaskArgs(f"action must be one of {', '.join(ACTIONS)}")
        chat_id = wire_required_int(a, "chat_id")
        plan, days = _plan(a), _days(a, optional=True)
        if action == "grant" and (plan is None) == (days is None):
            raise InvalidTaskArgs("grant takes a plan or a number of days")
        if action == "extend" and (days is None or plan is not None):
            raise InvalidTaskArgs("extend takes a number of days")
        if action == "revoke" and (days is not None or plan is not None):
            raise InvalidTaskArgs("revoke takes only the chat")
        key = wire_text(a, "request_key", 400) or None
        digest = wire_text(a, "request_hash", 64) or None
        if (key is None) != (digest is None) or (digest is not None and not _HEX64.fullmatch(digest)):
            raise InvalidTaskArgs("request_key comes with request_hash (64 hex digits)")
        return cls(str(action), chat_id, plan, days, wire_text(a, "by", 100), key, digest)

    def to_wire(self) -> dict[str, Any]:
        return {"action": self.action, "chat_id": self.chat_id, "plan": self.plan, "days": self.days, "by": self.by,
                "request_key": self.request_key, "request_hash": self.request_hash}

    @property
    def request(self) -> tuple[str, str] | None:
        """(key, hash) for the ledger, or None."""
        return None if self.request_key is None or self.request_hash is None else (self.request_key, self.request_hash)


@dataclass(frozen=True)
class SubscriberView:
    chat_id: int = 0
    plan: str | None = None
    ends_at: str | None = None
    active: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {"chat_id": self.chat_id, "plan": self.plan, "ends_at": self.ends_at, "active": self.active}


@dataclass(frozen=True)
class SubscriberList:
    subscribers: tuple[SubscriberView, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return {"subscribers": [s.to_wire() for s in self.subscribers]}

    @classmethod
    def from_wire(cls, wire: Any) -> SubscriberList:
        rows = wire.get("subscribers") if isinstance(wire, dict) else None
        return cls(tuple(_view(r) for r in rows or () if isinstance(r, dict)))


@dataclass(frozen=True)
class SubscriberChanged:
    """``found`` is False when extend or revoke found no subscription (nothing changed)."""
    found: bool = True
    subscriber: SubscriberView | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"found": self.found, "subscriber": None if self.subscriber is None else self.subscriber.to_wire()}

    @classmethod
    def from_wire(cls, wire: Any) -> SubscriberChanged:
        if not isinstance(wire, dict):
            return cls(False)
        sub = wire.get("subscriber")
        return cls(bool(wire.get("found")), _view(sub) if isinstance(sub, dict) else None)


def _view(row: Mapping[str, Any]) -> SubscriberView:
    return SubscriberView(int(row.get("chat_id") or 0), row.get("plan"), row.get("ends_at"), bool(row.get("active")))


class SubscribersClient:
    """Calls (RPCs) on billing's subscriber handlers; they fire with the result or fail
    with InvalidTaskArgs (refused arguments, e.g. an unknown plan), another RemoteJobError
    or JobTimeout (a change may still have been made: look before repeating a grant)."""

    def __init__(self, queue: JobQueue, timeout: float = 10.0):
        self.queue = queue
        self.timeout = timeout

    def list(self, query: ListSubscribers) -> Deferred[SubscriberList]:
        d = self.queue.call(QUEUE, LIST_SUBSCRIBERS, query.to_wire(), timeout=self.timeout)
        return d.addCallback(SubscriberList.from_wire)

    def change(self, job: ChangeSubscriber) -> Deferred[SubscriberChanged]:
        d = self.queue.call(QUEUE, CHANGE_SUBSCRIBER, job.to_wire(), timeout=self.timeout)
        return d.addCallback(SubscriberChanged.from_wire)
