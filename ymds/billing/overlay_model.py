"""The ledger's records for creators (issue 17) and the overlay store's interface.

Kept apart from ymds.billing.ledger so the feature is one set of modules: this one
(records + :class:`IOverlayStore`), ymds.billing.stores.overlay (SQL),
ymds.billing.overlay (billing's publisher and handlers) and ymds.billing.overlay_jobs (the wire).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

from twisted.internet.defer import Deferred


@dataclass(frozen=True)
class OverlayDonation:
    """A paid donation as the overlay needs it; ``name``/``message`` are None unless the
    donor chose to be shown (``public``).  ``amount`` is the payment's withdraw_amount."""

    operation_id: str
    amount: Decimal
    name: str | None
    message: str | None
    public: bool
    paid_at: float
    status: str


@dataclass(frozen=True)
class PublicDonationRow:
    """A paid donation of a donor who chose to be shown."""

    name: str
    amount: Decimal
    message: str | None
    paid_at: float


@dataclass(frozen=True)
class SupporterRow:
    """A public donor's (by name) total since some moment."""

    name: str
    total: Decimal


@runtime_checkable
class IOverlayStore(Protocol):
    """The overlay token, public donors, the overlay outbox and the donation aggregates.

    Paid means a payment status in GRANTING (paid, overpaid, late) matched to a donation
    invoice; amounts are withdraw_amount.  Names and messages only ever come from
    donations marked public."""

    def overlay_token(self) -> Deferred[str | None]:
        """The current overlay token, None before the first ``ymds overlay-url``."""

    def set_overlay_token(self, token: str, now: float) -> Deferred[bool]:
        """Store ``token`` as the only valid one (the old one stops working); fires True
        when a token was replaced."""

    def mark_public(self, label: str, name: str, now: float) -> Deferred[bool]:
        """The donor of donation invoice ``label`` chose to be shown as ``name``; False
        (nothing stored) for an unknown or non-donation invoice or an empty name."""

    def is_public(self, label: str) -> Deferred[bool]:
        """Whether donation ``label`` was marked public."""

    def outbox_add(self, operation_id: str, now: float) -> Deferred[bool]:
        """Queue the paid donation ``operation_id`` for the overlay; True when new (a
        second call for the same operation adds nothing)."""

    def outbox_pending(self, before: float, limit: int = 100) -> Deferred[list[str]]:
        """Operation ids queued at or before ``before`` and not yet sent, oldest first."""

    def outbox_sent(self, operation_id: str, entry_id: str | None, now: float) -> Deferred[bool]:
        """Mark an outbox row sent (``entry_id``: the stream entry, None when moderated
        away); True when it was pending."""

    def outbox_entry(self, operation_id: str) -> Deferred[str | None]:
        """The overlay stream entry id the donation ``operation_id`` was shown as (None when
        not sent yet, moderated away, or not a donation)."""

    def donation(self, operation_id: str) -> Deferred[OverlayDonation | None]:
        """The donation paid by ``operation_id`` (None when it is not a donation's payment)."""

    def raised(self, since: float) -> Deferred[Decimal]:
        """The sum paid for donations from ``since`` on."""

    def latest_public(self, limit: int = 10) -> Deferred[list[PublicDonationRow]]:
        """The newest paid public donations, newest first."""

    def top_supporters(self, since: float, limit: int = 5) -> Deferred[list[SupporterRow]]:
        """Public donors by total paid from ``since`` on, largest first."""
