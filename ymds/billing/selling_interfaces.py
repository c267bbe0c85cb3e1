"""The selling stores' contract (issue 19): trials, promo codes, gift and access codes.

Composed into ``ILedger`` (``ledger.trials``, ``ledger.promo``, ``ledger.codes``) by
ymds.billing.interfaces.  Refusals fail with ``SellingRefused`` whose ``reason`` is one word.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Iterable, Protocol, runtime_checkable

from twisted.internet.defer import Deferred

from ymds.billing.ledger import Invoice, Subscription
from ymds.billing.stores.codes import AccessCode
from ymds.billing.stores.promo import PromoCode


@runtime_checkable
class ITrialStore(Protocol):
    """Trials: once per Telegram user per plan, granted like a paid period."""

    def eligible(self, user_id: int, chat_id: int, plan: str) -> Deferred[bool]:
        """Whether the user never had a trial of ``plan`` and the chat never had the plan."""

    def start_free(self, user_id: int, chat_id: int, plan: str, days: int, now: float) -> Deferred[Subscription]:
        """Claim the trial and extend the chat's subscription in one transaction;
        SellingRefused("already") the second time, also when two processes race."""

    def paid_trial_invoice(self, user_id: int, chat_id: int, plan: str, days: int, price: Decimal, now: float,
                           ttl: float, title: str = "") -> Deferred[Invoice | None]:
        """The paid trial's open invoice (made now, reserving the trial, or the one still
        open); None when the user is not eligible."""

    def release_expired(self, now: float) -> Deferred[int]:
        """Give back paid trials whose invoice expired unpaid; fires with how many."""


@runtime_checkable
class IPromoStore(Protocol):
    """Promo codes: one use reserved per discounted invoice, released if it expires unpaid."""

    def add(self, code: str, now: float, percent: int | None = None, off: Decimal | None = None,
            plans: Iterable[str] = (), uses: int | None = None, per_user: int | None = None,
            starts_at: float | None = None, ends_at: float | None = None,
            first_only: bool = False) -> Deferred[PromoCode]:
        """Create a code; SellingRefused "exists" or "invalid"."""

    def get(self, code: str) -> Deferred[PromoCode | None]:
        """The code with its use count, or None."""

    def list(self) -> Deferred[list[PromoCode]]:
        """Every code with its use count, oldest first."""

    def disable(self, code: str, now: float) -> Deferred[bool]:
        """Stop a code; True if it was active."""

    def apply(self, chat_id: int, code: str, now: float) -> Deferred[PromoCode]:
        """Remember the code for the chat's next pay links; SellingRefused otherwise."""

    def applied(self, chat_id: int) -> Deferred[str | None]:
        """The code the chat applied, or None."""

    def forget(self, chat_id: int) -> Deferred[bool]:
        """Drop the chat's applied code."""

    def discounted_invoice(self, code: str, chat_id: int, user_id: int | None, plan: str, days: int,
                           full_price: Decimal, now: float, ttl: float, title: str = "") -> Deferred[Invoice]:
        """An invoice at the code's price, reserving one use (uses and per_user hold under
        concurrency); SellingRefused with the reason otherwise."""

    def release_expired(self, now: float) -> Deferred[int]:
        """Give back the uses of discounted invoices that expired unpaid."""

    def codes_for(self, labels: Iterable[str]) -> Deferred[dict[str, str]]:
        """invoice label -> promo code, for the discounted ones."""


@runtime_checkable
class ICodeStore(Protocol):
    """Gift and access codes: each redeemed once per chat, at most ``uses`` times."""

    def add(self, now: float, days: int, plan: str | None = None, count: int = 1, uses: int = 1,
            expires_at: float | None = None) -> Deferred[list[AccessCode]]:
        """``count`` new codes."""

    def gift_code(self, invoice_label: str, plan: str, days: int, now: float) -> Deferred[AccessCode]:
        """The one code a paid gift invoice bought (the same one on every call)."""

    def get(self, code: str) -> Deferred[AccessCode | None]:
        """The code with its redemption count, or None."""

    def redeem(self, code: str, chat_id: int, now: float) -> Deferred[tuple[AccessCode, Subscription]]:
        """Grant or extend the chat's subscription; SellingRefused unknown, expired,
        used_up or already."""


__all__ = ["ICodeStore", "IPromoStore", "ITrialStore"]
