"""What the dashboard reads and does: the ``DashboardData`` interface the pages call.

Phase 1 has an in-memory implementation for the tests (tests/support/admin_data.py).  In
production it is backed by billing over the job queue, like the ``ymds`` command: the web
role never touches the ledger.  Times are aware datetimes; money is Decimal; "today" and
day buckets are days in the time zone of the ``now`` the caller passes (the owner's).

Every action carries an :class:`AdminAction`: the admin's id (written to the ledger's
audit events) and an idempotency key (one per rendered form), so a double submit is
applied once; the second answer says ``applied=False``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Mapping, Protocol, Sequence

KINDS = ("subscription", "donation")
PERIODS = ("today", "7d", "30d")
SERIES_DAYS = (30, 90, 365)


@dataclass(frozen=True)
class PaymentRow:
    id: str
    at: datetime
    amount: Decimal
    kind: str  # "subscription" | "donation"
    status: str  # the ledger's payment status: paid overpaid underpaid late unmatched held
    label: str
    chat: str | None = None
    operation_id: str | None = None


@dataclass(frozen=True)
class Overview:
    """``money[period][kind]``: money paid in each of PERIODS by kind."""

    money: Mapping[str, Mapping[str, Decimal]]
    active_subscribers: int
    new_subscribers: int  # in the last 30 days
    lapsed_subscribers: int  # in the last 30 days
    open_quarantine: int
    dead_letters: int
    last_payments: Sequence[PaymentRow] = ()


@dataclass(frozen=True)
class RevenuePoint:
    """Money paid from ``start`` (a local day; the Monday for weekly buckets), by kind."""

    start: date
    money: Mapping[str, Decimal]


@dataclass(frozen=True)
class CountPoint:
    day: date
    count: int


@dataclass(frozen=True)
class PaymentFilter:
    since: datetime | None = None
    until: datetime | None = None
    status: str = ""
    label: str = ""
    chat: str = ""


@dataclass(frozen=True)
class PaymentPage:
    rows: Sequence[PaymentRow]
    next_cursor: str | None = None  # pass back for the next (older) rows


@dataclass(frozen=True)
class Subscriber:
    """A subscription, keyed like the ledger's ``subscriptions`` table by the subscriber's chat id."""

    chat_id: str
    name: str
    plan: str
    expires_at: datetime | None
    status: str  # active | lapsed | revoked


@dataclass(frozen=True)
class QuarantineItem:
    id: str
    received_at: datetime
    amount: Decimal
    reason: str
    operation_id: str


@dataclass(frozen=True)
class DeadLetter:
    queue: str
    id: str  # the dead-letter stream entry id
    job: str
    failed_at: datetime
    error: str
    attempts: int


@dataclass(frozen=True)
class WebhookDelivery:
    id: str
    url: str
    event: str
    status: str  # delivered | failed | pending
    attempts: int
    last_at: datetime | None


@dataclass(frozen=True)
class PromoCodeRow:
    """A promo code: ``percent`` off or ``off`` rubles off; ``used`` of ``uses`` (None: no limit)."""
    code: str
    percent: int | None
    off: Decimal | None
    used: int
    uses: int | None
    ends_at: datetime | None
    active: bool


@dataclass(frozen=True)
class AccessCodeRow:
    """A gift or access code (a gift code's ``code`` is shortened: its buyer holds it)."""
    code: str
    plan: str
    days: int
    used: int
    uses: int
    expires_at: datetime | None
    gift: bool


@dataclass(frozen=True)
class Codes:
    promo: Sequence[PromoCodeRow] = ()
    access: Sequence[AccessCodeRow] = ()


@dataclass(frozen=True)
class StreamAlert:
    """A donation alert of the stream overlay (issue 17): ``entry_id`` is the overlay stream's
    entry (None until it was published, so nothing to skip or replay yet); ``name`` only for
    a donor who chose to be shown."""
    operation_id: str
    entry_id: str | None
    at: datetime
    amount: Decimal
    name: str | None
    shown: bool


@dataclass(frozen=True)
class AdminAction:
    admin: str
    idempotency_key: str


@dataclass(frozen=True)
class ActionResult:
    """``applied``: False when this idempotency key was already used (nothing done twice)."""

    applied: bool
    count: int = 1
    details: Mapping[str, str] = field(default_factory=dict)


class DashboardData(Protocol):
    """Everything the dashboard pages read and do.  Every method may raise on failure;
    the pages answer 503 then and log it."""

    async def overview(self, now: datetime) -> Overview: ...

    async def revenue_series(self, now: datetime, days: int, bucket: str) -> Sequence[RevenuePoint]:
        """One point per local day (bucket "day") or week ("week"), oldest first, gaps as zero."""

    async def subscriber_series(self, now: datetime, days: int) -> Sequence[CountPoint]:
        """Active subscribers at the end of each local day, oldest first."""

    async def payments(self, where: PaymentFilter, cursor: str | None, limit: int) -> PaymentPage:
        """Newest first, at most ``limit`` rows; the CSV export pages through with the cursor."""

    async def subscribers(self, search: str, limit: int) -> Sequence[Subscriber]: ...

    async def extend_subscriber(self, action: AdminAction, chat_id: str, days: int) -> ActionResult: ...

    async def revoke_subscriber(self, action: AdminAction, chat_id: str) -> ActionResult: ...

    async def quarantine(self) -> Sequence[QuarantineItem]: ...

    async def reverify(self, action: AdminAction, item_id: str | None) -> ActionResult:
        """Reverify one quarantined notification, or all of them when ``item_id`` is None."""

    async def dead_letters(self) -> Sequence[DeadLetter]: ...

    async def replay_dead_letter(self, action: AdminAction, queue: str, letter_id: str) -> ActionResult: ...

    async def webhook_deliveries(self) -> Sequence[WebhookDelivery]: ...

    async def redeliver_webhook(self, action: AdminAction, delivery_id: str) -> ActionResult: ...

    async def codes(self) -> Codes:
        """Promo codes and gift/access codes (issue 19)."""

    async def disable_promo(self, action: AdminAction, code: str) -> ActionResult: ...

    async def stream_alerts(self) -> Sequence[StreamAlert]:
        """The newest donation alerts of the stream overlay, newest first (issue 17)."""

    async def skip_alert(self, action: AdminAction, entry_id: str) -> ActionResult:
        """The overlays drop, or stop showing, this alert (``ymds overlay skip``)."""

    async def replay_alert(self, action: AdminAction, entry_id: str) -> ActionResult:
        """This alert is shown again (``ymds overlay replay``); count 0 if the stream lost it."""
