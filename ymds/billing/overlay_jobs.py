"""The creators' billing contract (issue 17): task names, argument and result dataclasses,
and :class:`OverlayClient`, how the web role reaches billing for them.

- ``overlay_token``: the current overlay token (web nodes check OBS requests against it,
  through ymds.overlay.tokens.CachedTokenCheck);
- ``donation_board``: the goal and the supporters feed for the donation page and a fresh
  overlay's goal bar;
- ``donation_public``: the donor of a donation invoice chose "show my name publicly".

Handlers: ymds.billing.overlay.OverlayTasks.  All are RPCs and safe to repeat.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from twisted.internet.defer import Deferred

from ymds.billing.jobs import QUEUE
from ymds.jobwire import InvalidTaskArgs, JobQueue, result_from_wire, wire_object, wire_text

OVERLAY_TOKEN = "overlay_token"
DONATION_BOARD = "donation_board"
DONATION_PUBLIC = "donation_public"

MAX_NAME = 100


@dataclass(frozen=True)
class NoArgs:
    @classmethod
    def from_wire(cls, args: object) -> NoArgs:
        if args not in (None, {}):
            wire_object(args)
        return cls()

    def to_wire(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class MarkPublic:
    """Donation invoice ``label`` is shown publicly as ``name``."""
    label: str
    name: str

    @classmethod
    def from_wire(cls, args: object) -> MarkPublic:
        a = wire_object(args)
        label = wire_text(a, "label", 200)
        name = wire_text(a, "name", MAX_NAME)
        if not label or not name:
            raise InvalidTaskArgs("label and name are required")
        return cls(label, name)

    def to_wire(self) -> dict[str, Any]:
        return {"label": self.label, "name": self.name}


@dataclass(frozen=True)
class OverlayTokenView:
    token: str | None = None


@dataclass(frozen=True)
class MarkedPublic:
    public: bool = False


@dataclass(frozen=True)
class DonationBoard:
    """The goal (``goal`` None: no goal configured) and, with show_supporters, the feed.
    Money is text ("1990.00") on the wire; ``latest`` items are {name, amount, message,
    paid_at (ISO)}, ``top`` items {name, total} — public donors only."""
    raised: str = "0.00"
    goal: str | None = None
    goal_title: str = ""
    goal_until: str | None = None
    latest: tuple[dict[str, Any], ...] = ()
    top: tuple[dict[str, Any], ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return {"raised": self.raised, "goal": self.goal, "goal_title": self.goal_title, "goal_until": self.goal_until,
                "latest": [dict(d) for d in self.latest], "top": [dict(t) for t in self.top]}

    @property
    def raised_amount(self) -> Decimal:
        return Decimal(self.raised)


class OverlayClient:
    """The creators' calls on billing over an IJobQueue (RPCs: they fire with the result or
    fail with a RemoteJobError or JobTimeout; all are safe to repeat)."""

    def __init__(self, queue: JobQueue, timeout: float = 5.0):
        self.queue = queue
        self.timeout = timeout

    def _call(self, task: str, args: dict[str, Any], cls: type) -> Deferred[Any]:
        d = self.queue.call(QUEUE, task, args, timeout=self.timeout)
        return d.addCallback(lambda wire: result_from_wire(cls, wire))

    def overlay_token(self) -> Deferred[OverlayTokenView | None]:
        """The current overlay token (``token`` None before ``ymds overlay-url``)."""
        return self._call(OVERLAY_TOKEN, NoArgs().to_wire(), OverlayTokenView)

    def donation_board(self) -> Deferred[DonationBoard | None]:
        """The goal and supporters feed as billing sees them now."""
        def board(wire: Any) -> DonationBoard | None:
            if wire is None:
                return None
            found = result_from_wire(DonationBoard, wire)
            assert found is not None
            return DonationBoard(found.raised, found.goal, found.goal_title, found.goal_until,
                                 tuple(found.latest or ()), tuple(found.top or ()))
        return self.queue.call(QUEUE, DONATION_BOARD, NoArgs().to_wire(), timeout=self.timeout).addCallback(board)

    def donation_public(self, label: str, name: str) -> Deferred[MarkedPublic | None]:
        """Mark donation ``label`` public under ``name``."""
        return self._call(DONATION_PUBLIC, MarkPublic(label, name).to_wire(), MarkedPublic)
