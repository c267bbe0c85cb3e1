"""Creators (issue 17): the overlay token, donors who chose to be shown, the overlay outbox
and the donation aggregates (goal, latest public donations, top supporters).

A donation is public only when a row in ``donation_public`` says so; every query that
returns a name or a message joins that table, so a private donor's name cannot come out
of this store.  Amounts are the payments' ``withdraw_amount`` (what the donor paid).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from twisted.internet.defer import Deferred

from ymds.billing.database import Database
from ymds.billing.ledger import GRANTING
from ymds.billing.overlay_model import OverlayDonation, PublicDonationRow, SupporterRow

_PAID = "p.status IN (" + ", ".join(f"'{s}'" for s in GRANTING) + ")"
_DONATIONS = "FROM payments p JOIN invoices i ON i.label = p.invoice_label AND i.kind = 'donation'"


def _meta_text(metadata: str | None, key: str) -> str | None:
    try:
        value = json.loads(metadata or "{}").get(key)
    except (ValueError, AttributeError):
        return None
    text = str(value).strip() if value is not None else ""
    return text or None


class OverlayStore:
    """IOverlayStore over SQL."""

    def __init__(self, db: Database):
        self._db = db

    # --- the overlay token --------------------------------------------------------------

    def overlay_token(self) -> Deferred[str | None]:
        def q(txn: Any) -> str | None:
            row = self._db.one(txn, "SELECT token FROM overlay_token WHERE id = 1")
            return None if row is None else str(row[0])
        return self._db.run(q, write=False)

    def set_overlay_token(self, token: str, now: float) -> Deferred[bool]:
        def q(txn: Any) -> bool:
            replaced = self._db.one(txn, "SELECT 1 FROM overlay_token WHERE id = 1") is not None
            self._db.execute(txn, "INSERT INTO overlay_token (id, token, created_at) VALUES (1, ?, ?) "
                                  "ON CONFLICT (id) DO UPDATE SET token = excluded.token, created_at = excluded.created_at",
                             (token, now))
            self._db.add_event(txn, now, "overlay_token_rotated" if replaced else "overlay_token_created")
            return replaced
        return self._db.run(q)

    # --- who is shown -------------------------------------------------------------------

    def mark_public(self, label: str, name: str, now: float) -> Deferred[bool]:
        def q(txn: Any) -> bool:
            row = self._db.one(txn, "SELECT kind FROM invoices WHERE label = ?", (label,))
            if row is None or row[0] != "donation" or not name.strip():
                return False
            self._db.execute(txn, "INSERT INTO donation_public (label, name, created_at) VALUES (?, ?, ?) "
                                  "ON CONFLICT (label) DO NOTHING", (label, name.strip()[:100], now))
            return True
        return self._db.run(q)

    def is_public(self, label: str) -> Deferred[bool]:
        def q(txn: Any) -> bool:
            return self._db.one(txn, "SELECT 1 FROM donation_public WHERE label = ?", (label,)) is not None
        return self._db.run(q, write=False)

    # --- the outbox ---------------------------------------------------------------------

    def outbox_add(self, operation_id: str, now: float) -> Deferred[bool]:
        def q(txn: Any) -> bool:
            row = self._db.one(txn, "INSERT INTO overlay_outbox (operation_id, created_at) VALUES (?, ?) "
                                    "ON CONFLICT (operation_id) DO NOTHING RETURNING operation_id", (operation_id, now))
            return row is not None
        return self._db.run(q)

    def outbox_pending(self, before: float, limit: int = 100) -> Deferred[list[str]]:
        def q(txn: Any) -> list[str]:
            rows = self._db.all(txn, "SELECT operation_id FROM overlay_outbox WHERE sent_at IS NULL AND created_at <= ? "
                                     "ORDER BY created_at, operation_id LIMIT ?", (before, int(limit)))
            return [str(r[0]) for r in rows]
        return self._db.run(q, write=False)

    def outbox_sent(self, operation_id: str, entry_id: str | None, now: float) -> Deferred[bool]:
        def q(txn: Any) -> bool:
            cur = self._db.execute(txn, "UPDATE overlay_outbox SET sent_at = ?, entry_id = ? "
                                        "WHERE operation_id = ? AND sent_at IS NULL", (now, entry_id, operation_id))
            return cur.rowcount == 1
        return self._db.run(q)

    def outbox_entry(self, operation_id: str) -> Deferred[str | None]:
        def q(txn: Any) -> str | None:
            row = self._db.one(txn, "SELECT entry_id FROM overlay_outbox WHERE operation_id = ?", (operation_id,))
            return None if row is None or row[0] is None else str(row[0])
        return self._db.run(q, write=False)

    # --- aggregates ---------------------------------------------------------------------

    def donation(self, operation_id: str) -> Deferred[OverlayDonation | None]:
        def q(txn: Any) -> OverlayDonation | None:
            row = self._db.one(txn, "SELECT p.operation_id, p.withdraw_amount, p.status, p.received_at, i.metadata, d.label "
                                    f"{_DONATIONS} LEFT JOIN donation_public d ON d.label = i.label "
                                    "WHERE p.operation_id = ?", (operation_id,))
            if row is None:
                return None
            op, amount, status, received_at, metadata, public = row
            shown = public is not None
            return OverlayDonation(str(op), Decimal(str(amount)).quantize(Decimal("0.01")),
                                   _meta_text(metadata, "name") if shown else None,
                                   _meta_text(metadata, "message") if shown else None,
                                   shown, float(received_at), str(status))
        return self._db.run(q, write=False)

    def raised(self, since: float) -> Deferred[Decimal]:
        d = self._db.dialect

        def q(txn: Any) -> Decimal:
            row = self._db.one(txn, f"SELECT {d.sum_money('p.withdraw_amount')} {_DONATIONS} "
                                    f"WHERE {_PAID} AND p.received_at >= ?", (since,))
            return d.sum_out(row[0])
        return self._db.run(q, write=False)

    def latest_public(self, limit: int = 10) -> Deferred[list[PublicDonationRow]]:
        def q(txn: Any) -> list[PublicDonationRow]:
            rows = self._db.all(txn, f"SELECT d.name, p.withdraw_amount, i.metadata, p.received_at {_DONATIONS} "
                                     f"JOIN donation_public d ON d.label = i.label WHERE {_PAID} "
                                     "ORDER BY p.received_at DESC, p.seq DESC LIMIT ?", (int(limit),))
            return [PublicDonationRow(str(name), Decimal(str(amount)).quantize(Decimal("0.01")),
                                      _meta_text(metadata, "message"), float(at)) for name, amount, metadata, at in rows]
        return self._db.run(q, write=False)

    def top_supporters(self, since: float, limit: int = 5) -> Deferred[list[SupporterRow]]:
        d = self._db.dialect

        def q(txn: Any) -> list[SupporterRow]:
            total = d.sum_money("p.withdraw_amount")
            rows = self._db.all(txn, f"SELECT d.name, {total} {_DONATIONS} JOIN donation_public d ON d.label = i.label "
                                     f"WHERE {_PAID} AND p.received_at >= ? GROUP BY d.name "
                                     f"ORDER BY {total} DESC, d.name LIMIT ?", (since, int(limit)))
            return [SupporterRow(str(name), d.sum_out(value)) for name, value in rows]
        return self._db.run(q, write=False)
