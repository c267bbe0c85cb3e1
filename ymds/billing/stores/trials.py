"""Trials (issue 19): once per Telegram user per plan, enforced by the ``trials`` primary key.

A free trial extends the chat's subscription in the same transaction that claims the row,
through :func:`extend_subscription_in` — the same upsert a paid invoice's grant makes, so
access checks, reminders and expiry treat a trial like a paid period.  A paid trial
(``trial_price``) claims the row together with its invoice; the row is given back if the
invoice expires unpaid (:meth:`TrialStore.release_expired`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from twisted.internet.defer import Deferred

from ymds.billing.database import Database
from ymds.billing.ledger import GRANTING, Invoice, LedgerError, Subscription
from ymds.billing.stores.invoices import InvoiceStore
from ymds.billing.sql import DAY, INVOICE_COLS, SUBSCRIPTION_COLS, invoice_from_row, subscription_from_row
from ymds.links import new_label


class SellingRefused(LedgerError):
    """A selling tool refused the request; ``reason`` is a short machine word the bot and the
    API turn into one sentence (unknown, expired, used_up, not_for_plan, already, ...)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(detail or reason)
        self.reason = reason


def extend_subscription_in(db: Database, txn: Any, chat_id: int, plan: str | None, days: int, now: float,
                           label: str | None, cause: str, **data: Any) -> Subscription:
    """Extend (or start) the chat's subscription by ``days`` inside ``txn``: the same upsert
    a paid invoice makes (reminders reset, expired cleared).  ``plan`` None keeps the chat's
    plan.  Writes a ``subscription_extended`` event naming ``cause``."""
    g = db.dialect.greatest
    seconds = float(days * DAY)
    row = db.one(
        txn,
        f"INSERT INTO subscriptions ({SUBSCRIPTION_COLS}) VALUES (?, ?, ?, ?, NULL, 0) "
        f"ON CONFLICT (chat_id) DO UPDATE SET ends_at = {g}(subscriptions.ends_at, ?) + ?, "
        "plan = COALESCE(excluded.plan, subscriptions.plan), updated_at = excluded.updated_at, "
        f"reminded_window = NULL, expired = 0 RETURNING {SUBSCRIPTION_COLS}",
        (chat_id, plan, now + seconds, now, now, seconds))
    subscription = subscription_from_row(row)
    db.add_event(txn, now, "subscription_extended", label=label, chat_id=chat_id, plan=subscription.plan,
                 days=days, ends_at=subscription.ends_at, cause=cause, **data)
    return subscription


def had_plan_in(db: Database, txn: Any, chat_id: int, plan: str) -> bool:
    """Whether the chat ever had this plan: its subscription row names it, or an invoice of
    it was paid."""
    if db.one(txn, "SELECT 1 FROM subscriptions WHERE chat_id = ? AND plan = ?", (chat_id, plan)) is not None:
        return True
    marks = ", ".join("?" * len(GRANTING))
    return db.one(txn, f"SELECT 1 FROM invoices WHERE chat_id = ? AND plan = ? AND kind = 'subscription' "
                       f"AND status IN ({marks}) LIMIT 1", (chat_id, plan, *GRANTING)) is not None


class TrialStore:
    """Trials over SQL: free trials granted at once, paid trials reserved with their invoice."""

    def __init__(self, db: Database):
        self._db = db

    def eligible(self, user_id: int, chat_id: int, plan: str) -> Deferred[bool]:
        """Whether the user never had a trial of ``plan`` and the chat never had the plan."""
        def q(txn: Any) -> bool:
            return self._eligible_in(txn, user_id, chat_id, plan)
        return self._db.run(q, write=False)

    def _eligible_in(self, txn: Any, user_id: int, chat_id: int, plan: str) -> bool:
        taken = self._db.one(txn, "SELECT 1 FROM trials WHERE user_id = ? AND plan = ?", (user_id, plan))
        return taken is None and not had_plan_in(self._db, txn, chat_id, plan)

    def start_free(self, user_id: int, chat_id: int, plan: str, days: int, now: float) -> Deferred[Subscription]:
        """Claim the user's trial of ``plan`` and extend the chat's subscription by ``days``, in
        one transaction.  SellingRefused("already") when the user had a trial or the plan
        (also when two processes race: the primary key lets one insert win)."""
        def q(txn: Any) -> Subscription:
            db = self._db
            if had_plan_in(db, txn, chat_id, plan):
                raise SellingRefused("already", "this chat already had the plan")
            claimed = db.one(txn, "INSERT INTO trials (user_id, plan, chat_id, status, invoice_label, days, created_at) "
                                  "VALUES (?, ?, ?, 'granted', NULL, ?, ?) ON CONFLICT (user_id, plan) DO NOTHING "
                                  "RETURNING user_id", (user_id, plan, chat_id, days, now))
            if claimed is None:
                raise SellingRefused("already", "this user already had a trial of the plan")
            db.add_event(txn, now, "trial_started", chat_id=chat_id, plan=plan, days=days)
            return extend_subscription_in(db, txn, chat_id, plan, days, now, None, "trial")
        return self._db.run(q)

    def paid_trial_invoice(self, user_id: int, chat_id: int, plan: str, days: int, price: Decimal, now: float,
                           ttl: float, title: str = "") -> Deferred[Invoice | None]:
        """The open invoice of the user's paid trial of ``plan`` (made now, reserving the
        trial, or the one still open); None when the user is not eligible."""
        def q(txn: Any) -> Invoice | None:
            db = self._db
            row = db.one(txn, "SELECT status, invoice_label FROM trials WHERE user_id = ? AND plan = ?", (user_id, plan))
            if row is not None:
                if row[0] != "reserved" or not row[1]:
                    return None
                inv = db.one(txn, f"SELECT {INVOICE_COLS} FROM invoices WHERE label = ? AND status = 'open' "
                                  "AND expires_at > ?", (row[1], now + ttl / 2))
                return None if inv is None else invoice_from_row(db.dialect, inv)
            if had_plan_in(db, txn, chat_id, plan):
                return None
            label = new_label()
            claimed = db.one(txn, "INSERT INTO trials (user_id, plan, chat_id, status, invoice_label, days, created_at) "
                                  "VALUES (?, ?, ?, 'reserved', ?, ?, ?) ON CONFLICT (user_id, plan) DO NOTHING "
                                  "RETURNING user_id", (user_id, plan, chat_id, label, days, now))
            if claimed is None:
                return None
            return InvoiceStore(db).insert(txn, "subscription", price, now, ttl, plan, days, chat_id, user_id,
                                           title, {"trial": True}, label, False)
        return self._db.run(q)

    def release_expired(self, now: float) -> Deferred[int]:
        """Give back the paid trials whose invoice expired unpaid; fires with how many.  A
        sweep over the expired invoices, so a crash between expiry and release loses nothing."""
        def q(txn: Any) -> int:
            rows = self._db.all(txn, "DELETE FROM trials WHERE status = 'reserved' AND invoice_label IN "
                                     "(SELECT label FROM invoices WHERE status = 'expired') RETURNING chat_id, plan")
            for chat_id, plan in rows:
                self._db.add_event(txn, now, "trial_released", chat_id=chat_id, plan=plan)
            return len(rows)
        return self._db.run(q)


__all__ = ["SellingRefused", "TrialStore", "extend_subscription_in", "had_plan_in"]
