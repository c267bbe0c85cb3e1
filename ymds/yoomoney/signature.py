"""Notification signatures: legacy ``sha1_hash`` and ``sign`` (HMAC-SHA256), constant-time.

``sha1_hash`` is YooMoney's documented scheme; it does not cover withdraw_amount, unaccepted
or test_notification.  ``sign`` is a best reading of what public integrations verify since
YooMoney announced the end of sha1_hash (see /work/shared/yoomoney-vectors.json); it lives
in :func:`sign_hmac` alone so that it can be corrected in one place.

Policies (config ``yoomoney.signature``):
- ``sign``: only ``sign`` counts.
- ``sha1``: only ``sha1_hash`` counts.
- ``auto``: ``sign`` when present; if it is absent, or present but does not match while a
  ``sha1_hash`` is also present, ``sha1_hash`` decides.  Falling back costs nothing under
  ``auto`` (anyone able to alter a genuine body could strip ``sign`` anyway) and keeps
  payments flowing should our reading of ``sign`` be wrong while both are still sent.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import quote

from ymds.yoomoney.notification import Notification

SHA1_ORDER = ("notification_type", "operation_id", "amount", "currency", "datetime", "sender", "codepro")
POLICIES = ("auto", "sign", "sha1")
SCHEMES = ("sign", "sha1", "both")


def sha1_string(fields: Mapping[str, str], secret: str) -> str:
    parts = [fields.get(name, "") for name in SHA1_ORDER]
    return "&".join(parts + [secret, fields.get("label", "")])


def sha1_hash(fields: Mapping[str, str], secret: str) -> str:
    """hex SHA-1 of notification_type&operation_id&amount&currency&datetime&sender&codepro&secret&label."""
    return hashlib.sha1(sha1_string(fields, secret).encode("utf-8")).hexdigest()


def sign_string(fields: Mapping[str, str], exclude: tuple[str, ...] = ("sign",)) -> str:
    """Every other field sorted by name, ``k=v`` with v percent-encoded (RFC 3986), joined by '&'."""
    return "&".join(f"{k}={quote(fields[k], safe='-_.~')}" for k in sorted(fields) if k not in exclude)


def sign_hmac(fields: Mapping[str, str], secret: str, exclude: tuple[str, ...] = ("sign",)) -> str:
    """hex HMAC-SHA256(key=secret, msg=sign_string(fields)).  The best reading of ``sign``."""
    return hmac.new(secret.encode("utf-8"), sign_string(fields, exclude).encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    scheme: str | None = None   # "sign" or "sha1" when ok
    reason: str | None = None   # why not, when not ok: no_secret, missing_signature, sign_mismatch, sha1_mismatch, bad_policy

    def __bool__(self) -> bool:
        return self.ok


def _equal(received: str, expected: str) -> bool:
    # compare_digest on str only accepts ASCII; received text may be anything.
    return hmac.compare_digest(received.strip().lower().encode("utf-8"), expected.encode("ascii"))


def _sign_matches(fields: Mapping[str, str], secret: str) -> bool:
    # Literally the formula: every field but ``sign`` itself, ``sha1_hash`` included.  While
    # both are sent we also accept an HMAC that leaves a *genuine* sha1_hash out: either
    # reading authenticates every field that matters (withdraw_amount, unaccepted included),
    # and nobody without the secret can add a sha1_hash that verifies.
    if _equal(fields["sign"], sign_hmac(fields, secret)):
        return True
    if "sha1_hash" in fields and _equal(fields["sha1_hash"], sha1_hash(fields, secret)):
        without = {k: v for k, v in fields.items() if k != "sha1_hash"}
        return _equal(fields["sign"], sign_hmac(without, secret))
    return False


def verify(notification_or_fields: Notification | Mapping[str, str], secret: str, policy: str = "auto") -> VerifyResult:
    """Check the signature of a notification (or its raw fields) under ``policy``."""
    fields = notification_or_fields.fields if isinstance(notification_or_fields, Notification) else notification_or_fields
    if policy not in POLICIES:
        return VerifyResult(False, reason="bad_policy")
    if not secret:
        return VerifyResult(False, reason="no_secret")  # an empty key would be forgeable by anyone
    has_sign = "sign" in fields
    has_sha1 = "sha1_hash" in fields
    if policy in ("auto", "sign") and has_sign:
        # A present ``sign`` decides alone: sha1_hash does not cover withdraw_amount or
        # unaccepted, so falling back to it would let a broken ``sign`` smuggle those in.
        if _sign_matches(fields, secret):
            return VerifyResult(True, scheme="sign")
        return VerifyResult(False, reason="sign_mismatch")
    if policy in ("auto", "sha1") and has_sha1:
        if _equal(fields["sha1_hash"], sha1_hash(fields, secret)):
            return VerifyResult(True, scheme="sha1")
        return VerifyResult(False, reason="sha1_mismatch")
    return VerifyResult(False, reason="missing_signature")


def add_signatures(fields: Mapping[str, str], secret: str, scheme: str = "both") -> dict[str, str]:
    """Return the fields with ``sha1_hash`` and/or ``sign`` added, as YooMoney (or the sandbox) would send them.

    With ``both``, ``sign`` is computed over every field but itself, ``sha1_hash`` included,
    following the formula literally.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"signature scheme must be one of {SCHEMES}, not {scheme!r}")
    signed = {k: v for k, v in fields.items() if k not in ("sign", "sha1_hash")}
    if scheme in ("sha1", "both"):
        signed["sha1_hash"] = sha1_hash(signed, secret)
    if scheme in ("sign", "both"):
        signed["sign"] = sign_hmac(signed, secret)
    return signed


__all__ = ["sha1_hash", "sha1_string", "sign_hmac", "sign_string", "verify", "VerifyResult", "add_signatures", "POLICIES", "SCHEMES"]
