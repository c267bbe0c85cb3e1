"""The ledger's stores: one per domain, each a small class over the shared
:class:`ymds.billing.database.Database` with its interface in ``ymds.billing.interfaces``.

The billing role holds an :class:`ymds.billing.sqlledger.SQLLedger` and reaches a store
through its attribute: ``ledger.invoices``, ``ledger.payments``, ``ledger.subscriptions``,
``ledger.quarantine``, ``ledger.api_keys``, ``ledger.webhooks``, ``ledger.audit``,
``ledger.cursors``.  A store method runs one transaction through ``Database.run`` (or
``Database.batched`` for group commit) and writes its audit events with
``Database.add_event``; it never opens a transaction of its own.

Adding a store (e.g. promo codes):

1. a schema migration: ``ymds/billing/schema/NNN_<name>.sqlite.sql`` and
   ``NNN_<name>.postgresql.sql`` with the next number (``known_migrations`` refuses gaps);
2. column lists and row converters the engines share go in ``ymds/billing/sql.py``;
3. ``ymds/billing/stores/<name>.py`` with ``class <Name>Store`` taking the Database;
4. its Protocol ``I<Name>Store`` in ``ymds/billing/interfaces.py``, with a docstring per
   method saying what it guarantees, an attribute for it on ``ILedger`` and an entry in
   ``STORE_INTERFACES`` (which open_ledger's check and the metrics wrapper read);
5. construct it in ``SQLLedger.__init__`` (``ymds/billing/sqlledger.py``);
6. run it over both engines in the contract suite (``tests/test_ledger.py`` or a contract
   mixin of its own like ``tests/test_webhook_ledger.py``).
"""

from ymds.billing.stores.access import AccessStore
from ymds.billing.stores.apikeys import ApiKeyStore
from ymds.billing.stores.audit import AuditStore
from ymds.billing.stores.cursors import CursorStore
from ymds.billing.stores.invoices import InvoiceStore
from ymds.billing.stores.payments import PaymentStore
from ymds.billing.stores.quarantine import QuarantineStore
from ymds.billing.stores.subscriptions import SubscriptionStore
from ymds.billing.stores.webhooks import WebhookStore

__all__ = [
    "AccessStore", "ApiKeyStore", "AuditStore", "CursorStore", "InvoiceStore", "PaymentStore", "QuarantineStore",
    "SubscriptionStore", "WebhookStore",
]
