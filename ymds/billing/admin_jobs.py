"""The dashboard's job contract with billing: task names, argument and result dataclasses,
and :class:`AdminClient` (what the web role's dashboard calls; it never touches the ledger).

Times on the wire are Unix seconds; money is Decimal; the owner's time zone stays on the
web side, which sends the edges of the intervals it wants summed (its local midnights).
Every action carries the admin's id and an idempotency key: billing applies it once per
key and writes it to the ledger's audit events.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping, Sequence

from twisted.internet.defer import Deferred

from ymds.jobwire import InvalidTaskArgs, JobQueue, result_from_wire, wire_int, wire_object, wire_text

QUEUE = "billing"

ADMIN_OVERVIEW = "dashboard_overview"
ADMIN_MONEY = "dashboard_money"
ADMIN_ACTIVE_SERIES = "dashboard_active_series"
ADMIN_PAYMENTS = "dashboard_payments"
ADMIN_SUBSCRIBERS = "dashboard_subscribers"
ADMIN_EXTEND = "dashboard_extend"
ADMIN_REVOKE = "dashboard_revoke"
ADMIN_QUARANTINE = "dashboard_quarantine"
ADMIN_REVERIFY = "dashboard_reverify"
ADMIN_DEAD_LETTERS = "dashboard_dead_letters"
ADMIN_REPLAY = "dashboard_replay"
ADMIN_WEBHOOKS = "dashboard_webhooks"
ADMIN_REDELIVER = "dashboard_redeliver"
ADMIN_CODES = "dashboard_codes"
ADMIN_DISABLE_PROMO = "dashboard_disable_promo"
ADMIN_ALERTS = "dashboard_alerts"  # issue 17: the stream overlay's recent donation alerts
ADMIN_SKIP_ALERT = "dashboard_skip_alert"
ADMIN_REPLAY_ALERT = "dashboard_replay_alert"

MAX_EDGES = 400  # a year of days plus room
MAX_KEY = 100
MAX_DAYS = 3660
MAX_ROWS = 500
DEAD_QUEUES = ("billing", "bot")


def _wire_float(a: Mapping[str, Any], name: str) -> float:
    value = a.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e11:
        raise InvalidTaskArgs(f"{name} must be Unix seconds")
    return float(value)


def _wire_edges(a: Mapping[str, Any]) -> tuple[float, ...]:
    edges = a.get("edges")
    if not isinstance(edges, (list, tuple)) or not 2 <= len(edges) <= MAX_EDGES:
        raise InvalidTaskArgs(f"edges must be a list of 2 to {MAX_EDGES} Unix times")
    out = tuple(_wire_float({"edge": e}, "edge") for e in edges)
    if any(b <= a_ for a_, b in zip(out, out[1:])):
        raise InvalidTaskArgs("edges must increase")
    return out


# --- arguments ---------------------------------------------------------------------------

@dataclass(frozen=True)
class MoneyQuery:
    """Money accepted between consecutive ``edges`` (Unix seconds), by kind."""
    edges: tuple[float, ...]

    @classmethod
    def from_wire(cls, args: object) -> MoneyQuery:
        return cls(_wire_edges(wire_object(args)))

    def to_wire(self) -> dict[str, Any]:
        return {"edges": list(self.edges)}


@dataclass(frozen=True)
class OverviewQuery:
    """The overview at ``now``: money between ``edges``; subscribers new/lapsed since ``since``."""
    now: float
    since: float
    edges: tuple[float, ...]

    @classmethod
    def from_wire(cls, args: object) -> OverviewQuery:
        a = wire_object(args)
        return cls(_wire_float(a, "now"), _wire_float(a, "since"), _wire_edges(a))

    def to_wire(self) -> dict[str, Any]:
        return {"now": self.now, "since": self.since, "edges": list(self.edges)}


@dataclass(frozen=True)
class SinceQuery:
    since: float

    @classmethod
    def from_wire(cls, args: object) -> SinceQuery:
        return cls(_wire_float(wire_object(args), "since"))

    def to_wire(self) -> dict[str, Any]:
        return {"since": self.since}


@dataclass(frozen=True)
class AdminPaymentsQuery:
    """Newest first; ``before`` is the cursor (a payment's seq) of the previous page."""
    since: float | None = None
    until: float | None = None
    status: str = ""
    label: str = ""
    chat_id: int | None = None
    before: int | None = None
    limit: int = 50

    @classmethod
    def from_wire(cls, args: object) -> AdminPaymentsQuery:
        a = wire_object(args)
        since = None if a.get("since") is None else _wire_float(a, "since")
        until = None if a.get("until") is None else _wire_float(a, "until")
        limit = wire_int(a, "limit", optional=True) or 50
        if not 1 <= limit <= MAX_ROWS:
            raise InvalidTaskArgs(f"limit must be 1 to {MAX_ROWS}")
        return cls(since, until, wire_text(a, "status", 20), wire_text(a, "label", 64),
                   wire_int(a, "chat_id", optional=True), wire_int(a, "before", optional=True), limit)

    def to_wire(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "status": self.status, "label": self.label,
                "chat_id": self.chat_id, "before": self.before, "limit": self.limit}


@dataclass(frozen=True)
class SubscribersQuery:
    search: str = ""
    limit: int = 100

    @classmethod
    def from_wire(cls, args: object) -> SubscribersQuery:
        a = wire_object(args)
        limit = wire_int(a, "limit", optional=True) or 100
        if not 1 <= limit <= MAX_ROWS:
            raise InvalidTaskArgs(f"limit must be 1 to {MAX_ROWS}")
        return cls(wire_text(a, "search", 64).strip(), limit)

    def to_wire(self) -> dict[str, Any]:
        return {"search": self.search, "limit": self.limit}


@dataclass(frozen=True)
class AdminCommand:
    """One dashboard action: who (``admin``, e.g. "tg:42"), its idempotency ``key``, and its
    target: ``chat_id`` (+ ``days``) for subscribers, ``item`` for quarantine ("" = all),
    dead letters ("<queue>/<entry id>"), webhook deliveries ("<endpoint id>:<event id>"),
    promo codes (the code) and stream alerts (the overlay stream's entry id)."""
    admin: str
    key: str
    chat_id: int | None = None
    days: int | None = None
    item: str = ""

    @classmethod
    def from_wire(cls, args: object) -> AdminCommand:
        a = wire_object(args)
        admin = wire_text(a, "admin", 64)
        key = wire_text(a, "key", MAX_KEY)
        if not admin or not key:
            raise InvalidTaskArgs("an admin action needs the admin's id and an idempotency key")
        days = wire_int(a, "days", optional=True)
        if days is not None and not 1 <= days <= MAX_DAYS:
            raise InvalidTaskArgs(f"days must be 1 to {MAX_DAYS}")
        return cls(admin, key, wire_int(a, "chat_id", optional=True), days, wire_text(a, "item", 200))

    def to_wire(self) -> dict[str, Any]:
        return {"admin": self.admin, "key": self.key, "chat_id": self.chat_id, "days": self.days, "item": self.item}


# --- results -------------------------------------------------------------------------------

@dataclass(frozen=True)
class MoneyIntervals:
    """``intervals[i]``: {kind: amount} between edges i and i+1."""
    intervals: tuple[Mapping[str, Decimal], ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return {"intervals": [dict(m) for m in self.intervals]}


@dataclass(frozen=True)
class AdminOverview:
    money: tuple[Mapping[str, Decimal], ...] = ()
    active: int = 0
    new: int = 0
    lapsed: int = 0
    open_quarantine: int = 0
    dead_letters: int = 0
    last_payments: tuple[Mapping[str, Any], ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return {"money": [dict(m) for m in self.money], "active": self.active, "new": self.new,
                "lapsed": self.lapsed, "open_quarantine": self.open_quarantine, "dead_letters": self.dead_letters,
                "last_payments": [dict(p) for p in self.last_payments]}


@dataclass(frozen=True)
class Rows:
    """A list of plain records (payments, subscribers, ...) and the cursor of the next page."""
    rows: tuple[Mapping[str, Any], ...] = ()
    next_cursor: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"rows": [dict(r) for r in self.rows], "next_cursor": self.next_cursor}


@dataclass(frozen=True)
class ActionDone:
    """``applied`` False: this idempotency key was used before (nothing done twice)."""
    applied: bool = False
    count: int = 0
    details: Mapping[str, str] = field(default_factory=dict)


def _rows(wire: Any) -> Rows:
    got = result_from_wire(Rows, wire) or Rows()
    return Rows(tuple(got.rows or ()), got.next_cursor)


class AdminClient:
    """The dashboard's calls to billing over an IJobQueue; each fires with its result or
    fails with a RemoteJobError (InvalidTaskArgs when refused) or JobTimeout.  Reads are
    safe to repeat; actions are applied once per key, so a retried call is safe too."""

    def __init__(self, queue: JobQueue, timeout: float = 10.0):
        self.queue = queue
        self.timeout = timeout

    def _call(self, task: str, args: dict[str, Any]) -> Deferred[Any]:
        return self.queue.call(QUEUE, task, args, timeout=self.timeout)

    def overview(self, query: OverviewQuery) -> Deferred[AdminOverview]:
        def read(wire: Any) -> AdminOverview:
            o = result_from_wire(AdminOverview, wire) or AdminOverview()
            return AdminOverview(tuple(o.money), o.active, o.new, o.lapsed, o.open_quarantine, o.dead_letters,
                                 tuple(o.last_payments))
        return self._call(ADMIN_OVERVIEW, query.to_wire()).addCallback(read)

    def money(self, edges: Sequence[float]) -> Deferred[MoneyIntervals]:
        def read(wire: Any) -> MoneyIntervals:
            return MoneyIntervals(tuple((result_from_wire(MoneyIntervals, wire) or MoneyIntervals()).intervals))
        return self._call(ADMIN_MONEY, MoneyQuery(tuple(edges)).to_wire()).addCallback(read)

    def active_series(self, since: float) -> Deferred[Rows]:
        """Rows {"day": UTC day number, "active": count}."""
        return self._call(ADMIN_ACTIVE_SERIES, SinceQuery(since).to_wire()).addCallback(_rows)

    def payments(self, query: AdminPaymentsQuery) -> Deferred[Rows]:
        return self._call(ADMIN_PAYMENTS, query.to_wire()).addCallback(_rows)

    def subscribers(self, query: SubscribersQuery) -> Deferred[Rows]:
        return self._call(ADMIN_SUBSCRIBERS, query.to_wire()).addCallback(_rows)

    def quarantine(self) -> Deferred[Rows]:
        return self._call(ADMIN_QUARANTINE, {}).addCallback(_rows)

    def dead_letters(self) -> Deferred[Rows]:
        return self._call(ADMIN_DEAD_LETTERS, {}).addCallback(_rows)

    def webhooks(self) -> Deferred[Rows]:
        return self._call(ADMIN_WEBHOOKS, {}).addCallback(_rows)

    def codes(self) -> Deferred[Rows]:
        """Rows {"type": "promo" | "access", ...}: the promo codes and the gift/access codes."""
        return self._call(ADMIN_CODES, {}).addCallback(_rows)

    def alerts(self) -> Deferred[Rows]:
        """Rows {"operation_id", "entry_id" (None until shown), "at", "amount", "name" (public
        donors only), "queued_at", "sent_at"}: the newest donation alerts of the overlay outbox."""
        return self._call(ADMIN_ALERTS, {}).addCallback(_rows)

    def act(self, task: str, command: AdminCommand) -> Deferred[ActionDone]:
        """One of ACTIONS."""
        if task not in ACTIONS:
            raise ValueError(f"{task!r} is not an admin action")

        def read(wire: Any) -> ActionDone:
            done = result_from_wire(ActionDone, wire) or ActionDone()
            return ActionDone(bool(done.applied), int(done.count), dict(done.details or {}))
        return self._call(task, command.to_wire()).addCallback(read)


ACTIONS = (ADMIN_EXTEND, ADMIN_REVOKE, ADMIN_REVERIFY, ADMIN_REPLAY, ADMIN_REDELIVER, ADMIN_DISABLE_PROMO,
           ADMIN_SKIP_ALERT, ADMIN_REPLAY_ALERT)
