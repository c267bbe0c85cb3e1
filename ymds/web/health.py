"""GET /healthz: one JSON object with each dependency's state; 503 when one is down."""

from __future__ import annotations

import json
from typing import Any, Callable, Coroutine, Mapping

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

log = Logger()

# A check answers (ok, detail); it is given a bound of ``timeout`` seconds.
HealthCheck = Callable[[], Coroutine[Any, Any, tuple[bool, str]]]


async def _one(reactor, check: HealthCheck, timeout: float) -> dict:
    ok: bool
    detail: str
    try:
        ok, detail = await Deferred.fromCoroutine(check()).addTimeout(timeout, reactor)
    except Exception as e:  # a check that fails or times out means "down"
        ok, detail = False, f"{type(e).__name__}: {e}"[:200]
    return {"ok": bool(ok), "detail": detail}


async def run_checks(reactor, checks: Mapping[str, HealthCheck], timeout: float = 2.0) -> tuple[bool, dict]:
    """Run every check at once, each bounded by ``timeout`` seconds."""
    names = list(checks)
    started = [Deferred.fromCoroutine(_one(reactor, checks[name], timeout)) for name in names]
    results = {name: await d for name, d in zip(names, started)}
    return all(r["ok"] for r in results.values()), results


class HealthResource(Resource):
    isLeaf = True

    def __init__(self, reactor, checks: Mapping[str, HealthCheck], timeout: float = 2.0):
        super().__init__()
        self._reactor = reactor
        self._checks = checks
        self._timeout = timeout

    def render_GET(self, request):
        gone: list[bool] = []  # set when the client leaves before the answer
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        async def answer():
            healthy, results = await run_checks(self._reactor, self._checks, self._timeout)
            request.setResponseCode(200 if healthy else 503)
            request.setHeader(b"content-type", b"application/json")
            request.setHeader(b"cache-control", b"no-store")
            body = {"status": "ok" if healthy else "unavailable", "checks": results}
            if not gone:
                request.write(json.dumps(body).encode())
                request.finish()

        Deferred.fromCoroutine(answer()).addErrback(lambda f: log.failure("healthz failed", f))
        return NOT_DONE_YET
