"""The one place ymds relies on private Twisted internals: direct socket writes for Redis.

Twisted buffers every ``write`` until the next reactor iteration (two epoll_ctl calls and
one more epoll_wait per command); a queue that waits on Redis at every step pays that on
every job (benchmarks/RESULTS.md, queue section).  When the transport's buffers are empty,
sending straight to the socket keeps the byte order and skips the detour; anything unsent
goes through the transport's own ``write``.

Internals used, all of ``twisted.internet.abstract.FileDescriptor`` as subclassed by
``tcp.Client`` and ``unix.Client``: ``_tempDataBuffer`` (writes not yet joined),
``dataBuffer`` and ``offset`` (joined bytes and how many were sent), ``connected`` and
``disconnecting``.  When they are missing the ordinary path is used, and
tests/test_queue_fastwrite.py fails loudly so that a Twisted upgrade is noticed.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp, unix

#: Off, every write takes Twisted's ordinary buffered path (benchmarks/queue_bench.py
#: --no-direct-write turns it off to measure what the fast path buys).
ENABLED = True
#: Attributes of the transport the fast path reads.
REQUIRED_ATTRIBUTES = ("_tempDataBuffer", "dataBuffer", "offset", "connected", "disconnecting")
#: Transport classes whose buffering those attributes describe.
SUPPORTED_TRANSPORTS = (tcp.Client, unix.Client)


def supports_direct_write(transport: Any) -> bool:
    """True when ``transport`` is a plain TCP/UNIX client with the internals this module reads."""
    return (ENABLED and type(transport) in SUPPORTED_TRANSPORTS
            and all(hasattr(transport, a) for a in REQUIRED_ATTRIBUTES))


class DirectWriter:
    """A TCP/UNIX transport whose ``write`` sends at once when nothing is buffered.

    Everything but ``write`` is the wrapped transport's.
    """

    def __init__(self, transport: Any):
        self._transport = transport
        self._socket = transport.getHandle()

    def write(self, data: bytes) -> None:
        t = self._transport
        if t.connected and not t.disconnecting and not t._tempDataBuffer and t.offset == len(t.dataBuffer):
            try:
                sent = self._socket.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0  # let the transport find and report the error
            if sent == len(data):
                return
            data = data[sent:]
        t.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def direct_writer(transport: Any) -> Any:
    """``transport`` wrapped in a DirectWriter when it supports it (TLS and others: as is)."""
    return DirectWriter(transport) if supports_direct_write(transport) else transport
