"""Notification signatures: legacy ``sha1_hash`` and ``sign`` (HMAC-SHA256), constant-time.

``sha1_hash`` is YooMoney's documented scheme; it does not cover withdraw_amount, unaccepted
or test_notification.  ``sign`` is a best reading of what public integrations verify since
YooMoney announced the end of sha1_hash (see /work/shared/yoomoney-vectors.json); it lives
in :func:`sign_hmac` alone so that it can be corrected in one place.

Policies (config ``yoomoney.signature``):
- ``sign``: only ``sign`` counts.
- ``sha1``: only ``sha1_hash`` counts.
- ``auto``: ``sign`` when present (and then it decides alone); if it is absent,
  ``sha1_hash`` decides.  Anyone able to alter a genuine body can strip ``sign``, so a
  sha1-verified notification is trusted only for what sha1 covers:
  :func:`authenticate` returns a :class:`VerifiedNotification` saying which scheme
  verified it and hiding the unsigned ``withdraw_amount``/``unaccepted``; and once a
  ``sign``-bearing notification was seen for the wallet, sha1-only ones are downgrades
  (:func:`is_downgrade`).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from decimal import Decimal
from typing import Mapping, Sequence
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


def verify_any(notification_or_fields: Notification | Mapping[str, str], secrets: Sequence[str],
               policy: str = "auto") -> VerifyResult:
    """:func:`verify` under each secret in turn (e.g. the sandbox's own key, then the
    configured one); the first that verifies wins, else the first refusal is returned."""
    first: VerifyResult | None = None
    for secret in secrets:
        result = verify(notification_or_fields, secret, policy)
        if result.ok:
            return result
        if first is None:
            first = result
    return first if first is not None else VerifyResult(False, reason="no_secret")


# Fields sha1_hash covers (label too, after the secret); everything else is unsigned on
# the sha1 path and must not change what is credited or its state.
SHA1_SIGNED_FIELDS = frozenset(SHA1_ORDER + ("label",))


@dataclass(frozen=True)
class VerifiedNotification:
    """A notification whose signature checked, exposing only what that signature covers.

    ``scheme`` says which signature verified it.  Under ``sign`` every field is signed.
    Under ``sha1`` ``withdraw_amount``, ``unaccepted`` and ``test_notification`` are not:
    ``withdraw_amount`` is None (decide from the signed ``amount``, see
    :mod:`ymds.yoomoney.credit`), ``unaccepted`` is None (unknown: confirm acceptance
    through the wallet API's operation details, or hold), and ``held`` is True.
    ``is_test`` stays the claimed value: claiming "test" only makes ymds do less.
    """

    notification: Notification
    scheme: str  # "sign" or "sha1"

    @property
    def fully_signed(self) -> bool:
        return self.scheme == "sign"

    @property
    def signed_fields(self) -> frozenset[str]:
        fields = frozenset(self.notification.fields)
        return fields if self.fully_signed else fields & SHA1_SIGNED_FIELDS

    @property
    def operation_id(self) -> str:
        return self.notification.operation_id

    @property
    def notification_type(self) -> str:
        return self.notification.notification_type

    @property
    def amount(self) -> Decimal:
        """What reached the wallet: signed under both schemes."""
        return self.notification.amount

    @property
    def label(self) -> str:
        return self.notification.label

    @property
    def codepro(self) -> bool:
        return self.notification.codepro

    @property
    def withdraw_amount(self) -> Decimal | None:
        """What the payer paid, or None when no signature covers it (sha1)."""
        return self.notification.withdraw_amount if self.fully_signed else None

    @property
    def unaccepted(self) -> bool | None:
        """Signed acceptance state, or None when unknown (sha1: the field is not signed)."""
        return self.notification.unaccepted if self.fully_signed else None

    @property
    def held(self) -> bool:
        """Not to be treated as usable money yet: codepro, unaccepted, or acceptance unknown."""
        return self.codepro or self.unaccepted is not False

    @property
    def is_test(self) -> bool:
        return self.notification.is_test


class SignatureRefused(ValueError):
    """The signature did not verify; ``reason`` is VerifyResult.reason."""

    def __init__(self, reason: str):
        super().__init__(f"signature refused: {reason}")
        self.reason = reason


def authenticate(notification: Notification, secret: str | Sequence[str], policy: str = "auto") -> VerifiedNotification:
    """Verify (under ``secret`` or any of a sequence of secrets) and return the view of
    ``notification`` its signature allows; raise :class:`SignatureRefused` otherwise."""
    checked = verify_any(notification, (secret,) if isinstance(secret, str) else secret, policy)
    if not checked.ok or checked.scheme is None:
        raise SignatureRefused(checked.reason or "unknown")
    return VerifiedNotification(notification, checked.scheme)


def is_downgrade(scheme: str, sign_seen_for_wallet: bool) -> bool:
    """True when a notification verified by sha1 alone arrives although a ``sign``-bearing
    one was already verified for this wallet: YooMoney sends ``sign``, so a body without
    it had it stripped.  Quarantine it like a forged one."""
    return scheme == "sha1" and sign_seen_for_wallet


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


__all__ = ["sha1_hash", "sha1_string", "sign_hmac", "sign_string", "verify", "verify_any", "VerifyResult", "add_signatures", "POLICIES",
           "SCHEMES", "SHA1_SIGNED_FIELDS", "VerifiedNotification", "SignatureRefused", "authenticate", "is_downgrade"]
