"""Integration API keys (stored by hash) and Idempotency-Keys for invoice creation."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterable, Mapping

from twisted.internet.defer import Deferred, fail

from ymds.billing.database import Database
from ymds.billing.ledger import ApiKey, IdempotencyConflict, Invoice, LedgerError
from ymds.billing.sql import API_KEY_COLS, CENT, INVOICE_COLS, api_key_from_row, invoice_from_row
from ymds.billing.stores.invoices import InvoiceStore, check_invoice_args
from ymds.links import new_label


class ApiKeyStore:
    """IApiKeyStore over SQL; invoices are created through the ledger's InvoiceStore."""

    def __init__(self, db: Database, invoices: InvoiceStore):
        self._db = db
        self._invoices = invoices

    def api_key_create(self, key_id: str, key_hash: str, name: str, scopes: Iterable[str],
                       now: float) -> Deferred[ApiKey]:
        scope_list = tuple(scopes)

        def q(txn: Any) -> ApiKey:
            self._db.execute(txn, "INSERT INTO api_keys (id, key_hash, name, scopes, created_at) VALUES (?, ?, ?, ?, ?)",
                             (key_id, key_hash, name, " ".join(scope_list), now))
            self._db.add_event(txn, now, "api_key_created", key_id=key_id, scopes=list(scope_list))
            return ApiKey(key_id, name, scope_list, now)
        return self._db.run(q)

    def api_key_lookup(self, key_hash: str) -> Deferred[ApiKey | None]:
        def q(txn: Any) -> ApiKey | None:
            row = self._db.one(txn, f"SELECT {API_KEY_COLS} FROM api_keys WHERE key_hash = ?", (key_hash,))
            return None if row is None else api_key_from_row(row)
        return self._db.run(q, write=False)

    def api_key_list(self) -> Deferred[list[ApiKey]]:
        def q(txn: Any) -> list[ApiKey]:
            rows = self._db.all(txn, f"SELECT {API_KEY_COLS} FROM api_keys ORDER BY created_at, id")
            return [api_key_from_row(r) for r in rows]
        return self._db.run(q, write=False)

    def api_key_revoke(self, key_id: str, now: float) -> Deferred[bool]:
        def q(txn: Any) -> bool:
            cur = self._db.execute(txn, "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                                   (now, key_id))
            if cur.rowcount == 1:
                self._db.add_event(txn, now, "api_key_revoked", key_id=key_id)
                return True
            return False
        return self._db.run(q)

    def create_invoice_once(self, key_id: str, idempotency_key: str, request_hash: str, now: float, kind: str,
                            amount: Decimal, ttl: float, plan: str | None = None, days: int | None = None,
                            chat_id: int | None = None, user_id: int | None = None, description: str = "",
                            metadata: Mapping[str, Any] | None = None) -> Deferred[tuple[Invoice, bool]]:
        problem = check_invoice_args(kind, amount, plan, days, chat_id)
        if problem:
            return fail(LedgerError(problem))
        amount = amount.quantize(CENT)
        label = new_label()
        db = self._db

        def q(txn: Any) -> tuple[Invoice, bool]:
            # The write lock (SQLite) or the primary key (PostgreSQL, ON CONFLICT) makes
            # the second of two concurrent requests with one key see the first one's row.
            select = "SELECT request_hash, invoice_label FROM idempotency_keys WHERE key_id = ? AND idem_key = ?"
            row = db.one(txn, select, (key_id, idempotency_key))
            if row is None:
                claimed = db.one(txn, "INSERT INTO idempotency_keys (key_id, idem_key, request_hash, invoice_label, "
                                      "created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key_id, idem_key) DO NOTHING "
                                      "RETURNING invoice_label", (key_id, idempotency_key, request_hash, label, now))
                if claimed is not None:
                    invoice = self._invoices.insert(txn, kind, amount, now, ttl, plan, days, chat_id, user_id,
                                                    description or "", dict(metadata or {}), label, False)
                    return invoice, False
                row = db.one(txn, select, (key_id, idempotency_key))
            if row[0] != request_hash:
                raise IdempotencyConflict("this Idempotency-Key was used with a different request")
            found = db.one(txn, f"SELECT {INVOICE_COLS} FROM invoices WHERE label = ?", (row[1],))
            if found is None:
                raise IdempotencyConflict("the invoice first created with this Idempotency-Key no longer exists")
            return invoice_from_row(db.dialect, found), True
        return db.run(q)

    def prune_idempotency(self, older_than: float) -> Deferred[int]:
        def q(txn: Any) -> int:
            cur = self._db.execute(txn, "DELETE FROM idempotency_keys WHERE created_at < ?", (older_than,))
            return max(cur.rowcount, 0)
        return self._db.run(q)
