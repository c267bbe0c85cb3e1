"""The billing role: the only part of ymds that touches the ledger.

- ``ledger``: the ILedger interface, its value objects and ``open_ledger(url, reactor)``;
  ``sqlite`` / ``postgres`` implement it over ``sqlledger``; ``schema/`` holds the
  versioned migrations.
- ``tasks``: the handlers of the ``billing`` queue and the bot jobs they cause.
- ``timers``: invoice expiry, reminders, subscription expiry, pruning, reconciliation.
- ``reverify``: re-checks quarantined notifications (``ymds reverify``).
- ``service``: ``make_billing_service`` puts the worker and the timers together.
"""
