"""Choosing a ledger implementation by URL (kept apart from the interfaces and the engines,
so that neither imports the other through it)."""

from __future__ import annotations

import importlib
from typing import Any

from ymds.billing.interfaces import ILedger, missing_members
from ymds.billing.ledger import LedgerError


def open_ledger(url: str, reactor: Any, **options: Any) -> ILedger:
    """The ILedger named by ``url`` (not yet migrated: call ``migrate()``).

    ``sqlite:///path`` and ``postgresql://...`` pick the built-in ledgers; anything of the
    form ``package.module:factory`` is imported and called as ``factory(url, reactor)``, and
    what it returns must have every store and method of ILedger.  Fails with LedgerError.
    """
    if url.startswith("sqlite:"):
        from ymds.billing.sqlite import SQLiteLedger
        return SQLiteLedger.from_url(url, reactor, **options)
    if url.startswith(("postgresql:", "postgres:")):
        from ymds.billing.postgres import PostgresLedger
        return PostgresLedger.from_url(url, reactor, **options)
    module_name, sep, attr = url.partition(":")
    if not sep:
        module_name, _, attr = url.rpartition(".")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise LedgerError(f"ledger.url {url!r}: cannot import the ledger factory ({e})") from None
    ledger = factory(url, reactor)
    problems = missing_members(ledger)
    if problems:
        raise LedgerError(f"ledger.url {url!r}: {module_name}.{attr} did not return an ILedger provider "
                          f"({'; '.join(problems[:3])})")
    return ledger


__all__ = ["open_ledger"]
