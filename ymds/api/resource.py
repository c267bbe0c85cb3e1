"""The REST API under /api/v1 (web role).  Every answer is JSON; errors are
``{"error": {"code": "...", "message": "..."}}`` with these stable codes:

======================  ====  ==========================================================
code                    HTTP  when
======================  ====  ==========================================================
missing_api_key         401   no ``Authorization: Bearer <key>``
invalid_api_key         401   unknown, malformed or revoked key
insufficient_scope      403   the key lacks the route's scope
not_found               404   no such route, invoice or subscription
method_not_allowed      405   the route exists with other methods (``Allow`` says which)
idempotency_conflict    409   the Idempotency-Key was used with a different body
already_exists          409   a promo code with this text exists already (issue 19)
payload_too_large       413   a body over 16 KiB
unsupported_media_type  415   a body that is not ``application/json``
malformed_json          400   a body that does not parse as JSON
invalid_request         422   a field is missing or wrong (``param`` names it)
rate_limited            429   too many requests for the key, or failed keys from an address
unavailable             503   billing did not answer (Redis down, no billing worker): retry
internal_error          500   a bug (logged)
======================  ====  ==========================================================

This role never touches the ledger: each request is a queue call to billing.  Positive
key look-ups (``api_authenticate``) are cached for ``auth_ttl`` seconds (5 by default), so a
revoked key may keep working on a web process for that long.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from decimal import Decimal

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ymds.api.keys import KEY_FORMAT, key_hash
from ymds.api.routes import ApiError, idempotency_key, invalid, query_parameters, refuse_unknown_fields
from ymds.api.subscribers import ROUTES as SUBSCRIBER_ROUTES, SubscriberRoutes
from ymds.api.selling import ROUTES as SELLING_ROUTES, SellingRoutes
from ymds.api.openapi import AMOUNT_PATTERN, openapi_document
from ymds.billing import jobs
from ymds.billing.jobs import (
    ApiKeyAuth, BillingClient, CreatedInvoice, CreateInvoice, IdempotencyKeyReused, ListPayments,
)
from ymds.queue.errors import InvalidTaskArgs, RemoteJobError
from ymds.web.cache import TTLCache
from ymds.web.http import send
from ymds.web.ratelimit import ClientAddress, TokenBucketLimiter
from ymds.util.http import retry_after_seconds

log = Logger()

JSON_TYPE = b"application/json; charset=utf-8"
MAX_BODY = 16384
MAX_JSON_DEPTH = 32  # deeper bodies are refused with 400 (issue 14)
UNKNOWN_KEY_TTL = 60.0  # seconds an unknown API key is refused without asking billing
MAX_IDEMPOTENCY_KEY = 255
_AMOUNT = re.compile(AMOUNT_PATTERN)
_LABEL = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_CHAT = re.compile(r"^-?\d{1,19}$")
INVOICE_FIELDS = {"amount", "plan", "chat_id", "customer", "description", "metadata", "expires_in"}
PAYMENT_FILTERS = {"since", "until", "status", "label", "chat_id", "cursor", "limit"}
PAYMENT_STATUSES = ("paid", "overpaid", "underpaid", "late", "unmatched", "held")

# (method, path pattern, handler name, scope); the OpenAPI document lists the same routes
ROUTES = (
    ("GET", "/api/v1/openapi.json", "openapi", None),
    ("POST", "/api/v1/invoices", "create_invoice", "invoices:write"),
    ("GET", "/api/v1/invoices/{label}", "get_invoice", "invoices:read"),
    ("GET", "/api/v1/payments", "list_payments", "payments:read"),
    ("GET", "/api/v1/subscriptions/{chat_id}", "get_subscription", "subscriptions:read"),
) + SUBSCRIBER_ROUTES + SELLING_ROUTES


def _json_default(value):
    if isinstance(value, Decimal):  # money from billing: already two decimals
        return format(value, "f")
    raise TypeError(f"{type(value).__name__} is not JSON")


def _whole(value):
    """An integer as JSON Schema means it (7 and 7.0), else None; never a bool."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return None


def dumps(value) -> bytes:
    return json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_depth(value: object) -> int:
    """How deeply ``value`` nests lists and objects (iterative: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _compile(template: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$")


_COMPILED = [(method, _compile(path), path, handler, scope) for method, path, handler, scope in ROUTES]


def parse_time(text: str, param: str) -> float:
    """Unix seconds or an ISO 8601 time (UTC unless it says otherwise)."""
    text = text.strip()
    if re.fullmatch(r"\d{1,11}(\.\d{1,6})?", text):
        return float(text)
    # RFC 3339 allows a lower-case t/z and any number of fraction digits
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.upper().replace("Z", "+00:00"))
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    except (ValueError, OverflowError, OSError):
        raise invalid(f"{param} must be Unix seconds or an ISO 8601 time", param) from None


def api_invoice(result: CreatedInvoice) -> dict:
    """billing's create_invoice answer in the API's shape (the same as GET and webhooks)."""
    meta = dict(result.metadata or {})
    return {
        "label": result.label, "kind": result.kind, "plan": result.plan, "chat_id": result.chat_id,
        "amount": result.amount, "currency": "RUB", "status": result.status,
        "description": result.description or "", "metadata": meta, "customer": meta.get("customer"),
        "created_at": result.created_at, "expires_at": result.expires_at, "paid_at": result.paid_at,
        "pay_url": result.url or None,
    }


def _said(e: Exception) -> str:
    """What the handler said (a remote error's message, or a local error's text)."""
    return e.message if isinstance(e, RemoteJobError) else str(e)


class ApiResource(SellingRoutes, SubscriberRoutes, Resource):
    """Everything under /api (mount it as the ``api`` child of the web root)."""

    isLeaf = True

    def __init__(self, config, queue, clock, metrics, client_address: ClientAddress | None = None,
                 auth_ttl: float = 5.0, call_timeout: float = 10.0, key_rate: tuple[float, float] = (20.0, 100),
                 failure_rate: tuple[float, float] = (1.0, 20), max_clients: int = 10000):
        super().__init__()
        self.config = config
        self.queue = queue
        self.clock = clock
        self.client_address = client_address or ClientAddress(config.server.trusted_proxies)
        self.call_timeout = call_timeout
        self.billing = BillingClient(queue, timeout=call_timeout)
        self.auth_cache: TTLCache[ApiKeyAuth] = TTLCache(clock, ttl=auth_ttl, max_entries=1024)
        # Unknown keys are remembered briefly: guessing again costs no billing call (issue 14).
        self.unknown_keys: TTLCache[bool] = TTLCache(clock, ttl=UNKNOWN_KEY_TTL, max_entries=4096)
        self.key_limiter = TokenBucketLimiter(clock, *key_rate, max_clients=max_clients)
        self.failure_limiter = TokenBucketLimiter(clock, *failure_rate, max_clients=max_clients)
        self.requests = metrics.counter("ymds_api_requests", "REST API requests by route and status", ("route", "code"))
        self._document: bytes | None = None

    # --- answering ----------------------------------------------------------------------

    def _answer(self, request, route: str, status: int, value, headers: dict | None = None, key_id: str = "") -> None:
        self.requests.inc(route=route, code=str(status))
        log.info("api {method} {route} {status} key={key_id}", method=request.method.decode("latin-1")[:10],
                 route=route, status=status, key_id=key_id or "-")
        send(request, status, value if isinstance(value, bytes) else dumps(value), JSON_TYPE, headers=headers)

    def _error(self, request, route: str, e: ApiError, key_id: str = "") -> None:
        error = {"code": e.code, "message": e.message}
        if e.param:
            error["param"] = e.param
        headers = dict(e.headers)
        if e.status == 401:
            headers[b"www-authenticate"] = b'Bearer realm="ymds"'
        self._answer(request, route, e.status, {"error": error}, headers, key_id)

    # --- dispatch -----------------------------------------------------------------------

    def render(self, request):
        path = "/api/" + "/".join(p.decode("utf-8", "replace") for p in request.postpath)
        method = request.method.decode("latin-1")
        allowed = []
        for route_method, pattern, template, handler, scope in _COMPILED:
            match = pattern.match(path)
            if match is None:
                continue
            if route_method != method and not (method == "HEAD" and route_method == "GET"):
                allowed.append(route_method)
                continue
            d = Deferred.fromCoroutine(self._handle(request, template, handler, scope, match.groupdict()))
            d.addErrback(self._crashed, request, template)
            return NOT_DONE_YET
        if allowed:
            self._error(request, "other", ApiError(405, "method_not_allowed", f"use {', '.join(allowed)}",
                                                   headers={b"allow": ", ".join(allowed).encode()}))
        else:
            self._error(request, "other", ApiError(404, "not_found", "no such route; see /api/v1/openapi.json"))
        return NOT_DONE_YET

    def _crashed(self, failure, request, route):
        log.failure("api {route} failed", failure, route=route)
        self._error(request, route, ApiError(500, "internal_error", "internal error"))

    async def _handle(self, request, route, handler, scope, params):
        key_id = ""
        try:
            if scope is not None:
                auth = await self._authenticate(request)
                key_id = auth.key_id
                if scope not in auth.scopes:
                    raise ApiError(403, "insufficient_scope", f"this key lacks the {scope} scope")
                if not self.key_limiter.allow(key_id):
                    wait = retry_after_seconds(self.key_limiter.retry_after(key_id))
                    raise ApiError(429, "rate_limited", "too many requests for this key",
                                   headers={b"retry-after": b"%d" % wait})
            status, value, headers = await getattr(self, handler)(request, key_id, **params)
        except ApiError as e:
            self._error(request, route, e, key_id)
            return
        self._answer(request, route, status, value, headers, key_id)

    async def _ask(self, task: str, call):
        """``await call()`` (a BillingClient call) with billing's failures as API errors:
        refused arguments 400, a reused Idempotency-Key 409, anything else 503."""
        try:
            return await call()
        except InvalidTaskArgs as e:
            raise invalid(_said(e)) from None
        except IdempotencyKeyReused as e:
            raise ApiError(409, "idempotency_conflict", _said(e)) from None
        except RemoteJobError as e:
            log.warn("api: billing {task} failed: {error_type}", task=task, error_type=e.error_type)
            raise ApiError(503, "unavailable", "billing could not answer; try again",
                           headers={b"retry-after": b"5"}) from None
        except Exception as e:  # JobTimeout, Redis down, stopped queue
            log.warn("api: billing {task} unavailable: {error}", task=task, error=type(e).__name__)
            raise ApiError(503, "unavailable", "billing is unreachable; try again",
                           headers={b"retry-after": b"5"}) from None

    async def _authenticate(self, request) -> ApiKeyAuth:
        header = (request.getHeader(b"authorization") or b"").decode("latin-1").strip()
        if not header:
            raise ApiError(401, "missing_api_key", "send Authorization: Bearer <key>")
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not KEY_FORMAT.fullmatch(key):
            self._failed_auth(request)
            raise ApiError(401, "invalid_api_key", "the API key is malformed")
        digest = key_hash(key)
        auth = self.auth_cache.get(digest)
        if auth is None:
            # The address's failure bucket is checked before any lookup, and a key billing
            # just called unknown is refused from memory: guessing costs no billing call.
            self._check_failures(request)
            if self.unknown_keys.get(digest):
                self._failed_auth(request)
                raise ApiError(401, "invalid_api_key", "unknown or revoked API key")
            auth = await self._ask(jobs.API_AUTHENTICATE, lambda: self.billing.api_authenticate(digest))
            if auth is None:
                self.unknown_keys.put(digest, True)
                self._failed_auth(request)
                raise ApiError(401, "invalid_api_key", "unknown or revoked API key")
            self.auth_cache.put(digest, auth)
        return auth

    def _check_failures(self, request) -> None:
        """429 when this address has no failed-key tokens left (spends none)."""
        remote = self.client_address.of(request)
        wait = self.failure_limiter.retry_after(remote)
        if wait > 0:
            raise ApiError(429, "rate_limited", "too many failed API keys from this address",
                           headers={b"retry-after": b"%d" % retry_after_seconds(wait)})

    def _failed_auth(self, request) -> None:
        remote = self.client_address.of(request)
        if not self.failure_limiter.allow(remote):
            wait = retry_after_seconds(self.failure_limiter.retry_after(remote))
            raise ApiError(429, "rate_limited", "too many failed API keys from this address",
                           headers={b"retry-after": b"%d" % wait})

    # --- routes -------------------------------------------------------------------------

    async def openapi(self, request, key_id):
        if self._document is None:
            self._document = openapi_document(self.config.server.public_url, [p.id for p in self.config.plans])
        return 200, self._document, {b"cache-control": b"public, max-age=300"}

    def _body(self, request) -> dict:
        media = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
        if media != b"application/json":
            raise ApiError(415, "unsupported_media_type", "send the body as application/json")
        request.content.seek(0)
        raw = request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise ApiError(413, "payload_too_large", f"the body is over {MAX_BODY} bytes")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "malformed_json", "the body is not JSON (UTF-8)") from None
        except RecursionError:  # the parser's own limit: deeply nested input is the client's error
            raise ApiError(400, "malformed_json", f"the body nests deeper than {MAX_JSON_DEPTH} levels") from None
        if json_depth(body) > MAX_JSON_DEPTH:
            raise ApiError(400, "malformed_json", f"the body nests deeper than {MAX_JSON_DEPTH} levels")
        if not isinstance(body, dict):
            raise invalid("the body must be a JSON object")
        return body

    def _invoice_args(self, body: dict) -> dict:
        refuse_unknown_fields(body, INVOICE_FIELDS)
        args: dict = {}
        amount, plan = body.get("amount"), body.get("plan")
        if (amount is None) == (plan is None):
            raise invalid("give either amount or plan", "amount")
        if amount is not None:
            if not isinstance(amount, str) and _whole(amount) is None:
                raise invalid("amount must be a string like \"199.00\" or a whole number", "amount")
            text = amount.strip() if isinstance(amount, str) else str(_whole(amount))
            if not _AMOUNT.fullmatch(text):
                raise invalid("amount must be 0.01 to 999999.99 with at most two decimals", "amount")
            args["amount"] = Decimal(text)
        if plan is not None:
            if not isinstance(plan, str) or self.config.plan(plan) is None:
                raise invalid(f"unknown plan; configured: {', '.join(p.id for p in self.config.plans)}", "plan")
            args["plan"] = plan
        chat_id = body.get("chat_id")
        if chat_id is not None:
            chat_id = _whole(chat_id)
            if chat_id is None or not -2**63 <= chat_id < 2**63:
                raise invalid("chat_id must be an integer (a Telegram chat id)", "chat_id")
            args["chat_id"] = chat_id
        if plan is not None and chat_id is None:
            raise invalid("a plan invoice needs the chat_id that gets the subscription", "chat_id")
        description = body.get("description", "")
        if not isinstance(description, str) or len(description) > 500:
            raise invalid("description must be text of at most 500 characters", "description")
        args["description"] = description
        metadata = body.get("metadata")
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, dict):
            raise invalid("metadata must be an object", "metadata")
        customer = body.get("customer")
        if customer is not None:
            if not isinstance(customer, str) or not 0 < len(customer) <= 128:
                raise invalid("customer must be text of 1 to 128 characters", "customer")
            metadata = {**metadata, "customer": customer}
        if len(metadata) > 50 or len(dumps(metadata)) > 4096:
            raise invalid("metadata must have at most 50 keys and 4096 bytes of JSON", "metadata")
        args["metadata"] = metadata
        expires_in = body.get("expires_in")
        if expires_in is not None:
            expires_in = _whole(expires_in)
            if expires_in is None or not 60 <= expires_in <= 30 * 86400:
                raise invalid("expires_in must be whole seconds from 60 to 2592000 (30 days)", "expires_in")
            args["ttl"] = expires_in
        return args

    async def create_invoice(self, request, key_id):
        body = self._body(request)
        args = self._invoice_args(body)
        idem_text = idempotency_key(request)
        if idem_text is not None:
            digest = hashlib.sha256(json.dumps(body, default=_json_default, sort_keys=True,
                                               separators=(",", ":")).encode("utf-8")).hexdigest()
            args["idempotency"] = {"key_id": key_id, "key": idem_text, "request_hash": digest}
        try:
            job = CreateInvoice.from_wire(args)  # the same check billing makes
        except InvalidTaskArgs as e:
            raise invalid(str(e)) from None
        result = await self._ask(jobs.CREATE_INVOICE, lambda: self.billing.create_invoice(job))
        invoice = api_invoice(result)
        headers = {b"location": f"/api/v1/invoices/{invoice['label']}".encode()}
        if result.replayed:
            headers[b"idempotent-replayed"] = b"true"
        return 201, invoice, headers

    async def get_invoice(self, request, key_id, label):
        if not _LABEL.fullmatch(label):
            raise ApiError(404, "not_found", "no such invoice")
        found = await self._ask(jobs.API_INVOICE, lambda: self.billing.api_invoice(label))
        if found is None:
            raise ApiError(404, "not_found", "no such invoice")
        return 200, dict(found.body), None

    async def list_payments(self, request, key_id):
        one = query_parameters(request, PAYMENT_FILTERS)
        args: dict = {}
        for name in ("since", "until"):
            if name in one:
                args[name] = parse_time(one[name], name)
        if "status" in one:
            if one["status"] not in PAYMENT_STATUSES:
                raise invalid(f"status must be one of {', '.join(PAYMENT_STATUSES)}", "status")
            args["status"] = one["status"]
        if "label" in one:
            if not 0 < len(one["label"]) <= 256:
                raise invalid("label must be 1-256 characters", "label")
            args["label"] = one["label"]
        if "chat_id" in one:
            if not _CHAT.fullmatch(one["chat_id"]):
                raise invalid("chat_id must be an integer", "chat_id")
            args["chat_id"] = int(one["chat_id"])
        if "cursor" in one:
            if not re.fullmatch(r"\d{1,18}", one["cursor"]):
                raise invalid("cursor must be a next_cursor from an earlier page", "cursor")
            args["cursor"] = int(one["cursor"])
        limit = one.get("limit", "100")
        if not re.fullmatch(r"\d{1,4}", limit) or not 1 <= int(limit) <= 500:
            raise invalid("limit must be between 1 and 500", "limit")
        args["limit"] = int(limit)
        try:
            wanted = ListPayments.from_wire(args)
        except InvalidTaskArgs as e:
            raise invalid(str(e)) from None
        page = await self._ask(jobs.LIST_PAYMENTS, lambda: self.billing.list_payments(wanted))
        cursor = page.next_cursor
        return 200, {"data": list(page.payments), "next_cursor": None if cursor is None else str(cursor),
                     "has_more": cursor is not None}, None

    async def get_subscription(self, request, key_id, chat_id):
        if not _CHAT.fullmatch(chat_id) or not -2**63 <= int(chat_id) < 2**63:
            raise ApiError(404, "not_found", "no such subscription (chat ids are integers)")
        found = await self._ask(jobs.SUBSCRIPTION_STATUS, lambda: self.billing.subscription_status(int(chat_id)))
        if found is None:
            raise ApiError(404, "not_found", "no subscription for this chat")
        return 200, {"chat_id": int(chat_id), "plan": found.plan, "ends_at": found.ends_at,
                     "active": bool(found.active)}, None


def make_api_resource(reactor, config, queue, metrics, clock=None, **options) -> ApiResource:
    """The /api resource for ``make_web_root(..., api=...)``; ``clock`` (default: reactor)
    drives the key cache and the rate limits."""
    return ApiResource(config, queue, clock or reactor, metrics, **options)
