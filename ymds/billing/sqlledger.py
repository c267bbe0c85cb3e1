"""The SQL ledger: the stores of ``ymds.billing.stores`` composed over one Database.

The engines (``sqlite.py``, ``postgres.py``) build the pool and dialect and may swap a
store class (PostgreSQL applies payments with its own store).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import implementer

from ymds.billing.database import Database
from ymds.billing.ledger import ILedgerMarker
from ymds.billing.stores import (
    ApiKeyStore, AuditStore, CursorStore, InvoiceStore, PaymentStore, QuarantineStore, SubscriptionStore,
    STORES, WebhookStore,
)


@implementer(ILedgerMarker)
class SQLLedger:
    """ILedger over one :class:`Database`: a store per domain, sharing its transactions.

    ``db`` is public for tools and tests that need raw SQL; the billing role uses the stores.
    """

    payment_store: type[PaymentStore] = PaymentStore

    def __init__(self, db: Database, quarantine_max_rows: int | None = None,
                 quarantine_max_bytes: int | None = None):
        self.db = db
        self.invoices = InvoiceStore(db)
        self.payments = self.payment_store(db)
        self.subscriptions = SubscriptionStore(db)
        self.quarantine = QuarantineStore(db, max_rows=quarantine_max_rows, max_bytes=quarantine_max_bytes)
        self.audit = AuditStore(db)
        self.cursors = CursorStore(db)
        self.api_keys = ApiKeyStore(db, self.invoices)
        self.webhooks = WebhookStore(db)

    def migrate(self) -> Deferred[int]:
        """Create or upgrade the schema; fails with SchemaTooNew on a newer database."""
        return self.db.migrate()

    def schema_version(self) -> Deferred[int]:
        """Fires with the schema version in force."""
        return self.db.schema_version()

    def close(self) -> Deferred[None]:
        """Finish the payments already handed in, then release connections (idempotent)."""
        return self.db.close()

    def __getattr__(self, name: str) -> Any:
        # Transitional, while callers move to the stores: ``ledger.apply_payment`` is
        # ``ledger.payments.apply_payment``.  Removed once no caller uses the flat names.
        if not name.startswith("_") and name not in STORES:
            for store_name in STORES:
                store = self.__dict__.get(store_name)
                if store is not None and hasattr(type(store), name):
                    return getattr(store, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


__all__ = ["SQLLedger"]
