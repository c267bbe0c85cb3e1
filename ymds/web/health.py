"""GET /healthz: one JSON object with each dependency's state.

The status answers "can this node do its own roles' work?": 503 only when a *required*
check is down.  A check wrapped by :func:`informational` is run and reported (``ok``,
``detail``, ``required: false``) but never makes the node unhealthy: a web-only node with
Redis up can still take notifications while no billing process runs, so a load balancer
must not drop it (issue 14).  :func:`checks_for_roles` decides which checks a node needs.
"""

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


class _Informational:
    """A check reported in /healthz that does not decide its status."""

    required = False

    def __init__(self, check: HealthCheck):
        self._check = check

    def __call__(self) -> Coroutine[Any, Any, tuple[bool, str]]:
        return self._check()


def informational(check: HealthCheck) -> HealthCheck:
    """``check`` reported but not required for a 200."""
    return _Informational(check)


def is_required(check: HealthCheck) -> bool:
    return bool(getattr(check, "required", True))


def checks_for_roles(roles: set[str] | frozenset[str], checks: Mapping[str, HealthCheck]) -> dict[str, HealthCheck]:
    """Every check, the ``ledger`` heartbeat required only on a node that runs billing (the
    only role whose work needs the ledger); Redis stays required for every role."""
    return {name: (check if name != "ledger" or "billing" in roles else informational(check))
            for name, check in checks.items()}


async def _one(reactor: Any, check: HealthCheck, timeout: float) -> dict:
    ok: bool
    detail: str
    try:
        ok, detail = await Deferred.fromCoroutine(check()).addTimeout(timeout, reactor)
    except Exception as e:  # a check that fails or times out means "down"
        ok, detail = False, f"{type(e).__name__}: {e}"[:200]
    return {"ok": bool(ok), "detail": detail, "required": is_required(check)}


async def run_checks(reactor: Any, checks: Mapping[str, HealthCheck], timeout: float = 2.0) -> tuple[bool, dict]:
    """Run every check at once, each bounded by ``timeout`` seconds; healthy when every
    required check is ok."""
    names = list(checks)
    started = [Deferred.fromCoroutine(_one(reactor, checks[name], timeout)) for name in names]
    results = {name: await d for name, d in zip(names, started)}
    return all(r["ok"] for r in results.values() if r["required"]), results


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
