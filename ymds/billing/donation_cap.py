"""The overall cap on open donation invoices from the public form (issue 14).

Per-address limits (ymds.web.donation_limits) slow one visitor; this bounds them all: at
most ``donations.max_open`` donation invoices made by the public form may be open
(unpaid, unexpired) at once.  The count and the insert share one transaction, and on
PostgreSQL a transaction-scoped advisory lock serialises them (SQLite's writers are
serialised by BEGIN IMMEDIATE already), so concurrent forms cannot overshoot the cap.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from twisted.internet.defer import Deferred

from ymds.billing.ledger import Invoice
from ymds.links import new_label
from ymds.queue.errors import PermanentJobError, remote_error

PUBLIC_FORM = "donation"  # the description billing gives public-form donations
_LOCK_KEY = 0x796D6473  # "ymds": pg_advisory_xact_lock key of this cap


@remote_error
class TooManyOpenDonations(PermanentJobError):
    """The cap is reached: the form answers 503 until some invoices are paid or expire
    (an RPC error reply: the caller decides, nothing is retried or dead-lettered)."""


def create_capped_donation(ledger: Any, amount: Decimal, now: float, ttl: float, metadata: dict[str, Any],
                           max_open: int) -> Deferred[Invoice]:
    """Insert a public-form donation invoice unless ``max_open`` are open already
    (fails with :class:`TooManyOpenDonations`)."""
    db = ledger.db
    amount = amount.quantize(Decimal("0.01"))

    def q(txn: Any) -> Invoice:
        if db.dialect.name == "postgresql":
            db.execute(txn, "SELECT pg_advisory_xact_lock(?)", (_LOCK_KEY,))
        row = db.one(txn, "SELECT count(*) FROM invoices WHERE kind = 'donation' AND description = ? "
                          "AND status = 'open' AND expires_at > ?", (PUBLIC_FORM, now))
        if int(row[0]) >= max_open:
            raise TooManyOpenDonations(f"{max_open} donation invoices are open")
        invoice: Invoice = ledger.invoices.insert(txn, "donation", amount, now, ttl, None, None, None, None,
                                                  PUBLIC_FORM, metadata, new_label(), False)
        return invoice
    return db.run(q)


__all__ = ["create_capped_donation", "TooManyOpenDonations", "PUBLIC_FORM"]
