"""Invoice labels and signed payment links.

A label is what YooMoney carries from the quickpay form back to us in the notification:
short URL-safe ASCII that we generate.  A pay-link token is ``<label>.<expires>.<mac>``
where ``mac`` is base64url(HMAC-SHA256(secret, "<label>.<expires>")); nothing in it can
change without the page refusing it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

LABEL_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_TOKEN_RE = re.compile(r"^([A-Za-z0-9_-]{8,64})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})$")


def new_label(prefix: str = "") -> str:
    """A fresh invoice label: 20 random URL-safe characters (120 bits)."""
    return prefix + secrets.token_urlsafe(15)


def is_our_label(label: str) -> bool:
    """Only labels in our own format can match an invoice."""
    return bool(LABEL_RE.fullmatch(label or ""))


class LinkError(Exception):
    """A pay-link token was refused."""


class BadLink(LinkError):
    """The token was changed or is not ours (HTTP 403)."""


class ExpiredLink(LinkError):
    """The token was ours but its time ran out (HTTP 410)."""

    def __init__(self, label: str, expires: int):
        super().__init__(f"link for {label} expired at {expires}")
        self.label = label
        self.expires = expires


def _mac(secret: bytes, message: str) -> str:
    digest = hmac.new(secret, message.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign_token(secret: bytes, label: str, expires: int) -> str:
    if not is_our_label(label):
        raise ValueError(f"not a label: {label!r}")
    body = f"{label}.{int(expires)}"
    return f"{body}.{_mac(secret, body)}"


def verify_token(secret: bytes, token: str, now: float) -> str:
    """Return the label of a valid token, or raise BadLink / ExpiredLink."""
    match = _TOKEN_RE.fullmatch(token or "")
    if not match:
        raise BadLink("malformed token")
    label, expires, mac = match.groups()
    if not hmac.compare_digest(_mac(secret, f"{label}.{expires}"), mac):
        raise BadLink("signature mismatch")
    if now > int(expires):
        raise ExpiredLink(label, int(expires))
    return label


def pay_url(public_url: str, secret: bytes, label: str, expires: int) -> str:
    return f"{public_url.rstrip('/')}/pay/{sign_token(secret, label, expires)}"
