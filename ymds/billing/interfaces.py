"""The ledger's contract: one small interface per store, and :class:`ILedger` composing them.

Every method returns a Deferred and runs as one transaction: it either happens whole or
not at all.  Times are Unix seconds (floats) supplied by the caller's clock; money is
``Decimal``.  Interfaces are ``typing.Protocol`` classes: a third-party ledger (named by
``ledger.url = package.module:factory``) need not inherit from anything, only provide
these attributes and methods (checked by :func:`missing_members`).
"""

from __future__ import annotations

import inspect
from decimal import Decimal
from typing import Any, Iterable, Mapping, Protocol, runtime_checkable

from twisted.internet.defer import Deferred

from ymds.billing.access_model import IAccessStore
from ymds.billing.overlay_model import IOverlayStore
from ymds.billing.ledger import (
    ApiKey, ApplyResult, Event, Invoice, Payment, PaymentFields, PaymentPage, QuarantinedNotification,
    QuarantineResult, Stats, Subscription, WebhookAttempt, WebhookDelivery, WebhookEndpoint,
)
from ymds.billing.selling_interfaces import ICodeStore, IPromoStore, ITrialStore


@runtime_checkable
class IInvoiceStore(Protocol):
    """Invoices: what a payer is asked to pay."""

    def create_invoice(self, kind: str, amount: Decimal, now: float, ttl: float, plan: str | None = None,
                       days: int | None = None, chat_id: int | None = None, user_id: int | None = None,
                       description: str = "", metadata: Mapping[str, Any] | None = None, label: str | None = None,
                       reuse_open: bool = False) -> Deferred[Invoice]:
        """A new open invoice.  With ``reuse_open`` and a chat and plan, an open invoice for
        the same chat, plan and amount that is still valid for at least half of ``ttl`` is
        returned instead.  Fails with LedgerError on a bad kind, amount or label."""

    def get_invoice(self, label: str) -> Deferred[Invoice | None]:
        """The Invoice or None."""

    def open_invoices_for(self, chat_id: int, now: float | None = None) -> Deferred[list[Invoice]]:
        """Open invoices of a chat (with ``now``: only those not yet expired), newest first."""

    def expire_invoices(self, now: float) -> Deferred[list[str]]:
        """Mark open invoices past their expiry as expired; fires with their labels."""

    def prune_unpaid(self, older_than: float) -> Deferred[int]:
        """Delete expired, never-paid invoices that expired before ``older_than`` (and their
        own creation/expiry events); fires with how many went."""


@runtime_checkable
class IPaymentStore(Protocol):
    """Payments: money that arrived, applied to its invoice exactly once."""

    def apply_payment(self, fields: PaymentFields | Mapping[str, Any], source: str, now: float,
                      held: bool | None = None) -> Deferred[ApplyResult]:
        """Record a payment from a notification's raw fields in one transaction, idempotent
        on operation_id: a second call is a "duplicate" and credits nothing.  ``held``
        overrides the fields' own unaccepted/codepro (True: keep it held whatever they say;
        False: treat it as accepted).  Bad fields fail with BadPaymentFields."""

    def release_payment(self, operation_id: str, now: float, source: str = "manual") -> Deferred[ApplyResult | None]:
        """Accept a held payment (ApplyResult with released=True), or say why not (outcome
        "duplicate" when it was not held; None when unknown)."""

    def get_payment(self, operation_id: str) -> Deferred[Payment | None]:
        """The Payment or None."""

    def mark_notified(self, operation_id: str) -> Deferred[bool]:
        """Record that the bot jobs for this payment were enqueued; True the first time."""

    def list_payments(self, since: float | None = None, until: float | None = None, status: str | None = None,
                      label: str | None = None, chat_id: int | None = None, after_cursor: int | None = None,
                      limit: int = 100) -> Deferred[PaymentPage]:
        """A PaymentPage in arrival order; page on with ``next_cursor``."""


@runtime_checkable
class ISubscriptionStore(Protocol):
    """Subscriptions, their reminder and expiry claims, and chats that blocked the bot."""

    def subscription(self, chat_id: int) -> Deferred[Subscription | None]:
        """The Subscription or None."""

    def due_reminders(self, now: float, window: float, limit: int = 1000) -> Deferred[list[Subscription]]:
        """Subscriptions of unblocked chats ending within ``window`` seconds that have not
        yet been reminded at this or a smaller window, soonest first."""

    def mark_reminded(self, items: Iterable[tuple[int, float]], window: float,
                      now: float | None = None) -> Deferred[list[int]]:
        """Claim reminders: ``items`` are (chat_id, ends_at) pairs.  Fires with the chat ids
        whose claim succeeded (a concurrent process claiming the same one gets nothing)."""

    def unmark_reminded(self, chat_id: int, ends_at: float, window: float) -> Deferred[bool]:
        """Give a claim back (the reminder could not be queued)."""

    def expired_subscriptions(self, now: float, limit: int = 1000) -> Deferred[list[Subscription]]:
        """Subscriptions that ended and were not yet processed as expired."""

    def mark_expired(self, items: Iterable[tuple[int, float]], now: float | None = None) -> Deferred[list[int]]:
        """Claim expiries like mark_reminded; fires with the claimed chat ids."""

    def unmark_expired(self, chat_id: int, ends_at: float) -> Deferred[bool]:
        """Give an expiry claim back."""

    def mark_blocked(self, chat_id: int, now: float | None = None) -> Deferred[bool]:
        """The user blocked the bot: stop sending to this chat.  Fires True the first time."""

    def is_blocked(self, chat_id: int) -> Deferred[bool]:
        """Whether the chat blocked the bot."""


@runtime_checkable
class IQuarantineStore(Protocol):
    """Notifications that failed verification, kept for the owner within fixed bounds."""

    def quarantine_add(self, body: str | bytes, reason: str, remote: str, now: float) -> Deferred[QuarantineResult]:
        """Keep a notification body; the same body is counted, not stored twice; over the
        row/byte bounds only a per-reason count is kept (QuarantineResult says which)."""

    def quarantine_list(self, unresolved_only: bool = True, limit: int = 100,
                        after_id: int = 0) -> Deferred[list[QuarantinedNotification]]:
        """QuarantinedNotification rows with id > after_id, oldest first."""

    def quarantine_resolve(self, id: int, how: str, now: float | None = None) -> Deferred[bool]:
        """Mark one resolved; fires with True if it was unresolved."""


@runtime_checkable
class IAuditStore(Protocol):
    """The audit log every store appends to, and the owner's figures."""

    def events(self, label: str | None = None, chat_id: int | None = None, operation_id: str | None = None,
               limit: int = 1000) -> Deferred[list[Event]]:
        """The audit log of one invoice, chat or operation, oldest first (needs one of them)."""

    def stats(self, now: float) -> Deferred[Stats]:
        """Stats for the owner (UTC day and month); money summed exactly."""


@runtime_checkable
class ICursorStore(Protocol):
    """Named text cursors (reconciliation's place in the wallet history)."""

    def get_cursor(self, name: str) -> Deferred[str | None]:
        """A stored text cursor or None."""

    def set_cursor(self, name: str, value: str) -> Deferred[None]:
        """Store a text cursor (replacing the old value)."""


@runtime_checkable
class IApiKeyStore(Protocol):
    """Integration API keys (kept only as hashes) and Idempotency-Keys."""

    def api_key_create(self, key_id: str, key_hash: str, name: str, scopes: Iterable[str],
                       now: float) -> Deferred[ApiKey]:
        """Store a new API key by its hash; fires with the ApiKey."""

    def api_key_lookup(self, key_hash: str) -> Deferred[ApiKey | None]:
        """The ApiKey with this hash (revoked ones too) or None."""

    def api_key_list(self) -> Deferred[list[ApiKey]]:
        """Every ApiKey, oldest first."""

    def api_key_revoke(self, key_id: str, now: float) -> Deferred[bool]:
        """Revoke a key; fires True if it was active."""

    def create_invoice_once(self, key_id: str, idempotency_key: str, request_hash: str, now: float, kind: str,
                            amount: Decimal, ttl: float, plan: str | None = None, days: int | None = None,
                            chat_id: int | None = None, user_id: int | None = None, description: str = "",
                            metadata: Mapping[str, Any] | None = None) -> Deferred[tuple[Invoice, bool]]:
        """create_invoice (a new label) at most once per (key_id, idempotency_key): fires with
        (Invoice, replayed).  The same key with another ``request_hash`` fails with
        IdempotencyConflict."""

    def prune_idempotency(self, older_than: float) -> Deferred[int]:
        """Forget idempotency keys created before ``older_than``; fires with how many."""


@runtime_checkable
class IWebhookStore(Protocol):
    """The webhook outbox: endpoints, events, deliveries in order, attempts."""

    def webhook_endpoint_add(self, endpoint_id: str, url: str, events: Iterable[str], secret: str,
                             now: float) -> Deferred[WebhookEndpoint]:
        """Register an endpoint."""

    def webhook_endpoint_get(self, endpoint_id: str) -> Deferred[WebhookEndpoint | None]:
        """The WebhookEndpoint (removed ones too) or None."""

    def webhook_endpoints(self, include_removed: bool = False) -> Deferred[list[WebhookEndpoint]]:
        """Endpoints with their pending/failed counts, oldest first."""

    def webhook_endpoint_remove(self, endpoint_id: str, now: float) -> Deferred[bool]:
        """Stop delivering to an endpoint; fires True if it was active."""

    def webhook_emit(self, events: Iterable[tuple[str, str, Mapping[str, Any]]], now: float) -> Deferred[list[str]]:
        """Write outbox events, each ``(type, cause, data)``, at most once per cause, with a
        pending delivery for every active endpoint that wants its type.  Fires with the ids
        of the endpoints that have a pending delivery of any of these events."""

    def webhook_claim(self, endpoint_id: str, token: str, now: float, lease: float) -> Deferred[bool]:
        """Take (or renew, with the same token) the endpoint's delivery lease for ``lease``
        seconds; fires True when held.  One deliverer per endpoint keeps events in order."""

    def webhook_release(self, endpoint_id: str, token: str) -> Deferred[bool]:
        """Give the lease back (only if ``token`` holds it)."""

    def webhook_next(self, endpoint_id: str) -> Deferred[WebhookDelivery | None]:
        """The endpoint's oldest pending WebhookDelivery or None."""

    def webhook_record_attempt(self, endpoint_id: str, event_seq: int, now: float, status_code: int | None,
                               error: str | None, duration: float, outcome: str,
                               next_attempt_at: float | None = None) -> Deferred[bool]:
        """Log one attempt and move the delivery on: ``delivered``, ``failed`` (given up) or
        ``retry`` (at ``next_attempt_at``)."""

    def webhook_due(self, now: float, limit: int = 1000) -> Deferred[list[str]]:
        """Ids of active, unleased endpoints whose oldest pending delivery is due."""

    def webhook_redeliver(self, now: float, event_id: str | None = None, endpoint_id: str | None = None,
                          since: float | None = None) -> Deferred[list[str]]:
        """Make deliveries pending again (one event; or an endpoint's events created since
        ``since``); an active endpoint that wants the event but never had it gets it too.
        Fires with the ids of the endpoints concerned."""

    def webhook_deliveries(self, endpoint_id: str | None = None, event_id: str | None = None,
                           status: str | None = None, limit: int = 100) -> Deferred[list[WebhookDelivery]]:
        """WebhookDelivery rows, oldest event first."""

    def webhook_attempts(self, endpoint_id: str | None = None, event_id: str | None = None,
                         limit: int = 100) -> Deferred[list[WebhookAttempt]]:
        """The delivery log (WebhookAttempt), oldest first."""


@runtime_checkable
class ISubscriberStore(Protocol):
    """The owner's subscriber list and hand-made changes, each with its audit event."""

    def subscribers(self, now: float, status: str = "active", plan: str | None = None,
                    expiring_within: float | None = None, limit: int = 100000) -> Deferred[list[Subscription]]:
        """Subscriptions by ``status`` (active, expired, all) and ``plan``, soonest end first;
        ``expiring_within`` seconds keeps the active ones ending within that time."""

    def audience(self, now: float, status: str, plan: str | None = None) -> Deferred[list[int]]:
        """Chat ids of a broadcast's audience (as ``subscribers``), without chats that blocked the bot."""

    def grant(self, chat_id: int, days: int, now: float, plan: str | None = None, by: str = "",
              only_existing: bool = False, request: tuple[str, str] | None = None) -> Deferred[Any]:
        """Add ``days`` to the subscription (from now if it has ended), creating it unless
        ``only_existing`` (then None when there is none); a SubscriberChange.  ``request``
        (key, hash of the request): a key seen before changes nothing (``repeated``), with
        another hash fails with IdempotencyConflict."""

    def revoke(self, chat_id: int, now: float, by: str = "", request: tuple[str, str] | None = None) -> Deferred[Any]:
        """End the subscription now (no expiry message follows); a SubscriberChange, or None
        when the chat never had one.  ``request`` as for ``grant``."""


@runtime_checkable
class IBroadcastStore(Protocol):
    """Broadcasts and their recipients: each recipient is pending until the bot answers once."""

    def broadcast_start(self, broadcast_id: str, audience: str, plan: str | None, text_hash: str,
                        chat_ids: Iterable[int], now: float) -> Deferred[Any]:
        """(Broadcast, True) with its recipients, all pending; or (the existing Broadcast,
        False) when the id was started before (its recipients stay as they were)."""

    def broadcast_get(self, broadcast_id: str) -> Deferred[Any]:
        """The Broadcast or None."""

    def broadcast_pending(self, broadcast_id: str, limit: int = 100000) -> Deferred[list[int]]:
        """Chat ids still pending, in order."""

    def broadcast_record(self, broadcast_id: str, outcomes: Iterable[tuple[int, str]], now: float) -> Deferred[int]:
        """Mark pending recipients sent, blocked or failed; fires with how many changed
        (a recipient already marked stays as it was)."""

    def broadcast_counts(self, broadcast_id: str) -> Deferred[dict[str, int]]:
        """Recipients by status (pending, sent, blocked, failed)."""

    def broadcast_finish(self, broadcast_id: str, now: float) -> Deferred[bool]:
        """Record the end once (True the first time), with the counts in the audit log."""


@runtime_checkable
class ILedger(Protocol):
    """Persistent billing state: the stores, plus the schema and the connections."""

    @property
    def invoices(self) -> IInvoiceStore:
        """The invoices store."""

    @property
    def payments(self) -> IPaymentStore:
        """The payments store."""

    @property
    def subscriptions(self) -> ISubscriptionStore:
        """The subscriptions store."""

    @property
    def quarantine(self) -> IQuarantineStore:
        """The quarantine store."""

    @property
    def audit(self) -> IAuditStore:
        """The audit store."""

    @property
    def cursors(self) -> ICursorStore:
        """The cursors store."""

    @property
    def api_keys(self) -> IApiKeyStore:
        """The api keys store."""

    @property
    def webhooks(self) -> IWebhookStore:
        """The webhooks store."""

    @property
    def subscribers(self) -> ISubscriberStore:
        """The subscriber management store."""

    @property
    def broadcasts(self) -> IBroadcastStore:
        """The broadcasts store."""

    @property
    def access(self) -> IAccessStore:
        """The paid chats' access store (invite links, members seen, removals due)."""

    @property
    def overlay(self) -> IOverlayStore:
        """The creators' store (overlay token, public donors, overlay outbox, goal sums)."""

    @property
    def trials(self) -> ITrialStore:
        """Trials, once per user per plan (issue 19)."""

    @property
    def promo(self) -> IPromoStore:
        """Promo codes and their reserved uses (issue 19)."""

    @property
    def codes(self) -> ICodeStore:
        """Gift and access codes (issue 19)."""


    def migrate(self) -> Deferred[int]:
        """Create or upgrade the schema; fails with SchemaTooNew on a newer database.
        Fires with the schema version now in force."""

    def schema_version(self) -> Deferred[int]:
        """The schema version in force (0 before the first migration)."""

    def close(self) -> Deferred[None]:
        """Finish the work already handed in, then release connections (idempotent)."""


#: the interface of each store attribute of ILedger
STORE_INTERFACES: dict[str, type] = {
    "invoices": IInvoiceStore, "payments": IPaymentStore, "subscriptions": ISubscriptionStore,
    "quarantine": IQuarantineStore, "audit": IAuditStore, "cursors": ICursorStore, "api_keys": IApiKeyStore,
    "webhooks": IWebhookStore, "access": IAccessStore, "overlay": IOverlayStore,
    "trials": ITrialStore, "promo": IPromoStore, "codes": ICodeStore,
}


def _methods(interface: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in vars(interface).items()
            if inspect.isfunction(member) and not name.startswith("_")}


def _parameters(signature: inspect.Signature) -> list[tuple[str, bool]]:
    return [(p.name, p.default is inspect.Parameter.empty) for p in signature.parameters.values()
            if p.name != "self"]


def missing_members(ledger: object) -> list[str]:
    """What ``ledger`` lacks to be an ILedger: absent stores and methods, and methods whose
    parameters (names, and which are required) differ from the interface.  Empty when it
    conforms."""
    problems = []
    for name, interface in [("", ILedger)] + list(STORE_INTERFACES.items()):
        target = getattr(ledger, name, None) if name else ledger
        if target is None:
            problems.append(f"{name}: missing")
            continue
        for method, expected in _methods(interface).items():
            where = f"{name}.{method}" if name else method
            found = getattr(target, method, None)
            if not callable(found):
                problems.append(f"{where}: missing")
            elif _parameters(inspect.signature(found)) != _parameters(expected):
                problems.append(f"{where}: parameters differ from the interface")
    return problems

