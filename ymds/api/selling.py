"""The REST API's selling routes (issue 19), mixed into ApiResource:

    GET  /api/v1/promo-codes                       (promo:read)   every promo code with its uses
    POST /api/v1/promo-codes                       (promo:write)  {"code": "SPRING", "percent": 20, ...}; 409 already_exists
    POST /api/v1/promo-codes/{code}/disable        (promo:write)
    POST /api/v1/access-codes                      (codes:write)  {"plan": "month", "count": 10, ...}

The same operations as ``ymds promo`` and ``ymds codes``; billing makes each change.  A
refusal (a code that exists, an unknown plan) is 422 ``invalid_request`` with one sentence.
"""

from __future__ import annotations

from typing import Any

from ymds.api.routes import ApiError, RouteGroup, invalid, refuse_unknown_fields
from ymds.billing.selling_jobs import (
    CODES_ADD, PROMO_ADD, PROMO_DISABLE, PROMO_LIST, CodesAdd, PromoTerms, SellingClient,
)

ROUTES = (
    ("GET", "/api/v1/promo-codes", "list_promo_codes", "promo:read"),
    ("POST", "/api/v1/promo-codes", "create_promo_code", "promo:write"),
    ("POST", "/api/v1/promo-codes/{code}/disable", "disable_promo_code", "promo:write"),
    ("POST", "/api/v1/access-codes", "create_access_codes", "codes:write"),
)
SCOPES = ("promo:read", "promo:write", "codes:write")
PROMO_FIELDS = {"code", "percent", "off", "plans", "uses", "per_user", "starts_at", "ends_at", "first_only"}
CODES_FIELDS = {"plan", "days", "count", "uses", "expires_at"}
REFUSALS = {
    "exists": "a promo code with this text exists already; choose another code",
    "invalid": "the code's terms are not valid: give percent (1-100) or off, and known plan ids",
    "unknown": "there is no such promo code, or it is disabled already",
}


class SellingRoutes(RouteGroup):
    """The promo and access code handlers."""

    def _selling(self) -> SellingClient:
        return SellingClient(self.queue, timeout=self.call_timeout)

    def _fields(self, request: Any, allowed: set[str]) -> dict:
        body = self._body(request)
        refuse_unknown_fields(body, allowed)
        nulls = sorted(name for name, value in body.items() if value is None)
        if nulls:
            raise invalid(f"{nulls[0]} must not be null (leave it out instead)", nulls[0])
        if "off" in body and isinstance(body["off"], (int, float)) and not isinstance(body["off"], bool):
            body["off"] = str(body["off"])  # PromoTerms reads money as text or Decimal
        for name in ("percent", "uses", "per_user", "days", "count"):
            if isinstance(body.get(name), float) and body[name].is_integer():
                body[name] = int(body[name])
        return body

    async def list_promo_codes(self, request: Any, key_id: str) -> tuple[int, Any, None]:
        found = await self._ask(PROMO_LIST, lambda: self._selling().promo_list())
        return 200, {"data": found.to_wire()["promo_codes"]}, None

    async def create_promo_code(self, request: Any, key_id: str) -> tuple[int, Any, None]:
        body = self._fields(request, PROMO_FIELDS)
        terms = await self._ask(PROMO_ADD, _parsed(lambda: PromoTerms.from_wire(body)))
        answer = await self._ask(PROMO_ADD, lambda: self._selling().promo_add(terms))
        if answer.refusal == "exists":
            raise ApiError(409, "already_exists", REFUSALS["exists"], "code")
        if not answer.ok:
            raise invalid(REFUSALS.get(answer.refusal or "", "the promo code was refused"), "code")
        return 201, {"code": answer.code, "percent": answer.percent, "off": answer.off,
                     "plans": list(answer.plans)}, None

    async def disable_promo_code(self, request: Any, key_id: str, code: str) -> tuple[int, Any, None]:
        answer = await self._ask(PROMO_DISABLE, lambda: self._selling().promo_disable(code[:64]))
        if not answer.ok:
            raise ApiError(404, "not_found", REFUSALS["unknown"])
        return 200, {"code": answer.code, "active": False}, None

    async def create_access_codes(self, request: Any, key_id: str) -> tuple[int, Any, None]:
        body = self._fields(request, CODES_FIELDS)
        job = await self._ask(CODES_ADD, _parsed(lambda: CodesAdd.from_wire(body)))
        made = await self._ask(CODES_ADD, lambda: self._selling().codes_add(job))
        if made.refusal:
            raise invalid("unknown plan; use a plan id from the configuration", "plan")
        return 201, {"codes": list(made.codes), "plan": made.plan, "days": made.days, "uses": made.uses,
                     "expires_at": made.expires_at}, None


def _parsed(make: Any) -> Any:
    """A call for ApiResource._ask that checks the body locally (InvalidTaskArgs -> 422)."""
    async def call() -> Any:
        return make()
    return call


__all__ = ["ROUTES", "SCOPES", "SellingRoutes"]
