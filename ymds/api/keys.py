"""API keys: ``ymds_`` + 43 URL-safe characters (32 random bytes); only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import re
import secrets

from ymds.billing.ledger import API_SCOPES

KEY_PREFIX = "ymds_"
KEY_FORMAT = re.compile(r"^ymds_[A-Za-z0-9_-]{43}$")


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    return "key_" + secrets.token_hex(6)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def parse_scopes(text: str) -> tuple[str, ...]:
    """``"invoices:write,invoices:read"`` or ``"all"``; raises ValueError naming a bad scope."""
    names = [s.strip() for s in text.replace(" ", ",").split(",") if s.strip()]
    if names == ["all"]:
        return API_SCOPES
    unknown = [n for n in names if n not in API_SCOPES]
    if unknown or not names:
        raise ValueError(f"unknown scope {unknown[0]!r}" if unknown else "no scopes given")
    return tuple(dict.fromkeys(names))
