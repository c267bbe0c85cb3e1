"""Response helpers and the hardened Request used by the web role's Site.

``LimitedRequest`` refuses a body larger than ``server.max_body`` with 413 as soon as the
Content-Length (or the running size of a chunked body) says so, without reading the rest,
and gives a slow client a bounded time to send its whole request (408 otherwise).
"""

from __future__ import annotations

import json

from twisted.logger import Logger
from twisted.web.server import Request

log = Logger()

PAGE_TYPE = b"text/html; charset=utf-8"
JSON_TYPE = b"application/json"
TEXT_TYPE = b"text/plain; charset=utf-8"


def send(request, code: int, body: bytes, content_type: bytes = PAGE_TYPE, cache: bytes = b"no-store",
         headers: dict | None = None) -> None:
    """Finish ``request`` with ``body`` unless the client has gone away."""
    if client_gone(request):
        return
    request.setResponseCode(code)
    request.setHeader(b"content-type", content_type)
    request.setHeader(b"cache-control", cache)
    for name, value in (headers or {}).items():
        request.setHeader(name, value)
    request.setHeader(b"content-length", b"%d" % len(body))
    if request.method != b"HEAD":
        request.write(body)
    request.finish()


def client_gone(request) -> bool:
    """True once ``request`` is finished or its client closed the connection.

    A LimitedRequest records the disconnect itself (its public ``connectionLost``); any
    other request counts as present until finished.
    """
    return bool(request.finished or getattr(request, "gone", False))


def send_json(request, code: int, value, headers: dict | None = None) -> None:
    send(request, code, json.dumps(value, separators=(",", ":")).encode(), JSON_TYPE, headers=headers)


class LimitedRequest(Request):
    """A Request with a body limit and a deadline for receiving the whole request.

    The Site sets ``max_body`` and ``request_deadline`` on this class (see ``make_site``).
    """

    max_body: int = 65536
    request_deadline: float = 30.0
    _refused = False
    _received = 0
    _deadline_call = None
    gone = False  # the client closed the connection before the answer was finished

    def __init__(self, channel, *args, **kwargs):
        super().__init__(channel, *args, **kwargs)
        site = getattr(channel, "site", None)
        reactor = getattr(site, "reactor", None)
        if reactor is not None and self.request_deadline:
            self._deadline_call = reactor.callLater(self.request_deadline, self._too_slow)

    def _cancel_deadline(self) -> None:
        if self._deadline_call is not None and self._deadline_call.active():
            self._deadline_call.cancel()
        self._deadline_call = None

    def _refuse_raw(self, status: bytes, text: bytes) -> None:
        """Answer before the request is complete, then close: the rest is never read."""
        if self._refused:
            return
        self._refused = True
        self._cancel_deadline()
        self.content = None
        transport = self.channel.transport
        if transport is not None:
            transport.write(b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
                            b"content-length: %d\r\nconnection: close\r\nx-content-type-options: nosniff\r\n\r\n%s"
                            % (len(text), text))
            self.channel.loseConnection()

    def _too_slow(self) -> None:
        self._deadline_call = None
        log.info("http request refused {status}: client too slow to send its request", status=408)
        self._refuse_raw(b"408 Request Timeout", b"Request Timeout\n")

    def gotLength(self, length):
        if length is not None and length > self.max_body:
            log.info("http request refused {status}: body of {length} bytes is over server.max_body",
                     status=413, length=length)
            self._refuse_raw(b"413 Content Too Large", b"Content Too Large\n")
            return
        super().gotLength(length)

    def handleContentChunk(self, data):
        if self._refused:
            return
        self._received += len(data)
        if self._received > self.max_body:
            log.info("http request refused {status}: chunked body over server.max_body", status=413)
            self._refuse_raw(b"413 Content Too Large", b"Content Too Large\n")
            return
        super().handleContentChunk(data)

    def requestReceived(self, command, path, version):
        if self._refused:
            return
        self._cancel_deadline()
        super().requestReceived(command, path, version)

    def connectionLost(self, reason):
        self.gone = True
        self._cancel_deadline()
        super().connectionLost(reason)
