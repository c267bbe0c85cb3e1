"""The sandbox's own notification secret, never the real one.

``sandbox_secret(real)`` derives a key from the configured secret with HMAC-SHA256 under a
fixed label: every process of one installation derives the same key (web verifies what
the sandbox signed), and nothing signed with it verifies under the real secret, so a
notification minted by a sandbox cannot be replayed to a live ymds.

Who uses which (the choice, tested in tests/test_hardening_sandbox_secret.py):
- the sandbox signs with :func:`signing_secret` (the derived key) only;
- the verifiers (NotifyResource, reverify) accept :func:`accepted_secrets`: the derived key
  *only in sandbox mode*, plus the configured secret always, so ``ymds test-notification``
  and the e2e harness (which sign with the configured secret) keep working, while a live
  node (``yoomoney.sandbox = false``) refuses everything a sandbox minted.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

LABEL = b"ymds sandbox notification secret v1"


def sandbox_secret(real_secret: str) -> str:
    """A secret for the sandbox that is not ``real_secret`` and reveals nothing about it
    (random per call when there is no real secret: nothing will verify then anyway)."""
    if not real_secret:
        return secrets.token_urlsafe(32)
    return hmac.new(real_secret.encode("utf-8"), LABEL, hashlib.sha256).hexdigest()


def signing_secret(config: Any) -> str:
    """What the sandbox signs with: its derived key ("" without a configured secret, which
    no verifier accepts)."""
    real: str = config.yoomoney.notification_secret
    return sandbox_secret(real) if real else ""


def verification_secret(config: Any) -> str:
    """The first secret to try: the sandbox's own in sandbox mode, else the configured one."""
    return accepted_secrets(config)[0]


def accepted_secrets(config: Any) -> tuple[str, ...]:
    """Every secret a notification may be signed with on this node, in order: the derived
    key is accepted only while ``yoomoney.sandbox`` is on."""
    real: str = config.yoomoney.notification_secret
    if config.yoomoney.sandbox and real:
        return (sandbox_secret(real), real)
    return (real,)


__all__ = ["sandbox_secret", "signing_secret", "verification_secret", "accepted_secrets", "LABEL"]
