"""Which signature proved each payment, and whether a wallet was ever seen sending ``sign``.

Once a ``sign``-bearing notification has been applied for a wallet, YooMoney is known to
send ``sign`` to it; a later notification verified by ``sha1_hash`` alone had ``sign``
stripped on the way (a downgrade, ymds.yoomoney.signature.is_downgrade).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from ymds.billing.database import Database

SCHEMES = ("sign", "sha1", "unsigned")


class SignatureStore:
    """The per-wallet sign-seen flag and the per-payment scheme (schema 007)."""

    def __init__(self, db: Database):
        self._db = db

    def sign_seen(self, wallet: str) -> Deferred[bool]:
        """True once :meth:`record` stored a ``sign`` payment for ``wallet`` (it never goes back)."""
        def q(txn: Any) -> bool:
            return self._db.one(txn, "SELECT 1 FROM wallet_signatures WHERE wallet = ?", (wallet,)) is not None
        return self._db.run(q, write=False)

    def record(self, wallet: str, operation_id: str, scheme: str, now: float) -> Deferred[None]:
        """Record the scheme that proved ``operation_id`` (a later ``sign`` replaces a weaker
        one: the strongest proof is kept); a ``sign`` one also sets the wallet's flag.
        Idempotent (a redelivered job changes nothing)."""
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}")

        def q(txn: Any) -> None:
            self._db.execute(txn, "INSERT INTO payment_signatures (operation_id, scheme, recorded_at) VALUES (?, ?, ?) "
                                  "ON CONFLICT (operation_id) DO UPDATE SET scheme = excluded.scheme "
                                  "WHERE excluded.scheme = 'sign'", (operation_id, scheme, now))
            if scheme == "sign":
                self._db.execute(txn, "INSERT INTO wallet_signatures (wallet, sign_seen_at) VALUES (?, ?) "
                                      "ON CONFLICT (wallet) DO NOTHING", (wallet, now))
        return self._db.run(q)

    def scheme_of(self, operation_id: str) -> Deferred[str | None]:
        """The scheme recorded for a payment, None when none was."""
        def q(txn: Any) -> str | None:
            row = self._db.one(txn, "SELECT scheme FROM payment_signatures WHERE operation_id = ?", (operation_id,))
            return str(row[0]) if row else None
        return self._db.run(q, write=False)


__all__ = ["SignatureStore", "SCHEMES"]
