"""The bot role's job contract: task names, argument and result dataclasses, and
:class:`BotClient`, the one way other roles (billing, web, the bot's own polling) ask the
bot to send something.

Task names appear only here and in the module that registers the handlers
(ymds.bot.sender).  ``from_wire`` is the one place a bot job's arguments are checked;
``to_wire`` writes the keys the bot has always read, so old and new jobs mix in Redis.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from twisted.internet.defer import Deferred

from ymds.jobwire import (
    Enqueued, InvalidTaskArgs, JobQueue, wire_choice, wire_dict, wire_int, wire_key, wire_object, wire_required_int,
    with_key,
)

QUEUE = "bot"

NOTIFY = "notify"
NOTIFY_ADMINS = "notify_admins"
GRANT_ACCESS = "grant_access"
REVOKE_ACCESS = "revoke_access"
SEND = "send"
UPDATE = "update"

NOTIFY_MESSAGES = ("payment_confirmed", "payment_underpaid", "payment_held", "reminder", "expired", "invite",
                   "gift_code")
ADMIN_MESSAGES = ("donation", "underpaid", "overpaid", "unmatched", "quarantine", "dead_letter", "webhook_failed",
                  "sale", "unconfirmed")
MAX_TEXT = 4096


def content_key(task: str, args: Any) -> str:
    """A dedup key made of the job's content, for jobs that bring no ``key``."""
    text = json.dumps([task, args], sort_keys=True, default=str, ensure_ascii=False)
    return f"{task}:" + hashlib.sha256(text.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Notify:
    """A message to a user from the texts catalogue (``message``), with its parameters."""
    chat_id: int
    message: str
    params: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None

    @classmethod
    def from_wire(cls, args: object) -> Notify:
        a = wire_object(args)
        chat_id = wire_required_int(a, "chat_id")
        message = wire_choice(a, "message", NOTIFY_MESSAGES, "notify message")
        params = wire_dict(a, "params")
        if message == "invite":
            link = params.get("link")
            if not isinstance(link, str) or not link.startswith("https://"):
                raise InvalidTaskArgs("invite needs an https link")
        return cls(chat_id, message, params, wire_key(a))

    def to_wire(self) -> dict[str, Any]:
        return with_key({"chat_id": self.chat_id, "message": self.message, "params": dict(self.params)}, self.key)

    def dedup_key(self) -> str:
        return self.key or content_key(NOTIFY, self.to_wire())


@dataclass(frozen=True)
class NotifyAdmins:
    """A message to every admin (``telegram.admins``); each gets ``<key>:<admin id>``."""
    message: str
    params: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None

    @classmethod
    def from_wire(cls, args: object) -> NotifyAdmins:
        a = wire_object(args)
        message = wire_choice(a, "message", ADMIN_MESSAGES, "admin message")
        return cls(message, wire_dict(a, "params"), wire_key(a))

    def to_wire(self) -> dict[str, Any]:
        return with_key({"message": self.message, "params": dict(self.params)}, self.key)

    def dedup_key(self) -> str:
        return self.key or content_key(NOTIFY_ADMINS, self.to_wire())


@dataclass(frozen=True)
class GrantAccess:
    """A one-person invite link to the channel, valid until ``ends_at`` (ISO 8601) at most.

    ``attempt`` counts the automatic retries of a failed invitation (ymds.bot.access_notice);
    it is not part of the dedup key, so a retry never sends a second invitation."""
    chat_id: int
    ends_at: str | None = None
    key: str | None = None
    attempt: int = 0

    @classmethod
    def from_wire(cls, args: object) -> GrantAccess:
        a = wire_object(args)
        ends_at = a.get("ends_at")
        attempt = wire_int(a, "attempt", optional=True) or 0
        if not 0 <= attempt <= 100_000:
            raise InvalidTaskArgs("attempt must be between 0 and 100000")
        return cls(wire_required_int(a, "chat_id"), None if ends_at is None else str(ends_at), wire_key(a), attempt)

    def to_wire(self) -> dict[str, Any]:
        wire = with_key({"chat_id": self.chat_id, "ends_at": self.ends_at}, self.key)
        if self.attempt:
            wire["attempt"] = self.attempt
        return wire

    def dedup_key(self) -> str:
        return self.key or content_key(GRANT_ACCESS, with_key({"chat_id": self.chat_id, "ends_at": self.ends_at}, None))


@dataclass(frozen=True)
class RevokeAccess:
    """Remove a user from the channel (ban then unban: they may join again after paying)."""
    chat_id: int
    key: str | None = None

    @classmethod
    def from_wire(cls, args: object) -> RevokeAccess:
        a = wire_object(args)
        return cls(wire_required_int(a, "chat_id"), wire_key(a))

    def to_wire(self) -> dict[str, Any]:
        return with_key({"chat_id": self.chat_id}, self.key)


@dataclass(frozen=True)
class SendMessage:
    """Raw Telegram HTML (e.g. a broadcast), with optional inline keyboard rows."""
    chat_id: int
    text: str
    buttons: list[Any] | None = None
    key: str | None = None

    @classmethod
    def from_wire(cls, args: object) -> SendMessage:
        a = wire_object(args)
        chat_id = wire_required_int(a, "chat_id")
        text = a.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            raise InvalidTaskArgs("text must be 1-4096 characters of Telegram HTML")
        buttons = a.get("buttons")
        if buttons is not None and not isinstance(buttons, list):
            raise InvalidTaskArgs("buttons must be a list of rows")
        return cls(chat_id, text, buttons, wire_key(a))

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"chat_id": self.chat_id, "text": self.text}
        if self.buttons is not None:
            wire["buttons"] = self.buttons
        return with_key(wire, self.key)

    def dedup_key(self) -> str:
        return self.key or content_key(SEND, self.to_wire())


@dataclass(frozen=True)
class Update:
    """An incoming Telegram update, as fetched (the handler checks its shape)."""
    update: Any

    @classmethod
    def from_wire(cls, args: object) -> Update:
        return cls(args.get("update") if isinstance(args, dict) else None)

    def to_wire(self) -> dict[str, Any]:
        return {"update": self.update}


@dataclass(frozen=True)
class SendOutcome:
    """"sent", "duplicate", "blocked" or "rejected"."""
    outcome: str = ""


@dataclass(frozen=True)
class AdminOutcomes:
    outcomes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AccessOutcome:
    """grant_access: ``granted``; revoke_access: ``revoked``; ``reason`` when nothing was done."""
    granted: bool | None = None
    revoked: bool | None = None
    outcome: str | None = None
    reason: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {k: v for k, v in (("granted", self.granted), ("revoked", self.revoked), ("outcome", self.outcome),
                                  ("reason", self.reason)) if v is not None}


class BotClient:
    """Jobs for the bot role over an IJobQueue.

    Guarantees: each method fires once its job is durably in Redis (``Enqueued``; its
    ``job_id`` is None when the key was used before: the earlier job stands).  Jobs run at
    least once; a job's key (its ``key`` field, sent as both the enqueue key and an
    argument) also makes the bot send each message at most once per key, except in the
    crash window described in ymds.bot.sender."""

    def __init__(self, queue: JobQueue):
        self.queue = queue

    def _enqueue(self, task: str, args: dict[str, Any], key: str | None) -> Deferred[Enqueued]:
        return self.queue.enqueue(QUEUE, task, args, key=key).addCallback(Enqueued)

    def notify(self, job: Notify) -> Deferred[Enqueued]:
        """Tell a user something (payment confirmed, reminder, ...)."""
        return self._enqueue(NOTIFY, job.to_wire(), job.key)

    def notify_admins(self, job: NotifyAdmins) -> Deferred[Enqueued]:
        """Tell every admin something (donation, quarantine, dead letter, ...)."""
        return self._enqueue(NOTIFY_ADMINS, job.to_wire(), job.key)

    def grant_access(self, job: GrantAccess) -> Deferred[Enqueued]:
        """Send a user a one-person invite link to the channel."""
        return self._enqueue(GRANT_ACCESS, job.to_wire(), job.key)

    def grant_access_later(self, job: GrantAccess, delay: float, key: str) -> Deferred[Enqueued]:
        """Try a failed invitation again after ``delay`` seconds; ``key`` (one per attempt)
        makes a redelivery of the failed job schedule it once."""
        return self.queue.enqueue(QUEUE, GRANT_ACCESS, job.to_wire(), key=key, delay=delay).addCallback(Enqueued)

    def revoke_access(self, job: RevokeAccess) -> Deferred[Enqueued]:
        """Remove a user from the channel."""
        return self._enqueue(REVOKE_ACCESS, job.to_wire(), job.key)

    def send(self, job: SendMessage) -> Deferred[Enqueued]:
        """Send raw Telegram HTML to a chat."""
        return self._enqueue(SEND, job.to_wire(), job.key)

    def send_and_wait(self, job: SendMessage, timeout: float = 60.0) -> Deferred[SendOutcome]:
        """Send raw Telegram HTML and fire with the outcome (a call: on JobTimeout it may
        still be sent; asking again with the same ``key`` never sends it twice)."""
        d = self.queue.call(QUEUE, SEND, job.to_wire(), timeout=timeout)
        return d.addCallback(lambda wire: SendOutcome(str(wire.get("outcome", "")) if isinstance(wire, dict) else ""))

    def update(self, update: Mapping[str, Any], key: str) -> Deferred[Enqueued]:
        """Handle an incoming update; ``key`` (bot id and update id) makes a re-fetched
        update a no-op."""
        return self._enqueue(UPDATE, Update(update).to_wire(), key)
