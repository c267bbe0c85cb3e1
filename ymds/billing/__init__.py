"""The billing role: the only part of ymds that touches the ledger.

- ``ledger``: the ledger's value objects and errors; ``interfaces``: ILedger and one
  interface per store; ``open``: ``open_ledger(url, reactor)``.
- ``stores/``: one store per domain (invoices, payments, subscriptions, quarantine, audit,
  cursors, api_keys, webhooks), composed by ``sqlledger.SQLLedger`` over one
  ``database.Database`` (transactions, group commit); ``sql``: the SQL both engines share;
  ``sqlite`` / ``postgres``: the engines; ``schema/`` holds the versioned migrations.
- ``tasks``: the handlers of the ``billing`` queue and the bot jobs they cause.
- ``timers``: invoice expiry, reminders, subscription expiry, pruning, reconciliation.
- ``reverify``: re-checks quarantined notifications (``ymds reverify``).
- ``service``: ``make_billing_service`` puts the worker and the timers together.
"""
