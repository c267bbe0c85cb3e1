"""The sandbox's own notification secret, never the real one.

``sandbox_secret(real)`` derives a key from the configured secret with HMAC-SHA256 under a
fixed label: every process of one installation derives the same key (web verifies what
the sandbox signed), and nothing signed with it verifies under the real secret, so a
notification minted by a sandbox cannot be replayed to a live ymds.  Without a configured
secret a random one is made per start (one-process set-ups only, e.g. tests).

Phase 2 (the lead) wires it: in sandbox mode the Sandbox signs with it and the verifying
side (NotifyResource, reverify) uses ``verification_secret(config)``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

LABEL = b"ymds sandbox notification secret v1"


def sandbox_secret(real_secret: str) -> str:
    """A secret for the sandbox that is not ``real_secret`` and reveals nothing about it."""
    if not real_secret:
        return secrets.token_urlsafe(32)
    return hmac.new(real_secret.encode("utf-8"), LABEL, hashlib.sha256).hexdigest()


def verification_secret(config) -> str:
    """The secret notifications must be signed with: the sandbox's own in sandbox mode."""
    real = config.yoomoney.notification_secret
    return sandbox_secret(real) if config.yoomoney.sandbox and real else real
