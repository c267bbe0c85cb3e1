"""The billing role's job contract: task names, argument and result dataclasses, and
:class:`BillingClient`, the one way other roles (web, bot, API, CLI) reach billing.

Task names appear only here and in the module that registers the handlers
(ymds.billing.tasks).  Each argument dataclass's ``from_wire`` is the one place its wire
arguments are checked (raising :class:`InvalidTaskArgs`); ``to_wire`` writes the same keys
as ever, so an old producer's job and a new one's are interchangeable in Redis.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Mapping

from twisted.internet.defer import Deferred

from ymds.billing.ledger import PAYMENT_STATUSES, SOURCES
from ymds.jobwire import (
    CENT, Enqueued, InvalidTaskArgs, result_from_wire, JobQueue, wire_int, wire_money, wire_object, wire_required_int, wire_text,
)
from ymds.links import is_our_label
from ymds.queue.errors import PermanentJobError, remote_error

QUEUE = "billing"

CREATE_INVOICES = "create_invoices"
CREATE_DONATION = "create_donation"
CREATE_INVOICE = "create_invoice"
INVOICE_STATUS = "invoice_status"
APPLY_PAYMENT = "apply_payment"
QUARANTINE = "quarantine"
SUBSCRIPTION_STATUS = "subscription_status"
MARK_BLOCKED = "mark_blocked"
STATS = "stats"
API_AUTHENTICATE = "api_authenticate"
API_INVOICE = "api_invoice"
LIST_PAYMENTS = "list_payments"
WEBHOOK_DELIVER = "webhook_deliver"

MAX_NAME = 100
MAX_MESSAGE = 1000
MAX_DESCRIPTION = 500
MAX_METADATA = 4096
MAX_AMOUNT = Decimal("1000000.00")
MAX_PAGE = 500
MAX_QUARANTINE_BODY = 1 << 20


@remote_error
class IdempotencyKeyReused(PermanentJobError):
    """create_invoice: the Idempotency-Key was used before with another request (HTTP 409)."""


# --- arguments ---------------------------------------------------------------------------

@dataclass(frozen=True)
class CreateInvoices:
    """One open invoice per plan for a chat (reused while open)."""
    chat_id: int
    user_id: int | None = None

    @classmethod
    def from_wire(cls, args: object) -> CreateInvoices:
        a = wire_object(args)
        return cls(wire_required_int(a, "chat_id"), wire_int(a, "user_id", optional=True))

    def to_wire(self) -> dict[str, Any]:
        return {"chat_id": self.chat_id, "user_id": self.user_id}


@dataclass(frozen=True)
class CreateDonation:
    """A donation invoice; ``name`` and ``message`` are stripped.  Whether the amount is
    within the configured range is billing's decision (config), not the wire's."""
    amount: Decimal
    name: str = ""
    message: str = ""

    @classmethod
    def from_wire(cls, args: object) -> CreateDonation:
        a = wire_object(args)
        return cls(wire_money(a, "amount"), wire_text(a, "name", MAX_NAME).strip(),
                   wire_text(a, "message", MAX_MESSAGE).strip())

    def to_wire(self) -> dict[str, Any]:
        return {"amount": self.amount, "name": self.name, "message": self.message}


@dataclass(frozen=True)
class IdempotencyKey:
    """The REST API's Idempotency-Key: per API key, with the hash of the request it came with."""
    key_id: str
    key: str
    request_hash: str

    @classmethod
    def from_wire(cls, value: object) -> IdempotencyKey | None:
        if value is None:
            return None
        if not isinstance(value, dict) or not all(isinstance(value.get(k), str) and 0 < len(value[k]) <= 255
                                                  for k in ("key_id", "key", "request_hash")):
            raise InvalidTaskArgs("idempotency must hold key_id, key and request_hash (text up to 255 characters)")
        return cls(value["key_id"], value["key"], value["request_hash"])


@dataclass(frozen=True)
class CreateInvoice:
    """The REST API's invoice: for a ``plan`` (needs ``chat_id``) or for an ``amount``."""
    plan: str | None = None
    amount: Decimal | None = None
    description: str = ""
    chat_id: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    ttl: int | None = None
    idempotency: IdempotencyKey | None = None

    @classmethod
    def from_wire(cls, args: object) -> CreateInvoice:
        a = wire_object(args)
        description = wire_text(a, "description", MAX_DESCRIPTION)
        chat_id = wire_int(a, "chat_id", optional=True)
        metadata = a.get("metadata") or {}
        if not isinstance(metadata, dict) or len(json.dumps(metadata, default=str)) > MAX_METADATA:
            raise InvalidTaskArgs(f"metadata must be an object of at most {MAX_METADATA} bytes of JSON")
        ttl = a.get("ttl")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or not 60 <= ttl <= 30 * 86400):
            raise InvalidTaskArgs("ttl must be whole seconds between 60 and 2592000")
        plan = a.get("plan")
        amount = None
        if plan is not None:
            if not isinstance(plan, str):
                raise InvalidTaskArgs(f"unknown plan {str(plan)[:40]!r}")
            if chat_id is None:
                raise InvalidTaskArgs("a plan invoice needs a chat_id")
        else:
            amount = wire_money(a, "amount")
            if not CENT <= amount <= MAX_AMOUNT:
                raise InvalidTaskArgs(f"amount must be between 0.01 and {MAX_AMOUNT}")
        return cls(plan, amount, description, chat_id, metadata, ttl, IdempotencyKey.from_wire(a.get("idempotency")))

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"description": self.description, "metadata": dict(self.metadata)}
        for name in ("plan", "amount", "chat_id", "ttl"):
            if getattr(self, name) is not None:
                wire[name] = getattr(self, name)
        if self.idempotency is not None:
            wire["idempotency"] = asdict(self.idempotency)
        return wire


@dataclass(frozen=True)
class InvoiceQuery:
    """An invoice by label; ``label`` is None when the text given is not one of our labels
    (the answer is then "no such invoice", not an error)."""
    label: str | None

    @classmethod
    def from_wire(cls, args: object) -> InvoiceQuery:
        label = wire_object(args).get("label")
        return cls(label if isinstance(label, str) and is_our_label(label) else None)

    def to_wire(self) -> dict[str, Any]:
        return {"label": self.label}


@dataclass(frozen=True)
class ApplyPayment:
    """A payment notification's fields.  ``fields`` stay as received: billing checks them
    itself and quarantines what it refuses, so nothing is lost to a bad shape.

    ``scheme`` is the signature the web node verified (``sign`` or ``sha1``).  It is absent
    (None) in jobs from web nodes older than it, and then ``sign`` was NOT proven: billing
    decides the scheme from the fields itself (ymds.billing.signatures).  Any other value
    reads as absent.  The key is left off the wire when None, so old workers see the job
    they know."""
    fields: Any
    source: str = "notification"
    scheme: str | None = None

    @classmethod
    def from_wire(cls, args: object) -> ApplyPayment:
        a = wire_object(args)
        source = a.get("source", "notification")
        if source not in SOURCES:
            raise InvalidTaskArgs(f"source must be one of {SOURCES}")
        scheme = a.get("scheme")
        return cls(a.get("fields"), source, scheme if scheme in ("sign", "sha1") else None)

    def to_wire(self) -> dict[str, Any]:
        fields = dict(self.fields) if isinstance(self.fields, Mapping) else self.fields
        wire: dict[str, Any] = {"fields": fields, "source": self.source}
        if self.scheme is not None:
            wire["scheme"] = self.scheme
        return wire


@dataclass(frozen=True)
class Quarantine:
    """A notification that failed verification, kept for the owner."""
    body: str
    reason: str = "unspecified"
    remote: str = ""

    @classmethod
    def from_wire(cls, args: object) -> Quarantine:
        a = wire_object(args)
        return cls(wire_text(a, "body", MAX_QUARANTINE_BODY), wire_text(a, "reason", 1000) or "unspecified",
                   wire_text(a, "remote", 1000))

    def to_wire(self) -> dict[str, Any]:
        return {"body": self.body, "reason": self.reason, "remote": self.remote}


@dataclass(frozen=True)
class ChatQuery:
    """A chat's subscription (``subscription_status``) or its blocking (``mark_blocked``)."""
    chat_id: int

    @classmethod
    def from_wire(cls, args: object) -> ChatQuery:
        return cls(wire_required_int(wire_object(args), "chat_id"))

    def to_wire(self) -> dict[str, Any]:
        return {"chat_id": self.chat_id}


@dataclass(frozen=True)
class NoArgs:
    """A task without arguments (``stats``)."""

    @classmethod
    def from_wire(cls, args: object) -> NoArgs:
        wire_object(args)
        return cls()

    def to_wire(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class ApiAuthenticate:
    """An API key by its SHA-256 hex digest; None when the text is not a digest."""
    key_hash: str | None

    @classmethod
    def from_wire(cls, args: object) -> ApiAuthenticate:
        import re
        digest = args.get("key_hash") if isinstance(args, dict) else None
        ok = isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest) is not None
        return cls(digest if ok else None)

    def to_wire(self) -> dict[str, Any]:
        return {"key_hash": self.key_hash}


@dataclass(frozen=True)
class ListPayments:
    """A page of payments, oldest first, after ``cursor``."""
    since: float | None = None
    until: float | None = None
    status: str | None = None
    label: str | None = None
    chat_id: int | None = None
    cursor: int | None = None
    limit: int = 100

    @classmethod
    def from_wire(cls, args: object) -> ListPayments:
        a = wire_object(args)
        times = []
        for name in ("since", "until"):
            value = a.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise InvalidTaskArgs(f"{name} must be Unix seconds")
            times.append(None if value is None else float(value))
        status = a.get("status")
        if status is not None and status not in PAYMENT_STATUSES:
            raise InvalidTaskArgs(f"status must be one of {', '.join(PAYMENT_STATUSES)}")
        label = a.get("label")
        if label is not None and (not isinstance(label, str) or len(label) > 256):
            raise InvalidTaskArgs("label must be text")
        limit = wire_int(a, "limit", optional=True) or 100
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidTaskArgs(f"limit must be between 1 and {MAX_PAGE}")
        return cls(times[0], times[1], status, label, wire_int(a, "chat_id", optional=True),
                   wire_int(a, "cursor", optional=True), limit)

    def filters(self) -> dict[str, Any]:
        """The ledger's filter arguments (those given)."""
        return {k: v for k, v in (("since", self.since), ("until", self.until), ("status", self.status),
                                  ("label", self.label), ("chat_id", self.chat_id)) if v is not None}

    def to_wire(self) -> dict[str, Any]:
        return {**self.filters(), **({"cursor": self.cursor} if self.cursor is not None else {}), "limit": self.limit}


@dataclass(frozen=True)
class WebhookDeliver:
    """Wake the deliverer of one webhook endpoint."""
    endpoint_id: str

    @classmethod
    def from_wire(cls, args: object) -> WebhookDeliver:
        endpoint_id = args.get("endpoint_id") if isinstance(args, dict) else None
        if not isinstance(endpoint_id, str) or not 0 < len(endpoint_id) <= 64:
            raise InvalidTaskArgs("webhook_deliver needs an endpoint_id")
        return cls(endpoint_id)

    def to_wire(self) -> dict[str, Any]:
        return {"endpoint_id": self.endpoint_id}


# --- results -----------------------------------------------------------------------------

@dataclass(frozen=True)
class InvoiceOffer:
    plan: str | None = None
    title: str = ""
    amount: Decimal | None = None
    label: str = ""
    url: str = ""
    expires_at: str | None = None
    # issue 19: the price before a promo code or a paid trial, the code, why a code was not
    # applied (one word), and a trial this user may take (free: start it with start_trial)
    full_price: Decimal | None = None
    promo: str | None = None
    promo_refused: str | None = None
    trial_days: int | None = None
    trial_free: bool = False


@dataclass(frozen=True)
class InvoiceOffers:
    """create_invoices: one offer per plan, in the config's order."""
    invoices: tuple[InvoiceOffer, ...] = ()

    @classmethod
    def from_wire(cls, wire: Any) -> InvoiceOffers:
        items = wire.get("invoices") if isinstance(wire, Mapping) else None
        return cls(tuple(o for o in (result_from_wire(InvoiceOffer, i) for i in items or [] if isinstance(i, Mapping))
                         if o is not None))

    def to_wire(self) -> dict[str, Any]:
        return {"invoices": [_offer_wire(i) for i in self.invoices]}


#: InvoiceOffer's issue-19 keys, sent only when set (the offer's wire form is otherwise as it was)
_OFFER_EXTRAS = ("full_price", "promo", "promo_refused", "trial_days", "trial_free")


def _offer_wire(offer: InvoiceOffer) -> dict[str, Any]:
    wire = asdict(offer)
    return {k: v for k, v in wire.items() if k not in _OFFER_EXTRAS or v not in (None, False)}


@dataclass(frozen=True)
class CreatedDonation:
    label: str = ""
    url: str = ""
    expires_at: str | None = None


@dataclass(frozen=True)
class InvoiceView:
    """An invoice as the pay pages show it (times are ISO 8601 UTC)."""
    label: str = ""
    kind: str = ""
    plan: str | None = None
    chat_id: int | None = None
    amount: Decimal | None = None
    status: str = "open"
    description: str = ""
    expires_at: str | None = None
    paid_at: str | None = None
    full_price: Decimal | None = None  # issue 19: the price before a promo code (shown struck through)
    promo: str | None = None


@dataclass(frozen=True)
class CreatedInvoice(InvoiceView):
    """create_invoice's answer; ``replayed`` when an Idempotency-Key repeated an earlier request."""
    url: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    replayed: bool = False


@dataclass(frozen=True)
class PaymentOutcome:
    """apply_payment's answer.  ``outcome`` is the ledger's (applied, duplicate, ...) or
    "test" or "quarantined" (then ``reason`` and ``quarantine_id`` say why and where)."""
    outcome: str
    operation_id: str | None = None
    label: str | None = None
    payment_status: str | None = None
    invoice_status: str | None = None
    ends_at: str | None = None
    is_new: bool | None = None
    released: bool | None = None
    reason: str | None = None
    quarantine_id: int | None = None

    def to_wire(self) -> dict[str, Any]:
        wire = asdict(self)
        if self.outcome in ("test", "quarantined"):  # the short answers, as they always were
            return {k: v for k, v in wire.items() if v is not None}
        del wire["reason"], wire["quarantine_id"]
        return wire


@dataclass(frozen=True)
class QuarantineResult:
    id: int = 0
    action: str = ""
    unresolved: int = 0


@dataclass(frozen=True)
class SubscriptionView:
    plan: str | None = None
    ends_at: str | None = None
    active: bool = False


@dataclass(frozen=True)
class BlockedResult:
    blocked: bool = True
    new: bool = False


@dataclass(frozen=True)
class BillingStats:
    payments_today: int = 0
    sum_today: Decimal = Decimal("0.00")
    payments_month: int = 0
    sum_month: Decimal = Decimal("0.00")
    active_subscribers: int = 0
    quarantined: int = 0


@dataclass(frozen=True)
class ApiKeyAuth:
    key_id: str = ""
    scopes: tuple[str, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "scopes": list(self.scopes)}


@dataclass(frozen=True)
class ApiDocument:
    """A REST API resource body, built by billing (it owns the field names)."""
    body: Mapping[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return dict(self.body)


@dataclass(frozen=True)
class PaymentPage:
    payments: tuple[Mapping[str, Any], ...] = ()
    next_cursor: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"payments": list(self.payments), "next_cursor": self.next_cursor}


def _as(cls: Any, wire: Any) -> Any:
    return result_from_wire(cls, wire)


class BillingClient:
    """What other roles call on billing, over an IJobQueue (treq-style: each method builds
    its job from a dataclass; calls fire with a typed result or fail with a typed error).

    Guarantees: jobs (``apply_payment``, ``quarantine``, ``mark_blocked``,
    ``webhook_deliver``) are durable once their Deferred fires, run at least once, and with a
    ``key`` at most once per key for the queue's key TTL (the Deferred then fires with
    ``Enqueued(None)``).  Calls (everything else) are RPCs: they fire with the result or fail
    with :class:`InvalidTaskArgs` / :class:`IdempotencyKeyReused` (the arguments were
    refused; each is also a RemoteJobError), another RemoteJobError, or JobTimeout (the call
    may still have run: all calls here are safe to repeat)."""

    def __init__(self, queue: JobQueue, timeout: float = 10.0):
        self.queue = queue
        self.timeout = timeout

    def _enqueue(self, task: str, args: dict[str, Any], key: str | None = None,
                 delay: float | None = None) -> Deferred[Enqueued]:
        return self.queue.enqueue(QUEUE, task, args, key=key, delay=delay).addCallback(Enqueued)

    def _call(self, task: str, args: dict[str, Any], result: Any, timeout: float | None) -> Deferred[Any]:
        d = self.queue.call(QUEUE, task, args, timeout=self.timeout if timeout is None else timeout)
        return d.addCallback(lambda wire: result(wire))

    # jobs

    def apply_payment(self, fields: Mapping[str, Any], source: str = "notification",
                      key: str | None = None, scheme: str | None = None) -> Deferred[Enqueued]:
        """Apply a payment notification (its fields as received, ``scheme`` the signature
        that verified them); exactly once per ``key`` (the ledger also applies each
        operation_id once)."""
        return self._enqueue(APPLY_PAYMENT, ApplyPayment(fields, source, scheme).to_wire(), key)

    def quarantine(self, body: str, reason: str, remote: str, key: str | None = None) -> Deferred[Enqueued]:
        """Keep a refused notification for the owner (who is alerted at most every ten minutes)."""
        return self._enqueue(QUARANTINE, Quarantine(body, reason, remote).to_wire(), key)

    def mark_blocked(self, chat_id: int, key: str | None = None) -> Deferred[Enqueued]:
        """Record that a chat blocked the bot (no more user messages are derived for it)."""
        return self._enqueue(MARK_BLOCKED, ChatQuery(chat_id).to_wire(), key)

    def webhook_deliver(self, endpoint_id: str, key: str | None = None,
                        delay: float | None = None) -> Deferred[Enqueued]:
        """Wake the deliverer of an endpoint (now or after ``delay`` seconds)."""
        return self._enqueue(WEBHOOK_DELIVER, WebhookDeliver(endpoint_id).to_wire(), key, delay)

    # calls

    def create_invoices(self, chat_id: int, user_id: int | None = None,
                        timeout: float | None = None) -> Deferred[InvoiceOffers]:
        """One open invoice per plan for the chat (the same ones while they are open)."""
        return self._call(CREATE_INVOICES, CreateInvoices(chat_id, user_id).to_wire(), InvoiceOffers.from_wire, timeout)

    def create_donation(self, amount: Decimal, name: str = "", message: str = "",
                        timeout: float | None = None) -> Deferred[CreatedDonation]:
        """A new donation invoice; InvalidTaskArgs when donations are off or out of range."""
        return self._call(CREATE_DONATION, CreateDonation(amount, name, message).to_wire(),
                          lambda w: _as(CreatedDonation, w), timeout)

    def create_invoice(self, request: CreateInvoice, timeout: float | None = None) -> Deferred[CreatedInvoice]:
        """An invoice for the REST API; with an idempotency key at most one per key
        (IdempotencyKeyReused when the key came with another request)."""
        return self._call(CREATE_INVOICE, request.to_wire(), lambda w: _as(CreatedInvoice, w), timeout)

    def invoice_status(self, label: str, timeout: float | None = None) -> Deferred[InvoiceView | None]:
        """The invoice, or None when there is no such invoice."""
        return self._call(INVOICE_STATUS, {"label": label}, lambda w: _as(InvoiceView, w), timeout)

    def subscription_status(self, chat_id: int, timeout: float | None = None) -> Deferred[SubscriptionView | None]:
        """The chat's subscription, or None if it never had one."""
        return self._call(SUBSCRIPTION_STATUS, ChatQuery(chat_id).to_wire(), lambda w: _as(SubscriptionView, w),
                          timeout)

    def stats(self, timeout: float | None = None) -> Deferred[BillingStats]:
        """Payments today and this month, active subscribers, unresolved quarantine."""
        return self._call(STATS, {}, lambda w: _as(BillingStats, w) or BillingStats(), timeout)

    def api_authenticate(self, key_hash: str, timeout: float | None = None) -> Deferred[ApiKeyAuth | None]:
        """The active API key with this hash, or None."""
        def read(wire: Any) -> ApiKeyAuth | None:
            auth = _as(ApiKeyAuth, wire)
            return None if auth is None else ApiKeyAuth(auth.key_id, tuple(auth.scopes))
        return self._call(API_AUTHENTICATE, {"key_hash": key_hash}, read, timeout)

    def api_invoice(self, label: str, timeout: float | None = None) -> Deferred[ApiDocument | None]:
        """The REST API's invoice document, or None."""
        return self._call(API_INVOICE, {"label": label}, lambda w: None if w is None else ApiDocument(w), timeout)

    def list_payments(self, query: ListPayments, timeout: float | None = None) -> Deferred[PaymentPage]:
        """One page of payments and the cursor of the next (None at the end)."""
        def read(wire: Any) -> PaymentPage:
            page = _as(PaymentPage, wire) or PaymentPage()
            return PaymentPage(tuple(page.payments or ()), page.next_cursor)
        return self._call(LIST_PAYMENTS, query.to_wire(), read, timeout)
