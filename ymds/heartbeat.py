"""The ledger's health as other roles see it.

Only billing talks to the ledger, so the web role cannot ask the database itself.  Each
billing process reads from the ledger every few seconds and writes the outcome to Redis
with a short expiry; /healthz reads that key.  No report for ``ttl`` seconds means no
billing process can reach the ledger (or none runs), which is "down".
"""

from __future__ import annotations

from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred
from twisted.logger import Logger

log = Logger()


def heartbeat_key(prefix: str) -> str:
    return f"{prefix}:health:ledger"


class LedgerHeartbeat(TimerService):
    """Every ``interval`` seconds: read from the ledger, report to Redis."""

    def __init__(self, ledger, redis_execute, prefix: str, clock, interval: float = 5.0, ttl: float = 15.0):
        super().__init__(interval, self._beat)
        self.clock = clock
        self._ledger = ledger
        self._execute = redis_execute
        self._key = heartbeat_key(prefix)
        self._ttl_ms = int(ttl * 1000)
        self._last_ok: bool | None = None

    def _beat(self) -> Deferred:
        return Deferred.fromCoroutine(self.beat()).addErrback(
            lambda f: log.warn("heartbeat not written: {error}", error=f.getErrorMessage()))

    async def beat(self) -> None:
        try:
            await self._ledger.cursors.get_cursor("heartbeat")
            state = "ok"
        except Exception as e:  # noqa: BLE001 - any failure is "ledger down"
            state = f"down: {type(e).__name__}: {e}"[:200]
        ok = state == "ok"
        if ok != self._last_ok:
            (log.info if ok else log.error)("ledger {state}", state=state)
            self._last_ok = ok
        await self._execute("SET", self._key, state, "PX", self._ttl_ms)


def ledger_health_check(redis_execute, prefix: str):
    """A /healthz check reading the billing heartbeat."""
    key = heartbeat_key(prefix)

    async def check() -> tuple[bool, str]:
        state = await redis_execute("GET", key)
        if state is None:
            return False, "no billing process has reported the ledger recently"
        state = state.decode() if isinstance(state, bytes) else state
        return state == "ok", state

    return check
