"""The ``Ymds-Signature`` header: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``.

Receivers check it with :func:`ymds.client.verify_webhook`; the timestamp inside the signed
text lets them refuse replays of an old delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any, Mapping

HEADER = "Ymds-Signature"
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str | bytes, timestamp: int, body: bytes) -> str:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(key, b"%d." % int(timestamp) + body, hashlib.sha256).hexdigest()


def signature_header(secret: str | bytes, timestamp: int, body: bytes) -> str:
    return f"t={int(timestamp)},v1={signature(secret, timestamp, body)}"


def event_body(event_id: str, event_type: str, created: float, data: Mapping[str, Any]) -> bytes:
    """The delivered JSON (compact, keys sorted: the bytes that are signed)."""
    return json.dumps({"id": event_id, "type": event_type, "created": int(created), "data": data},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")
