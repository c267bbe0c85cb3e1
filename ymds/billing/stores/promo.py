"""Promo codes (issue 19): the owner's codes, the code a chat applied, and one reserved use
per discounted invoice.

The discount is fixed into the invoice when it is made: :meth:`PromoStore.discounted_invoice`
locks the code's row, counts the uses not released (``promo_uses``), and inserts the use and
the invoice in one transaction — so ``uses`` and ``per_user`` hold with many users and
several billing processes at once.  A use is released when its invoice expires unpaid
(:meth:`PromoStore.release_expired`); a discounted invoice that gets paid keeps its use and
is honoured like any other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable

from twisted.internet.defer import Deferred, fail, succeed

from ymds.billing.database import Database
from ymds.billing.ledger import GRANTING, Invoice
from ymds.billing.sql import CENT, INVOICE_COLS, invoice_from_row
from ymds.billing.stores.invoices import InvoiceStore
from ymds.billing.stores.trials import SellingRefused
from ymds.links import new_label

PROMO_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
#: a discount never takes an invoice below this (YooMoney refuses tiny amounts)
MIN_PRICE = Decimal("1.00")

_COLS = "code, percent, off, plans, uses, per_user, starts_at, ends_at, first_only, created_at, disabled_at"


@dataclass(frozen=True)
class PromoCode:
    """An owner's promo code; ``used`` counts the uses not released (reserved or paid)."""
    code: str
    percent: int | None
    off: Decimal | None
    plans: tuple[str, ...]
    uses: int | None
    per_user: int | None
    starts_at: float | None
    ends_at: float | None
    first_only: bool
    created_at: float
    disabled_at: float | None = None
    used: int = 0

    def price(self, full: Decimal) -> Decimal:
        """``full`` with this code's discount, never below MIN_PRICE (nor above ``full``)."""
        return discounted(full, self.percent, self.off)

    def window_problem(self, now: float) -> str | None:
        """"expired" when the code is disabled or outside its window, else None."""
        if self.disabled_at is not None or (self.starts_at is not None and now < self.starts_at) \
                or (self.ends_at is not None and now >= self.ends_at):
            return "expired"
        return None


def discounted(full: Decimal, percent: int | None, off: Decimal | None) -> Decimal:
    """The discounted price: ``percent`` off or ``off`` rubles off, at least MIN_PRICE."""
    if percent is not None:
        price = (full * (100 - percent) / 100).quantize(CENT, rounding=ROUND_HALF_UP)
    else:
        price = (full - (off or Decimal(0))).quantize(CENT)
    return min(full, max(price, MIN_PRICE))


def promo_of(invoice: Invoice | None) -> str | None:
    """The promo code fixed into ``invoice`` when it was made (None when it was not discounted);
    the payment stores record it in the payment's row."""
    code = (invoice.metadata or {}).get("promo") if invoice is not None else None
    return code if isinstance(code, str) else None


def check_terms(percent: int | None, off: Decimal | None, uses: int | None, per_user: int | None) -> None:
    """Raise SellingRefused("invalid") when a code's terms make no sense."""
    if (percent is None) == (off is None):
        raise SellingRefused("invalid", "give exactly one of --percent and --off")
    if percent is not None and not 1 <= percent <= 100:
        raise SellingRefused("invalid", "--percent must be between 1 and 100")
    if off is not None and (not off.is_finite() or off <= 0):
        raise SellingRefused("invalid", "--off must be a positive amount")
    for name, value in (("uses", uses), ("per_user", per_user)):
        if value is not None and value < 1:
            raise SellingRefused("invalid", f"--{name.replace('_', '-')} must be at least 1")


def normal_code(code: str) -> str:
    """The stored form of a code (upper case); SellingRefused("unknown") for what cannot be one."""
    if not isinstance(code, str) or not PROMO_CODE.fullmatch(code.strip()):
        raise SellingRefused("unknown", "a promo code is 1-32 letters, digits, '-' or '_'")
    return code.strip().upper()


class PromoStore:
    """Promo codes over SQL."""

    def __init__(self, db: Database):
        self._db = db

    def _row(self, row: Any, used: int = 0) -> PromoCode:
        money = self._db.dialect.money_out
        (code, percent, off, plans, uses, per_user, starts_at, ends_at, first_only, created_at, disabled_at) = row
        return PromoCode(code, percent, None if off is None else money(off), tuple(plans.split()), uses, per_user,
                         starts_at, ends_at, bool(first_only), created_at, disabled_at, used)

    def _used_in(self, txn: Any, code: str, chat_id: int | None = None) -> int:
        query = "SELECT COUNT(*) FROM promo_uses WHERE code = ? AND status = 'reserved'"
        params: list[Any] = [code]
        if chat_id is not None:
            query += " AND chat_id = ?"
            params.append(chat_id)
        return int(self._db.one(txn, query, params)[0])

    # --- the owner's codes -------------------------------------------------------------------

    def add(self, code: str, now: float, percent: int | None = None, off: Decimal | None = None,
            plans: Iterable[str] = (), uses: int | None = None, per_user: int | None = None,
            starts_at: float | None = None, ends_at: float | None = None,
            first_only: bool = False) -> Deferred[PromoCode]:
        """Create a code (SellingRefused("exists") if it is taken).  Exactly one of
        ``percent`` (1-100) and ``off`` (a positive Decimal) must be given (else
        SellingRefused("invalid"))."""
        try:
            code = normal_code(code)
            check_terms(percent, off, uses, per_user)
        except SellingRefused:
            return fail()
        plan_text = " ".join(sorted(set(plans)))
        money_off = None if off is None else self._db.dialect.money_in(off.quantize(CENT))

        def q(txn: Any) -> PromoCode:
            row = self._db.one(txn, f"INSERT INTO promo_codes ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) "
                                    f"ON CONFLICT (code) DO NOTHING RETURNING {_COLS}",
                               (code, percent, money_off, plan_text, uses, per_user, starts_at, ends_at,
                                int(first_only), now))
            if row is None:
                raise SellingRefused("exists", f"promo code {code} exists already")
            self._db.add_event(txn, now, "promo_added", code=code)
            return self._row(row)
        return self._db.run(q)

    def get(self, code: str) -> Deferred[PromoCode | None]:
        """The code (any case) with its use count, or None."""
        try:
            code = normal_code(code)
        except SellingRefused:
            return succeed(None)

        def q(txn: Any) -> PromoCode | None:
            row = self._db.one(txn, f"SELECT {_COLS} FROM promo_codes WHERE code = ?", (code,))
            return None if row is None else self._row(row, self._used_in(txn, code))
        return self._db.run(q, write=False)

    def list(self) -> Deferred[list[PromoCode]]:
        """Every code with its use count, oldest first."""
        def q(txn: Any) -> list[PromoCode]:
            counts = dict(self._db.all(txn, "SELECT code, COUNT(*) FROM promo_uses WHERE status = 'reserved' "
                                            "GROUP BY code"))
            rows = self._db.all(txn, f"SELECT {_COLS} FROM promo_codes ORDER BY created_at, code")
            return [self._row(r, int(counts.get(r[0], 0))) for r in rows]
        return self._db.run(q, write=False)

    def disable(self, code: str, now: float) -> Deferred[bool]:
        """Stop a code (pay links already made keep their price); True if it was active."""
        try:
            code = normal_code(code)
        except SellingRefused:
            return fail()

        def q(txn: Any) -> bool:
            done = self._db.execute(txn, "UPDATE promo_codes SET disabled_at = ? WHERE code = ? AND disabled_at IS NULL",
                                    (now, code)).rowcount == 1
            if done:
                self._db.add_event(txn, now, "promo_disabled", code=code)
            return done
        return self._db.run(q)

    # --- a chat's code ------------------------------------------------------------------------

    def apply(self, chat_id: int, code: str, now: float) -> Deferred[PromoCode]:
        """Remember ``code`` for the chat's next pay links.  SellingRefused: "unknown",
        "expired" (disabled or outside its window), "used_up" (no use left now), "first_only"
        or "per_user" (this chat may not use it)."""
        try:
            code = normal_code(code)
        except SellingRefused:
            return fail()

        def q(txn: Any) -> PromoCode:
            db = self._db
            row = db.one(txn, f"SELECT {_COLS} FROM promo_codes WHERE code = ?", (code,))
            if row is None:
                raise SellingRefused("unknown", f"there is no promo code {code}")
            promo = self._row(row, self._used_in(txn, code))
            self._check_use(txn, promo, chat_id, None, now)
            db.execute(txn, "INSERT INTO promo_applied (chat_id, code, applied_at) VALUES (?, ?, ?) "
                            "ON CONFLICT (chat_id) DO UPDATE SET code = excluded.code, applied_at = excluded.applied_at",
                       (chat_id, code, now))
            return promo
        return self._db.run(q)

    def applied(self, chat_id: int) -> Deferred[str | None]:
        """The code the chat applied last, or None."""
        def q(txn: Any) -> str | None:
            row = self._db.one(txn, "SELECT code FROM promo_applied WHERE chat_id = ?", (chat_id,))
            return None if row is None else str(row[0])
        return self._db.run(q, write=False)

    def forget(self, chat_id: int) -> Deferred[bool]:
        """Drop the chat's applied code; True if there was one."""
        def q(txn: Any) -> bool:
            return self._db.execute(txn, "DELETE FROM promo_applied WHERE chat_id = ?", (chat_id,)).rowcount == 1
        return self._db.run(q)

    # --- discounted invoices --------------------------------------------------------------------

    def discounted_invoice(self, code: str, chat_id: int, user_id: int | None, plan: str, days: int,
                           full_price: Decimal, now: float, ttl: float, title: str = "") -> Deferred[Invoice]:
        """An open invoice for ``plan`` at the code's price, reserving one use (or the chat's
        discounted invoice of this plan that is still open for at least half of ``ttl``).
        SellingRefused: unknown, expired, not_for_plan, first_only, used_up, per_user."""
        try:
            code = normal_code(code)
        except SellingRefused:
            return fail()
        return self._db.run(self._discounted_in, code, chat_id, user_id, plan, days, full_price, now, ttl, title)

    def _discounted_in(self, txn: Any, code: str, chat_id: int, user_id: int | None, plan: str, days: int,
                       full_price: Decimal, now: float, ttl: float, title: str) -> Invoice:
        db = self._db
        row = db.one(txn, f"SELECT {_COLS} FROM promo_codes WHERE code = ?{db.dialect.for_update}", (code,))
        if row is None:
            raise SellingRefused("unknown", f"there is no promo code {code}")
        open_row = db.one(
            txn, f"SELECT {', '.join('i.' + c.strip() for c in INVOICE_COLS.split(','))} FROM promo_uses u "
                 "JOIN invoices i ON i.label = u.invoice_label WHERE u.code = ? AND u.chat_id = ? AND u.plan = ? "
                 "AND u.status = 'reserved' AND i.status = 'open' AND i.expires_at > ? "
                 "ORDER BY i.created_at DESC LIMIT 1", (code, chat_id, plan, now + ttl / 2))
        if open_row is not None:
            return invoice_from_row(db.dialect, open_row)
        promo = self._row(row, self._used_in(txn, code))
        self._check_use(txn, promo, chat_id, plan, now)
        price = promo.price(full_price)
        label = new_label()
        money = db.dialect.money_in
        db.execute(txn, "INSERT INTO promo_uses (invoice_label, code, chat_id, plan, full_price, price, status, "
                        "created_at) VALUES (?, ?, ?, ?, ?, ?, 'reserved', ?)",
                   (label, code, chat_id, plan, money(full_price.quantize(CENT)), money(price), now))
        return InvoiceStore(db).insert(txn, "subscription", price, now, ttl, plan, days, chat_id, user_id, title,
                                       {"promo": code, "full_price": str(full_price.quantize(CENT))}, label, False)

    def _check_use(self, txn: Any, promo: PromoCode, chat_id: int, plan: str | None, now: float) -> None:
        """Raise SellingRefused when ``promo`` may not be used now by this chat for ``plan``
        (None: for any plan)."""
        problem = promo.window_problem(now)
        if problem:
            raise SellingRefused(problem, f"promo code {promo.code} is {problem}")
        if plan is not None and promo.plans and plan not in promo.plans:
            raise SellingRefused("not_for_plan", f"promo code {promo.code} is not for plan {plan}")
        if promo.first_only:
            marks = ", ".join("?" * len(GRANTING))
            paid = self._db.one(txn, f"SELECT 1 FROM invoices WHERE chat_id = ? AND kind = 'subscription' "
                                     f"AND status IN ({marks}) LIMIT 1", (chat_id, *GRANTING))
            if paid is not None:
                raise SellingRefused("first_only", f"promo code {promo.code} is for a first purchase only")
        if promo.uses is not None and promo.used >= promo.uses:
            raise SellingRefused("used_up", f"promo code {promo.code} is used up")
        if promo.per_user is not None and self._used_in(txn, promo.code, chat_id) >= promo.per_user:
            raise SellingRefused("per_user", f"this chat has used promo code {promo.code} up")

    def release_expired(self, now: float) -> Deferred[int]:
        """Give back the uses of discounted invoices that expired unpaid; fires with how many.
        A sweep over the expired invoices (kept 30 days before pruning), so a crash between
        expiry and release loses nothing and paid uses are never looked at."""
        def q(txn: Any) -> int:
            rows = self._db.all(txn, "UPDATE promo_uses SET status = 'released', released_at = ? "
                                     "WHERE status = 'reserved' AND invoice_label IN "
                                     "(SELECT label FROM invoices WHERE status = 'expired') "
                                     "RETURNING invoice_label, code, chat_id", (now,))
            for label, code, chat_id in rows:
                self._db.add_event(txn, now, "promo_released", label=label, chat_id=chat_id, code=code)
            return len(rows)
        return self._db.run(q)

    def codes_for(self, labels: Iterable[str]) -> Deferred[dict[str, str]]:
        """invoice label -> promo code, for the labels that were discounted."""
        wanted = sorted({label for label in labels if label})

        def q(txn: Any) -> dict[str, str]:
            found: dict[str, str] = {}
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                marks = ", ".join("?" * len(chunk))
                found.update((str(a), str(b)) for a, b in self._db.all(
                    txn, f"SELECT invoice_label, code FROM promo_uses WHERE invoice_label IN ({marks})", chunk))
            return found
        return self._db.run(q, write=False)


__all__ = ["MIN_PRICE", "PromoCode", "PromoStore", "discounted", "normal_code"]
