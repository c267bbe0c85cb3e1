"""The SQL ledger: the stores of ``ymds.billing.stores`` composed over one Database.

The engines (``sqlite.py``, ``postgres.py``) build the pool and dialect and may swap a
store class (PostgreSQL applies payments with its own store).
"""

from __future__ import annotations

from twisted.internet.defer import Deferred

from ymds.billing.database import Database
from ymds.billing.stores.codes import CodeStore
from ymds.billing.stores.promo import PromoStore
from ymds.billing.stores.trials import TrialStore
from ymds.billing.stores.reports import ReportStore
from ymds.billing.stores.broadcasts import BroadcastStore
from ymds.billing.stores.subscribers import SubscriberStore
from ymds.billing.stores import (
    AccessStore, ApiKeyStore, AuditStore, CursorStore, InvoiceStore, PaymentStore, QuarantineStore, SubscriptionStore,
    WebhookStore,
)
from ymds.billing.stores.signatures import SignatureStore
from ymds.billing.stores.overlay import OverlayStore


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
        self.trials = TrialStore(db)  # issue 19: selling tools
        self.promo = PromoStore(db)
        self.codes = CodeStore(db)
        self.subscribers = SubscriberStore(db)
        self.broadcasts = BroadcastStore(db)
        self.reports = ReportStore(db)  # the dashboard's figures (kept by the payment stores)
        self.signatures = SignatureStore(db)  # issue 14: the sign-seen flag per wallet
        self.access = AccessStore(db)
        self.overlay = OverlayStore(db)  # issue 17: creators

    def migrate(self) -> Deferred[int]:
        """Create or upgrade the schema; fails with SchemaTooNew on a newer database."""
        return self.db.migrate()

    def schema_version(self) -> Deferred[int]:
        """Fires with the schema version in force."""
        return self.db.schema_version()

    def close(self) -> Deferred[None]:
        """Finish the payments already handed in, then release connections (idempotent)."""
        return self.db.close()



__all__ = ["SQLLedger"]
