"""Service containers whose children stop one after another.

Twisted's MultiService stops every child at once and waits for all.  ymds needs an order:
the web listener drains before the queue client closes, the timers' sweep and the worker's
in-flight jobs finish before the ledger pool closes.  Children stop in reverse order of
addition, each after the previous one's Deferred fired.
"""
from __future__ import annotations

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger

log = Logger()


class SequentialMultiService(MultiService):
    def stopService(self):
        Service.stopService(self)
        return Deferred.fromCoroutine(self._stop_in_order())

    async def _stop_in_order(self) -> None:
        for child in reversed(list(self)):
            try:
                await Deferred.fromCoroutine(_maybe(child.stopService()))
            except Exception:  # noqa: BLE001 - one child's failure must not keep the others running
                log.failure("stopping {name} failed", name=child.name or repr(child))


async def _maybe(result):
    if isinstance(result, Deferred):
        return await result
    return result
