"""The ledger's values and errors: invoices, payments, subscriptions, quarantined
notifications, API keys and webhook deliveries as the stores return them.

Only the billing role talks to the ledger.  Its contract is ``ymds.billing.interfaces``
(one interface per store, composed in ``ILedger``); ``ymds.billing.open.open_ledger``
picks an implementation by URL.  Times are Unix seconds (floats) supplied by the caller's
clock; money is ``Decimal``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

# --- errors ---------------------------------------------------------------------------------


class LedgerError(Exception):
    """Something the ledger refuses, with a one-line explanation."""


class SchemaTooNew(LedgerError):
    """The database was migrated by a newer ymds than this one."""


class BadPaymentFields(LedgerError, ValueError):
    """A notification's fields cannot be recorded (missing or malformed values)."""


class UnknownPlan(LedgerError, ValueError):
    """An invoice was asked for a plan that is not configured."""


class IdempotencyConflict(LedgerError):
    """An Idempotency-Key was used before with a different request."""


# --- value objects --------------------------------------------------------------------------

INVOICE_STATUSES = ("open", "paid", "underpaid", "overpaid", "expired", "late", "held")
PAYMENT_STATUSES = ("paid", "overpaid", "underpaid", "late", "unmatched", "held")
OUTCOMES = PAYMENT_STATUSES + ("duplicate", "test")
# Outcomes that give the payer what the invoice sells.
GRANTING = ("paid", "overpaid", "late")
SOURCES = ("notification", "reconcile", "manual")


@dataclass(frozen=True)
class Invoice:
    label: str
    kind: str  # subscription | donation
    plan: str | None
    days: int | None
    chat_id: int | None
    user_id: int | None
    amount: Decimal
    description: str
    metadata: Mapping[str, Any]
    status: str
    created_at: float
    expires_at: float
    paid_at: float | None = None
    operation_id: str | None = None


@dataclass(frozen=True)
class Payment:
    operation_id: str
    label: str
    invoice_label: str | None
    amount: Decimal
    withdraw_amount: Decimal
    notification_type: str
    datetime_raw: str
    sender: str
    held: bool
    status: str
    source: str
    received_at: float
    accepted_at: float | None
    chat_id: int | None
    granted_until: float | None
    notified: bool
    seq: int = 0
    raw: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold personal fields


@dataclass(frozen=True)
class Subscription:
    chat_id: int
    plan: str | None
    ends_at: float
    updated_at: float
    reminded_window: int | None = None
    expired: bool = False

    def active(self, now: float) -> bool:
        return self.ends_at > now


@dataclass(frozen=True)
class QuarantinedNotification:
    id: int
    body: str
    reason: str
    remote: str
    received_at: float
    last_seen: float
    count: int
    size: int
    resolved_at: float | None = None
    resolution: str | None = None


@dataclass(frozen=True)
class QuarantineResult:
    """What quarantine_add did: ``stored`` (a new row), ``repeated`` (same body seen before:
    counted), or ``aggregated`` (over the cap: only counted, body not kept)."""
    id: int
    action: str
    unresolved: int


@dataclass(frozen=True)
class Event:
    id: int
    at: float
    kind: str
    label: str | None
    chat_id: int | None
    operation_id: str | None
    data: Mapping[str, Any]


@dataclass(frozen=True)
class ApplyResult:
    outcome: str
    payment: Payment | None
    invoice: Invoice | None
    subscription: Subscription | None
    events: tuple[Event, ...]
    is_new: bool
    released: bool = False  # a held payment became accepted by this call
    chat_blocked: bool | None = None  # the invoice's chat blocked the bot (None: not looked up)


@dataclass(frozen=True)
class PaymentPage:
    payments: tuple[Payment, ...]
    next_cursor: int | None  # pass as after_cursor for the next page; None when done


@dataclass(frozen=True)
class Stats:
    payments_today: int
    sum_today: Decimal
    payments_month: int
    sum_month: Decimal
    active_subscribers: int
    quarantined: int


WEBHOOK_EVENT_TYPES = ("invoice.paid", "invoice.underpaid", "payment.unmatched", "subscription.extended",
                       "subscription.expired")
API_SCOPES = ("invoices:write", "invoices:read", "payments:read", "subscriptions:read", "subscriptions:write",
              "promo:read", "promo:write", "codes:write")  # issue 19: selling tools


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: float
    revoked_at: float | None = None


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    url: str
    events: tuple[str, ...]
    secret: str = field(repr=False)
    created_at: float = 0.0
    removed_at: float | None = None
    pending: int = 0  # undelivered events (filled by webhook_endpoints)
    failed: int = 0


@dataclass(frozen=True)
class WebhookDelivery:
    """One event on its way to one endpoint."""
    endpoint_id: str
    event_seq: int
    event_id: str
    type: str
    created_at: float
    data: Mapping[str, Any]
    status: str  # pending | delivered | failed
    attempts: int
    first_attempt_at: float | None
    next_attempt_at: float
    last_error: str | None = None
    done_at: float | None = None


@dataclass(frozen=True)
class WebhookAttempt:
    id: int
    endpoint_id: str
    event_id: str
    at: float
    status_code: int | None
    error: str | None
    duration: float
    outcome: str  # delivered | retry | failed


# --- notification fields --------------------------------------------------------------------

_OPERATION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_AMOUNT = re.compile(r"^\d{1,10}(\.\d{1,2})?$")
MAX_LABEL = 256  # YooMoney allows 64; foreign labels are kept but cut


@dataclass(frozen=True)
class PaymentFields:
    """The values of a notification the ledger records, parsed strictly from raw strings."""
    operation_id: str
    amount: Decimal
    withdraw_amount: Decimal
    label: str
    notification_type: str
    datetime_raw: str
    sender: str
    held: bool
    is_test: bool
    raw: Mapping[str, str]

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> "PaymentFields":
        if not isinstance(fields, Mapping):
            raise BadPaymentFields("fields must be a mapping of strings")
        raw = {}
        for k, v in fields.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise BadPaymentFields(f"field {k!r} is not text")
            raw[k] = v
        op = raw.get("operation_id", "")
        if not _OPERATION_ID.fullmatch(op):
            raise BadPaymentFields("operation_id is missing or malformed")
        amount = _parse_amount("amount", raw.get("amount", ""))
        withdraw_raw = raw.get("withdraw_amount", "")
        withdraw = _parse_amount("withdraw_amount", withdraw_raw) if withdraw_raw else amount
        if withdraw < amount:
            raise BadPaymentFields(f"amount {amount} exceeds withdraw_amount {withdraw}: the fee cannot be negative")
        if raw.get("currency", "643") != "643":
            raise BadPaymentFields(f"currency {raw['currency'][:10]!r} is not 643 (rubles)")
        held = _flag(raw, "unaccepted") or _flag(raw, "codepro")
        return cls(
            operation_id=op,
            amount=amount,
            withdraw_amount=withdraw,
            label=raw.get("label", "")[:MAX_LABEL],
            notification_type=raw.get("notification_type", "")[:32],
            datetime_raw=raw.get("datetime", "")[:64],
            sender=raw.get("sender", "")[:64],
            held=held,
            is_test=_flag(raw, "test_notification"),
            raw=raw,
        )


def _parse_amount(name: str, text: str) -> Decimal:
    if not _AMOUNT.fullmatch(text or ""):
        raise BadPaymentFields(f"{name} {text[:20]!r} is not an amount with at most two decimals")
    try:
        value = Decimal(text).quantize(Decimal("0.01"))
    except InvalidOperation:  # pragma: no cover - the pattern already excludes this
        raise BadPaymentFields(f"{name} is not an amount") from None
    return value


def _flag(raw: Mapping[str, str], name: str) -> bool:
    value = raw.get(name, "false").strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0", ""):
        return False
    raise BadPaymentFields(f"{name} is {value[:10]!r}, expected true or false")

