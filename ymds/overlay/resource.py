"""``/overlay/<token>/(events|alerts|goal|sound)``: the overlay's HTTP surface.

Every request's token is checked first through the injected ``token_valid`` (phase 2:
the ledger's overlay token, cached); a malformed, wrong or rotated token answers 404 the
same way, whatever the path, so the answer says nothing about which tokens exist.
"""
from __future__ import annotations

import mimetypes
import re

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ymds.overlay.pages import OverlaySettings, alerts_page, goal_page
from ymds.overlay.sse import OverlayEvents, TokenCheck, text_response
from ymds.web.http import send

log = Logger()

TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
MAX_SOUND = 2 * 1024 * 1024
PAGE_TYPE = b"text/html; charset=utf-8"


def read_sound(path: str) -> tuple[bytes, bytes]:
    """(bytes, content type) of the alert sound; raises ValueError saying what to fix."""
    kind = mimetypes.guess_type(path)[0] or ""
    if not kind.startswith("audio/"):
        raise ValueError(f"{path} is not an audio file; use .mp3, .ogg or .wav")
    with open(path, "rb") as f:
        data = f.read(MAX_SOUND + 1)
    if len(data) > MAX_SOUND:
        raise ValueError(f"{path} is larger than 2 MB; use a shorter sound")
    return data, kind.encode()


class OverlayResource(Resource):
    """Mount at ``/overlay``.  ``sound`` is the alert sound (see :func:`read_sound`) or None."""

    isLeaf = True

    def __init__(self, events: OverlayEvents, token_valid: TokenCheck, settings: OverlaySettings,
                 sound: tuple[bytes, bytes] | None = None):
        super().__init__()
        self.events = events
        self.token_valid = token_valid
        self.settings = settings
        self.sound = sound

    def render_GET(self, request):
        d = defer.Deferred.fromCoroutine(self._answer(request))
        d.addErrback(self._failed, request)
        return NOT_DONE_YET

    def _failed(self, failure, request) -> None:
        log.failure("overlay: request failed", failure)
        text_response(request, 500, b"Internal error, try again shortly.\n")

    async def _answer(self, request) -> None:
        parts = [p.decode("latin-1") for p in request.postpath]
        if len(parts) != 2 or not TOKEN.match(parts[0]) or parts[1] not in ("events", "alerts", "goal", "sound"):
            return text_response(request, 404, b"Not Found\n")
        token, what = parts
        try:
            valid = await self.token_valid(token)
        except Exception as e:
            log.warn("overlay: could not check a token: {error}", error=str(e))
            return text_response(request, 503, b"Try again shortly.\n", 5)
        if not valid:
            return text_response(request, 404, b"Not Found\n")
        if what == "events":
            return await self.events.serve(request, token)
        if what == "sound":
            if self.sound is None:
                return text_response(request, 404, b"Not Found\n")
            return self._send(request, self.sound[0], self.sound[1])
        body = alerts_page(token, self.settings) if what == "alerts" else goal_page(token, self.settings)
        return self._send(request, body, PAGE_TYPE)

    @staticmethod
    def _send(request, body: bytes, kind: bytes) -> None:
        send(request, 200, body, kind)
