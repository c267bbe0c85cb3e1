"""systemd's readiness protocol: ``READY=1`` to ``$NOTIFY_SOCKET`` (a unix datagram socket).

Used with ``Type=notify`` units so systemd (and units ordered after ymds) consider the
service started only once its listeners are up.  Without ``$NOTIFY_SOCKET`` (not under
systemd) every call is a no-op.  Abstract sockets (``@name``) are supported.
"""

from __future__ import annotations

import os
import socket
from typing import Mapping

from twisted.logger import Logger

log = Logger()


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``, ``"STOPPING=1"``, ``"STATUS=..."``) to systemd.

    Returns True when a datagram was sent, False when there is no ``$NOTIFY_SOCKET`` or
    sending failed (logged: a missed notification must not stop the service).
    """
    address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # Linux abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError as e:
        log.warn("could not notify systemd ({state}): {error}", state=state.split("=", 1)[0], error=str(e))
        return False
    return True


def ready(environ: Mapping[str, str] | None = None) -> bool:
    """Tell systemd the service is ready (call after the listeners are up)."""
    return notify("READY=1", environ)


def stopping(environ: Mapping[str, str] | None = None) -> bool:
    """Tell systemd the service is stopping."""
    return notify("STOPPING=1", environ)
