"""The PostgreSQL ledger: adbapi over psycopg 3 with a small pool.

Several billing processes may share the database: apply_payment locks the invoice row
(SELECT ... FOR UPDATE) and inserts the payment with ON CONFLICT (operation_id) DO NOTHING,
so the second of two concurrent deliveries waits for the first and then sees a duplicate.
"""

from __future__ import annotations

from twisted.enterprise import adbapi

from ymds.billing.ledger import LedgerError
from ymds.billing.sqlledger import PostgresDialect, SQLLedger


class PostgresLedger(SQLLedger):
    def __init__(self, url: str, reactor, pool_size: int = 3, connect_timeout: int = 10, **options):
        try:
            import psycopg  # noqa: F401  (the DB-API module adbapi loads by name)
        except ImportError:
            raise LedgerError("ledger.url is PostgreSQL but psycopg is not installed: pip install 'ymds[postgres]'") from None
        self.url = url
        pool = adbapi.ConnectionPool(
            "psycopg", url, connect_timeout=connect_timeout,
            cp_min=1, cp_max=max(1, pool_size), cp_reconnect=True, cp_reactor=reactor, cp_noisy=False)
        pool.start()
        super().__init__(pool, PostgresDialect(), reactor, **options)

    @classmethod
    def from_url(cls, url: str, reactor, **options) -> "PostgresLedger":
        return cls(url, reactor, **options)

    def __repr__(self):
        # the URL may carry a password: show only the database name
        return f"<PostgresLedger {self.url.rsplit('/', 1)[-1].split('?')[0]}>"


__all__ = ["PostgresLedger"]
