"""Services that tie a resource's lifetime to the service tree."""

from __future__ import annotations

from typing import Any, Callable, Coroutine

from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred, succeed

#: What a close function may return: a Deferred, a coroutine, or None when it closed at once.
CloseResult = Deferred[Any] | Coroutine[Any, Any, Any] | None


class CloseOnStop(Service):
    """Calls ``close()`` when the service stops; stopping waits for what it returns.

    Nothing is called on start; ``close`` runs once per stop.
    """

    def __init__(self, close: Callable[[], CloseResult], name: str | None = None):
        self._close = close
        if name is not None:
            self.name = name

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        result = self._close()
        if result is None:
            return succeed(None)
        return ensureDeferred(result)
