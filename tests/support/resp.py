"""A tiny blocking RESP client for test assertions (independent of the code under test)."""
from __future__ import annotations

import socket


def _encode(args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def _read(f):
    line = f.readline()
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        if n < 0:
            return None
        return [_read(f) for _ in range(n)]
    raise RuntimeError(f"bad reply {line!r}")


def command(port: int, *args, host: str = "127.0.0.1"):
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(_encode(args))
        with s.makefile("rb") as f:
            return _read(f)
