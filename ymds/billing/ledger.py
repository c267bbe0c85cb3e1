"""The ledger: where invoices, payments, subscriptions and quarantined notifications live.

Only the billing role talks to it.  :class:`ILedger` is the contract; every method returns
a Deferred.  Two implementations ship (``ymds.billing.sqlite`` and ``ymds.billing.postgres``)
and a third party can plug its own in by naming a factory in ``ledger.url``
(``package.module:factory``, called as ``factory(url, reactor)``).

Times are Unix seconds (floats) supplied by the caller's clock; money is ``Decimal``.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from zope.interface import Interface

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
API_SCOPES = ("invoices:write", "invoices:read", "payments:read", "subscriptions:read")


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


# --- the interface --------------------------------------------------------------------------


class ILedger(Interface):
    """Persistent billing state.  Every method returns a Deferred."""

    def migrate():
        """Create or upgrade the schema; fails with SchemaTooNew on a newer database.
        Fires with the schema version now in force."""

    def create_invoice(kind, amount, now, ttl, plan=None, days=None, chat_id=None, user_id=None,
                       description="", metadata=None, label=None, reuse_open=False):
        """A new open invoice (Invoice).  With ``reuse_open`` and a chat and plan, an open
        invoice for the same chat, plan and amount that is still valid for at least half of
        ``ttl`` is returned instead."""

    def get_invoice(label):
        """The Invoice or None."""

    def open_invoices_for(chat_id, now=None):
        """Open invoices of a chat (with ``now``: only those not yet expired), newest first."""

    def apply_payment(fields, source, now, held=None):
        """Record a payment from a notification's raw fields in one transaction, idempotent
        on operation_id: ApplyResult.  ``held`` overrides the fields' own unaccepted/codepro
        (True: keep it held whatever they say; False: treat it as accepted)."""

    def release_payment(operation_id, now, source="manual"):
        """Accept a held payment (ApplyResult with released=True), or say why not
        (outcome "duplicate" when it was not held; None when unknown)."""

    def get_payment(operation_id):
        """The Payment or None."""

    def mark_notified(operation_id):
        """Record that the bot jobs for this payment were enqueued."""

    def list_payments(since=None, until=None, status=None, label=None, chat_id=None,
                      after_cursor=None, limit=100):
        """A PaymentPage in arrival order; page on with ``next_cursor``."""

    def subscription(chat_id):
        """The Subscription or None."""

    def expire_invoices(now):
        """Mark open invoices past their expiry as expired; fires with their labels."""

    def prune_unpaid(older_than):
        """Delete expired, never-paid invoices that expired before ``older_than``; fires
        with how many went."""

    def due_reminders(now, window, limit=1000):
        """Subscriptions ending within ``window`` seconds that have not yet been reminded at
        this or a smaller window."""

    def mark_reminded(items, window, now=None):
        """Claim reminders: ``items`` are (chat_id, ends_at) pairs.  Fires with the chat ids
        whose claim succeeded (a concurrent process claiming the same one gets nothing)."""

    def unmark_reminded(chat_id, ends_at, window):
        """Give a claim back (the reminder could not be queued)."""

    def expired_subscriptions(now, limit=1000):
        """Subscriptions that ended and were not yet processed as expired."""

    def mark_expired(items, now=None):
        """Claim expiries like mark_reminded; fires with the claimed chat ids."""

    def unmark_expired(chat_id, ends_at):
        """Give an expiry claim back."""

    def mark_blocked(chat_id, now=None):
        """The user blocked the bot: stop sending to this chat.  Fires True the first time."""

    def is_blocked(chat_id):
        """Fires with a bool."""

    def quarantine_add(body, reason, remote, now):
        """Keep a notification that failed verification; bounded (QuarantineResult)."""

    def quarantine_list(unresolved_only=True, limit=100, after_id=0):
        """QuarantinedNotification rows with id > after_id, oldest first."""

    def quarantine_resolve(id, how, now=None):
        """Mark one resolved; fires with True if it was unresolved."""

    def stats(now):
        """Stats for the owner (UTC day and month)."""

    def get_cursor(name):
        """A stored text cursor (reconciliation) or None."""

    def set_cursor(name, value):
        """Store a text cursor."""

    def events(label=None, chat_id=None, operation_id=None, limit=1000):
        """The audit log of one invoice, chat or operation, oldest first."""

    # --- integration API and webhooks (schema version 2) ---

    def api_key_create(key_id, key_hash, name, scopes, now):
        """Store a new API key by its hash; fires with the ApiKey."""

    def api_key_lookup(key_hash):
        """The ApiKey with this hash (revoked ones too) or None."""

    def api_key_list():
        """Every ApiKey, oldest first."""

    def api_key_revoke(key_id, now):
        """Revoke a key; fires True if it was active."""

    def create_invoice_once(key_id, idempotency_key, request_hash, now, kind, amount, ttl, plan=None, days=None,
                            chat_id=None, user_id=None, description="", metadata=None):
        """create_invoice (a new label) at most once per (key_id, idempotency_key): fires with
        (Invoice, replayed).  The same key with another ``request_hash`` fails with
        IdempotencyConflict."""

    def prune_idempotency(older_than):
        """Forget idempotency keys created before ``older_than``; fires with how many."""

    def webhook_endpoint_add(endpoint_id, url, events, secret, now):
        """Register an endpoint (WebhookEndpoint)."""

    def webhook_endpoint_get(endpoint_id):
        """The WebhookEndpoint (removed ones too) or None."""

    def webhook_endpoints(include_removed=False):
        """Endpoints with their pending/failed counts, oldest first."""

    def webhook_endpoint_remove(endpoint_id, now):
        """Stop delivering to an endpoint; fires True if it was active."""

    def webhook_emit(events, now):
        """Write outbox events, each ``(type, cause, data)``, at most once per cause, with a
        pending delivery for every active endpoint that wants its type.  Fires with the ids
        of the endpoints that have a pending delivery of any of these events."""

    def webhook_claim(endpoint_id, token, now, lease):
        """Take (or renew, with the same token) the endpoint's delivery lease for ``lease``
        seconds; fires True when held.  One deliverer per endpoint keeps events in order."""

    def webhook_release(endpoint_id, token):
        """Give the lease back (only if ``token`` holds it)."""

    def webhook_next(endpoint_id):
        """The endpoint's oldest pending WebhookDelivery or None."""

    def webhook_record_attempt(endpoint_id, event_seq, now, status_code, error, duration, outcome,
                               next_attempt_at=None):
        """Log one attempt and move the delivery on: ``delivered``, ``failed`` (given up) or
        ``retry`` (at ``next_attempt_at``)."""

    def webhook_due(now, limit=1000):
        """Ids of active, unleased endpoints whose oldest pending delivery is due."""

    def webhook_redeliver(now, event_id=None, endpoint_id=None, since=None):
        """Make deliveries pending again (one event; or an endpoint's events created since
        ``since``); an active endpoint that wants the event but never had it gets it too.
        Fires with the ids of the endpoints concerned."""

    def webhook_deliveries(endpoint_id=None, event_id=None, status=None, limit=100):
        """WebhookDelivery rows, oldest event first."""

    def webhook_attempts(endpoint_id=None, event_id=None, limit=100):
        """The delivery log (WebhookAttempt), oldest first."""

    def close():
        """Release connections."""


# --- choosing an implementation -------------------------------------------------------------


def open_ledger(url: str, reactor, **options):
    """The ILedger named by ``url`` (not yet migrated: call ``migrate()``).

    ``sqlite:///path`` and ``postgresql://...`` pick the built-in ledgers; anything of the
    form ``package.module:factory`` is imported and called as ``factory(url, reactor)``.
    """
    if url.startswith("sqlite:"):
        from ymds.billing.sqlite import SQLiteLedger
        return SQLiteLedger.from_url(url, reactor, **options)
    if url.startswith(("postgresql:", "postgres:")):
        from ymds.billing.postgres import PostgresLedger
        return PostgresLedger.from_url(url, reactor, **options)
    module_name, sep, attr = url.partition(":")
    if not sep:
        module_name, _, attr = url.rpartition(".")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise LedgerError(f"ledger.url {url!r}: cannot import the ledger factory ({e})") from None
    ledger = factory(url, reactor)
    if not ILedger.providedBy(ledger):
        raise LedgerError(f"ledger.url {url!r}: {module_name}.{attr} did not return an ILedger provider")
    return ledger
