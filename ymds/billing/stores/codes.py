"""Gift and access codes (issue 19): codes that grant or extend a subscription once per use.

The owner makes them (``ymds codes add``); a gift code is made once per paid gift invoice
(``access_codes.gift_invoice`` is unique, so a redelivered payment job makes no second
code).  Redeeming locks the code's row, counts its redemptions and extends the chat's
subscription in one transaction; ``code_redemptions``' primary key makes it once per chat.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, fail

from ymds.billing.database import Database
from ymds.billing.ledger import Subscription
from ymds.billing.stores.trials import SellingRefused, extend_subscription_in

#: no 0/O, 1/I/L: codes are read aloud and retyped
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 10
MAX_COUNT = 10_000

_COLS = "code, plan, days, uses, expires_at, created_at, gift_invoice"


@dataclass(frozen=True)
class AccessCode:
    """A gift or access code; ``used`` counts its redemptions."""
    code: str
    plan: str | None
    days: int
    uses: int
    expires_at: float | None
    created_at: float
    gift_invoice: str | None = None
    used: int = 0


def new_code() -> str:
    """A fresh random code (about 50 bits)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normal_access_code(code: str) -> str:
    """The stored form of a typed code; SellingRefused("unknown") for what cannot be one."""
    text = code.strip().upper().replace("-", "") if isinstance(code, str) else ""
    if not 4 <= len(text) <= 32 or not text.isalnum() or not text.isascii():
        raise SellingRefused("unknown", "a code is 4-32 letters and digits")
    return text


def _row(row: Any, used: int = 0) -> AccessCode:
    code, plan, days, uses, expires_at, created_at, gift_invoice = row
    return AccessCode(code, plan, int(days), int(uses), expires_at, created_at, gift_invoice, used)


class CodeStore:
    """Gift and access codes over SQL."""

    def __init__(self, db: Database):
        self._db = db

    def add(self, now: float, days: int, plan: str | None = None, count: int = 1, uses: int = 1,
            expires_at: float | None = None) -> Deferred[list[AccessCode]]:
        """``count`` new codes, each good for ``uses`` redemptions (one per chat) of ``days``
        days of ``plan`` (None: the chat keeps its plan) until ``expires_at``."""
        if not 1 <= count <= MAX_COUNT or uses < 1 or days < 1:
            return fail(SellingRefused("invalid", f"--count must be 1-{MAX_COUNT}, --uses and days at least 1"))

        def q(txn: Any) -> list[AccessCode]:
            made: list[AccessCode] = []
            while len(made) < count:
                code = new_code()
                row = self._db.one(txn, f"INSERT INTO access_codes ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, NULL) "
                                        f"ON CONFLICT (code) DO NOTHING RETURNING {_COLS}",
                                   (code, plan, days, uses, expires_at, now))
                if row is not None:  # a collision (about 2^-50) just draws again
                    made.append(_row(row))
            self._db.add_event(txn, now, "codes_added", plan=plan, days=days, count=count, uses=uses)
            return made
        return self._db.run(q)

    def gift_code(self, invoice_label: str, plan: str, days: int, now: float) -> Deferred[AccessCode]:
        """The single-use code a paid gift invoice bought (made on the first call, the same
        one on every later call)."""
        def q(txn: Any) -> AccessCode:
            db = self._db
            row = db.one(txn, f"SELECT {_COLS} FROM access_codes WHERE gift_invoice = ?", (invoice_label,))
            while row is None:
                row = db.one(txn, f"INSERT INTO access_codes ({_COLS}) VALUES (?, ?, ?, 1, NULL, ?, ?) "
                                  f"ON CONFLICT DO NOTHING RETURNING {_COLS}",
                             (new_code(), plan, days, now, invoice_label))
                if row is not None:
                    db.add_event(txn, now, "gift_code_made", label=invoice_label, plan=plan, days=days)
            return _row(row)
        return self._db.run(q)

    def get(self, code: str) -> Deferred[AccessCode | None]:
        """The code with its redemption count, or None."""
        def q(txn: Any) -> AccessCode | None:
            try:
                text = normal_access_code(code)
            except SellingRefused:
                return None
            row = self._db.one(txn, f"SELECT {_COLS} FROM access_codes WHERE code = ?", (text,))
            if row is None:
                return None
            used = self._db.one(txn, "SELECT COUNT(*) FROM code_redemptions WHERE code = ?", (text,))[0]
            return _row(row, int(used))
        return self._db.run(q, write=False)

    def redeem(self, code: str, chat_id: int, now: float) -> Deferred[tuple[AccessCode, Subscription]]:
        """Grant or extend the chat's subscription by the code's days, once per chat and at
        most ``uses`` times in all.  SellingRefused: unknown, expired, used_up, already."""
        try:
            text = normal_access_code(code)
        except SellingRefused:
            return fail()

        def q(txn: Any) -> tuple[AccessCode, Subscription]:
            db = self._db
            row = db.one(txn, f"SELECT {_COLS} FROM access_codes WHERE code = ?{db.dialect.for_update}", (text,))
            if row is None:
                raise SellingRefused("unknown", "there is no such code")
            used = int(db.one(txn, "SELECT COUNT(*) FROM code_redemptions WHERE code = ?", (text,))[0])
            found = _row(row, used)
            if found.expires_at is not None and now >= found.expires_at:
                raise SellingRefused("expired", "the code has expired")
            if db.one(txn, "SELECT 1 FROM code_redemptions WHERE code = ? AND chat_id = ?", (text, chat_id)):
                raise SellingRefused("already", "this chat redeemed the code already")
            if used >= found.uses:
                raise SellingRefused("used_up", "the code is used up")
            subscription = extend_subscription_in(db, txn, chat_id, found.plan, found.days, now, None, "code",
                                                  gift=found.gift_invoice is not None)
            db.execute(txn, "INSERT INTO code_redemptions (code, chat_id, at, ends_at) VALUES (?, ?, ?, ?)",
                       (text, chat_id, now, subscription.ends_at))
            return _row(row, used + 1), subscription
        return self._db.run(q)


__all__ = ["ALPHABET", "AccessCode", "CodeStore", "new_code", "normal_access_code"]
