"""How ymds's own clients trust a sandbox or web node on this machine.

The demo (and a dry run) serve the sandbox and the notification URL over TLS with a
self-signed certificate for localhost; the billing role and the ``ymds`` commands that call
them (``reconcile``, ``test-notification``) accept it there, and nowhere else.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ymds.config import Config

LOCAL_TLS_HOSTS = ("localhost", "127.0.0.1", "::1")


def local_tls_options(config: Config, url: str) -> dict[str, bool]:
    """``{"insecure_local_tls": True}`` when the sandbox is on and ``url`` is https on this
    machine (its self-signed certificate is ours), else ``{}`` (normal verification)."""
    parts = urlsplit(url)
    if config.yoomoney.sandbox and parts.scheme == "https" and (parts.hostname or "") in LOCAL_TLS_HOSTS:
        return {"insecure_local_tls": True}
    return {}


TLS_HINT = ("the server's certificate is not trusted: give --cafile with its certificate (the demo's is "
            "<data-dir>/cert.pem) or, for localhost only, --insecure")


def is_tls_failure(text: str) -> bool:
    """Whether an error's text is a certificate verification failure."""
    lowered = text.lower()
    return any(word in lowered for word in ("certificate", "ssl", "tls", "verif"))
