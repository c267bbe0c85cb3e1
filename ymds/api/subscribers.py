"""The REST API's subscriber management routes (issue 19), mixed into ApiResource:

    GET  /api/v1/subscriptions?status=active|expired|all&plan=P&expiring_within=SECONDS&limit=N
    POST /api/v1/subscriptions/{chat_id}/grant    {"plan": "month"} or {"days": 30}
    POST /api/v1/subscriptions/{chat_id}/extend   {"days": 7}
    POST /api/v1/subscriptions/{chat_id}/revoke   {}

Reading needs the ``subscriptions:read`` scope, changing ``subscriptions:write``; a change
with an ``Idempotency-Key`` header is made once per key (a retry answers the subscription as
it is; the key with another request is 409).  Billing
makes each change (with an audit event ``by=api:<key id>``) and sends the access job: a
grant that opens access invites the user, a revoke removes them from the plan's chats.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from ymds.api.routes import ApiError, RouteGroup, idempotency_key, invalid, query_parameters, refuse_unknown_fields
from ymds.billing.subscribers_jobs import (
    CHANGE_SUBSCRIBER, LIST_SUBSCRIBERS, MAX_DAYS, MAX_LIST, STATUSES, ChangeSubscriber, ListSubscribers,
    SubscribersClient,
)

ROUTES = (
    ("GET", "/api/v1/subscriptions", "list_subscriptions", "subscriptions:read"),
    ("POST", "/api/v1/subscriptions/{chat_id}/grant", "grant_subscription", "subscriptions:write"),
    ("POST", "/api/v1/subscriptions/{chat_id}/extend", "extend_subscription", "subscriptions:write"),
    ("POST", "/api/v1/subscriptions/{chat_id}/revoke", "revoke_subscription", "subscriptions:write"),
)
LIST_PARAMETERS = {"status", "plan", "expiring_within", "limit"}
_CHAT = re.compile(r"^-?\d{1,19}$")
_WHOLE = re.compile(r"^\d{1,10}$")


class SubscriberRoutes(RouteGroup):
    """The subscriber management handlers."""

    def _request(self, request: Any, key_id: str, what: list[Any]) -> tuple[str | None, str | None]:
        """(request key, request hash) of an Idempotency-Key header, or (None, None)."""
        text = idempotency_key(request)
        if text is None:
            return None, None
        digest = hashlib.sha256(json.dumps(what, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        return f"{key_id}:{text}", digest

    def _subscribers(self) -> SubscribersClient:
        return SubscribersClient(self.queue, timeout=self.call_timeout)

    async def list_subscriptions(self, request: Any, key_id: str) -> tuple[int, Any, None]:
        one = query_parameters(request, LIST_PARAMETERS)
        status = one.get("status", "active")
        if status not in STATUSES:
            raise invalid(f"status must be one of {', '.join(STATUSES)}", "status")
        plan = one.get("plan")
        if plan is not None and not 0 < len(plan) <= 64:
            raise invalid("plan must be 1-64 characters", "plan")
        within = one.get("expiring_within")
        if within is not None and (not _WHOLE.fullmatch(within) or int(within) < 1):
            raise invalid("expiring_within must be a positive number of seconds", "expiring_within")
        limit = one.get("limit", "100")
        if not _WHOLE.fullmatch(limit) or not 1 <= int(limit) <= MAX_LIST:
            raise invalid(f"limit must be between 1 and {MAX_LIST}", "limit")
        job = ListSubscribers(status, plan, None if within is None else int(within), int(limit))
        found = await self._ask(LIST_SUBSCRIBERS, lambda: self._subscribers().list(job))
        return 200, {"data": [s.to_wire() for s in found.subscribers]}, None

    async def grant_subscription(self, request: Any, key_id: str, chat_id: str) -> tuple[int, Any, None]:
        return await self._change(request, key_id, "grant", chat_id, {"plan", "days"})

    async def extend_subscription(self, request: Any, key_id: str, chat_id: str) -> tuple[int, Any, None]:
        return await self._change(request, key_id, "extend", chat_id, {"days"})

    async def revoke_subscription(self, request: Any, key_id: str, chat_id: str) -> tuple[int, Any, None]:
        return await self._change(request, key_id, "revoke", chat_id, set())

    async def _change(self, request: Any, key_id: str, action: str, chat_id: str,
                      fields: set[str]) -> tuple[int, Any, None]:
        if not _CHAT.fullmatch(chat_id) or not -2**63 <= int(chat_id) < 2**63:
            raise ApiError(404, "not_found", "no such chat (chat ids are integers)")
        body = self._body(request)
        refuse_unknown_fields(body, fields)
        plan, days = body.get("plan"), body.get("days")
        if isinstance(days, float) and days.is_integer():  # JSON Schema's integer: 7 and 7.0
            days = int(days)
        if "plan" in body and (not isinstance(plan, str) or not 0 < len(plan) <= 64):
            raise invalid("plan must be a plan id", "plan")
        if "days" in body and (isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS):
            raise invalid(f"days must be a whole number from 1 to {MAX_DAYS}", "days")
        if action == "grant" and (plan is None) == (days is None):
            raise invalid("give a plan or a number of days (one of them)")
        if action == "extend" and days is None:
            raise invalid("give the number of days", "days")
        job = ChangeSubscriber(action, int(chat_id), plan, days, f"api:{key_id}", *self._request(request, key_id, [
            action, int(chat_id), body]))
        result = await self._ask(CHANGE_SUBSCRIBER, lambda: self._subscribers().change(job))
        if not result.found or result.subscriber is None:
            raise ApiError(404, "not_found", "no subscription for this chat; grant one first")
        return 200, result.subscriber.to_wire(), None
