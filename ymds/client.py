"""A small client for programs that sell through ymds (asyncio or Twisted).

Verify a webhook (pure function, no I/O)::

    from ymds.client import verify_webhook, InvalidSignature
    event = verify_webhook(secret, request.headers["Ymds-Signature"], raw_body)

Create an invoice from asyncio (stdlib urllib in a thread, no extra dependency)::

    client = AsyncClient("https://pay.example.org", api_key)
    invoice = await client.create_invoice(plan="month", chat_id=123, metadata={"order": "A-17"})
    invoice["pay_url"]

or from Twisted (treq): ``await TwistedClient(base_url, api_key).create_invoice(...)``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from decimal import Decimal

DEFAULT_TOLERANCE = 300  # seconds a signed timestamp may differ from now
MAX_HEADER = 1024


class InvalidSignature(ValueError):
    """The webhook is not from ymds with this secret, or is too old (a replay)."""


class ApiError(Exception):
    """The API refused a request: ``status`` (HTTP), ``code`` (stable), ``message``."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def verify_webhook(secret: str | bytes, header: str | bytes | None, body: bytes | str,
                   tolerance: float = DEFAULT_TOLERANCE, now: float | None = None) -> dict:
    """Check ``Ymds-Signature`` over the raw ``body``; return the decoded event or raise
    InvalidSignature.  Timestamps further than ``tolerance`` seconds from ``now`` (default:
    the current time) are refused, so a captured delivery cannot be replayed later."""
    if isinstance(header, bytes):
        header = header.decode("latin-1")
    if not header or len(header) > MAX_HEADER:
        raise InvalidSignature("missing or oversized Ymds-Signature header")
    body_bytes = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    timestamp, candidates = None, []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise InvalidSignature("malformed Ymds-Signature header")
        if name == "t":
            if timestamp is not None or not value.isdigit() or len(value) > 12:
                raise InvalidSignature("malformed timestamp in Ymds-Signature")
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value.strip().lower())
    if timestamp is None or not candidates:
        raise InvalidSignature("Ymds-Signature needs t= and v1=")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise InvalidSignature("timestamp outside the tolerance (a replay, or a wrong clock)")
    expected = hmac.new(key, b"%d." % timestamp + body_bytes, hashlib.sha256).hexdigest()
    # compare against every v1 (secret rotation) without stopping early
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise InvalidSignature("signature does not match")
    try:
        event = json.loads(body_bytes, parse_float=Decimal)
    except ValueError:
        raise InvalidSignature("signed body is not JSON") from None
    if not isinstance(event, dict):
        raise InvalidSignature("signed body is not a JSON object")
    return event


# --- invoices over the REST API --------------------------------------------------------------

def _invoice_request(base_url: str, api_key: str, fields: dict, idempotency_key: str | None):
    body = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in fields.items() if v is not None}
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json",
               "Accept": "application/json", "Idempotency-Key": idempotency_key or str(uuid.uuid4())}
    return base_url.rstrip("/") + "/api/v1/invoices", json.dumps(body).encode("utf-8"), headers


def _answer(status: int, body: bytes) -> dict:
    try:
        value = json.loads(body or b"null")
    except ValueError:
        value = None
    if 200 <= status < 300 and isinstance(value, dict):
        return value
    error = value.get("error", {}) if isinstance(value, dict) else {}
    raise ApiError(status, str(error.get("code", "http_error")), str(error.get("message", body[:200])))


class AsyncClient:
    """For asyncio programs (aiogram, python-telegram-bot): urllib in the default executor."""

    def __init__(self, base_url: str, api_key: str, timeout: float = 15.0):
        self.base_url = base_url
        self.api_key = api_key
        self.timeout = timeout

    def _send(self, method: str, url: str, body: bytes | None, headers: dict) -> tuple[int, bytes]:
        import urllib.error
        import urllib.request
        request = urllib.request.Request(url, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read(1 << 20)
        except urllib.error.HTTPError as e:
            return e.code, e.read(1 << 20)

    async def _call(self, method, url, body, headers) -> dict:
        import asyncio
        loop = asyncio.get_running_loop()
        status, answer = await loop.run_in_executor(None, self._send, method, url, body, headers)
        return _answer(status, answer)

    async def create_invoice(self, *, amount=None, plan=None, chat_id=None, customer=None, description=None,
                             metadata=None, expires_in=None, idempotency_key=None) -> dict:
        """POST /api/v1/invoices; the answer holds ``label`` and ``pay_url``.  Pass your own
        ``idempotency_key`` (e.g. your order id) to make retries safe."""
        url, body, headers = _invoice_request(self.base_url, self.api_key, {
            "amount": amount, "plan": plan, "chat_id": chat_id, "customer": customer, "description": description,
            "metadata": metadata, "expires_in": expires_in}, idempotency_key)
        return await self._call("POST", url, body, headers)

    async def get_invoice(self, label: str) -> dict:
        from urllib.parse import quote
        return await self._get(f"/api/v1/invoices/{quote(label, safe='')}")

    async def get_subscription(self, chat_id: int) -> dict | None:
        """The chat's subscription ({chat_id, plan, ends_at, active}) or None."""
        try:
            return await self._get(f"/api/v1/subscriptions/{int(chat_id)}")
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def _get(self, path: str) -> dict:
        return await self._call("GET", self.base_url.rstrip("/") + path, None,
                                {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"})


class TwistedClient(AsyncClient):
    """The same calls for Twisted programs, through treq; methods are coroutines (wrap
    them in ``Deferred.fromCoroutine``)."""

    def __init__(self, base_url: str, api_key: str, timeout: float = 15.0, http=None):
        super().__init__(base_url, api_key, timeout)
        if http is None:
            import treq
            http = treq
        self._http = http

    async def _call(self, method, url, body, headers) -> dict:
        import treq
        response = await self._http.request(method, url, data=body, headers=headers, timeout=self.timeout,
                                            allow_redirects=False)
        return _answer(response.code, await treq.content(response))
