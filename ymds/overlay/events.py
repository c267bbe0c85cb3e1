"""Overlay events: what the stream overlay shows, and their wire forms.

Billing appends these to a capped Redis stream (:mod:`ymds.overlay.stream`); each web
node tails the stream and sends them to OBS browser sources as Server-Sent Events
(:mod:`ymds.overlay.sse`).  A private donor's name and message are dropped when the
event is made (:meth:`DonationEvent.from_payment`), so they never reach Redis or a page.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Mapping, Union

from ymds import money

MAX_NAME = 64  # the donation form's limits (ymds.web.pages)
MAX_MESSAGE = 500

_ENTRY_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")


class BadEvent(ValueError):
    """A stream entry that is not an overlay event (skipped and logged by the reader)."""


def entry_order(entry_id: str) -> tuple[int, int]:
    """A Redis stream entry id ("<ms>-<seq>") as a sortable pair; raises BadEvent."""
    match = _ENTRY_ID.match(entry_id or "")
    if not match:
        raise BadEvent(f"not a stream entry id: {entry_id!r}")
    return int(match.group(1)), int(match.group(2))


def rubles(amount: Decimal) -> str:
    """Money as the owner sees it everywhere: "1 990,00 ₽" (no-break spaces)."""
    return money.rubles(amount, "ru")


def _money(value: object, field: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise BadEvent(f"{field} is not an amount") from None
    if not amount.is_finite() or amount < 0:
        raise BadEvent(f"{field} is not an amount")
    return amount.quantize(Decimal("0.01"))


def _text(value: object, limit: int) -> str | None:
    if value is None:
        return None
    text = str(value).strip()[:limit]
    return text or None


@dataclass(frozen=True)
class DonationEvent:
    """One paid donation.  ``name`` and ``message`` are None for a private donor."""

    amount: Decimal
    name: str | None
    message: str | None
    paid_at: str  # ISO 8601, UTC

    kind = "donation"

    @classmethod
    def from_payment(cls, amount: Decimal, name: str | None, message: str | None, public: bool,
                     paid_at: str) -> "DonationEvent":
        """The event for a paid donation; a donor who did not choose "show my name publicly"
        gets neither name nor message, whatever the invoice holds."""
        if not public:
            name = message = None
        return cls(_money(amount, "amount"), _text(name, MAX_NAME), _text(message, MAX_MESSAGE), str(paid_at))

    def to_data(self) -> dict:
        return {"amount": str(self.amount), "name": self.name, "message": self.message, "paid_at": self.paid_at}

    @classmethod
    def from_data(cls, data: Mapping) -> "DonationEvent":
        return cls(_money(data.get("amount"), "amount"), _text(data.get("name"), MAX_NAME),
                   _text(data.get("message"), MAX_MESSAGE), str(data.get("paid_at") or ""))

    def to_sse_data(self) -> dict:
        """What the overlay page receives: the stored fields plus the amount as shown."""
        return {**self.to_data(), "amount_text": rubles(self.amount)}


@dataclass(frozen=True)
class GoalEvent:
    """The donation goal's state: ``raised`` of ``goal`` rubles; ``until`` is an ISO date or None."""

    raised: Decimal
    goal: Decimal
    title: str
    until: str | None

    kind = "goal"

    def to_data(self) -> dict:
        return {"raised": str(self.raised), "goal": str(self.goal), "title": self.title, "until": self.until}

    @classmethod
    def from_data(cls, data: Mapping) -> "GoalEvent":
        until = data.get("until")
        return cls(_money(data.get("raised"), "raised"), _money(data.get("goal"), "goal"),
                   str(data.get("title") or "")[:200], str(until) if until else None)

    @property
    def percent(self) -> int:
        """Whole percent raised, 0..100 (a goal of 0 counts as reached)."""
        if self.goal <= 0:
            return 100
        return int(min(Decimal(100), self.raised * 100 / self.goal))

    def to_sse_data(self) -> dict:
        return {**self.to_data(), "percent": self.percent, "raised_text": rubles(self.raised),
                "goal_text": rubles(self.goal)}


@dataclass(frozen=True)
class SkipEvent:
    """The owner skipped the alert of the donation event ``target`` (``ymds overlay skip ID``)."""

    target: str

    kind = "skip"

    def to_data(self) -> dict:
        return {"target": self.target}

    @classmethod
    def from_data(cls, data: Mapping) -> "SkipEvent":
        target = str(data.get("target") or "")
        entry_order(target)
        return cls(target)

    def to_sse_data(self) -> dict:
        return self.to_data()


OverlayEvent = Union[DonationEvent, GoalEvent, SkipEvent]
_KINDS: dict[str, type] = {"donation": DonationEvent, "goal": GoalEvent, "skip": SkipEvent}


def encode(event: OverlayEvent) -> list[str]:
    """The stream entry's fields: ``k`` the kind, ``d`` the JSON data."""
    return ["k", event.kind, "d", json.dumps(event.to_data(), ensure_ascii=False, separators=(",", ":"))]


def decode(fields: list) -> OverlayEvent:
    """An event from a stream entry's flat field list; raises BadEvent."""
    values = {str(fields[i]): fields[i + 1] for i in range(0, len(fields) - 1, 2)} if fields else {}
    kind = _KINDS.get(str(values.get("k")))
    if kind is None:
        raise BadEvent(f"unknown overlay event kind {values.get('k')!r}")
    try:
        data = json.loads(values.get("d") or "")
    except ValueError:
        raise BadEvent("overlay event data is not JSON") from None
    if not isinstance(data, dict):
        raise BadEvent("overlay event data is not an object")
    return kind.from_data(data)  # type: ignore[attr-defined]


def sse_frame(entry_id: str, event: OverlayEvent | None) -> bytes:
    """One Server-Sent Events message: ``event:``, ``id:`` and one ``data:`` line of JSON.

    The JSON is one line (json.dumps escapes newlines), so a message cannot end early.  An
    event of None makes ``event: start`` with ``data: {}``: it only carries the id a fresh
    stream starts from, so the page knows where to resume after a reconnect.
    """
    kind = event.kind if event is not None else "start"
    data = event.to_sse_data() if event is not None else {}
    return (f"event: {kind}\nid: {entry_id}\ndata: " + json.dumps(data, ensure_ascii=False, separators=(",", ":"))
            + "\n\n").encode("utf-8")
