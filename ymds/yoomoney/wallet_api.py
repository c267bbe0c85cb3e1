"""YooMoney wallet API client: operation-history and operation-details.

POST ``{api_url}/api/operation-history`` and ``{api_url}/api/operation-details``,
form-encoded, ``Authorization: Bearer <token>`` (scopes operation-history and
operation-details).  YooMoney answers 401 for a bad token, 403 for a missing scope, 400 for
a malformed request, and 200 with ``{"error": "illegal_param_..."}`` for a bad parameter.
Amounts arrive as JSON numbers; they are read straight into Decimal, never float.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, AsyncIterator, Iterable

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.client import HTTPConnectionPool
from zope.interface import Interface, implementer

from ymds.config import YooMoneyConfig
from ymds.yoomoney.http import BodyTooLarge, make_http_client, read_body
from ymds.yoomoney.notification import parse_datetime
from ymds.yoomoney.quickpay import sum_for_credited

log = Logger()

MAX_RESPONSE = 4 * 1024 * 1024


class WalletAPIError(Exception):
    """Base of every wallet API failure; ``code`` is YooMoney's error code or ours."""

    code = "wallet_api_error"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidToken(WalletAPIError):
    """401: the token is missing, wrong, expired or revoked."""
    code = "invalid_token"


class InsufficientScope(WalletAPIError):
    """403: the token lacks the scope for this method."""
    code = "insufficient_scope"


class InvalidRequest(WalletAPIError):
    """400: the request itself was malformed."""
    code = "invalid_request"


class IllegalParam(WalletAPIError):
    """200 with ``{"error": "illegal_param_..."}``: a parameter was refused."""


class HTTPFailure(WalletAPIError):
    """Any other HTTP status, a connection failure, or a body that is not the expected JSON."""
    code = "http_failure"

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message, code)
        self.status = status


class Timeout(WalletAPIError):
    code = "timeout"


@dataclass(frozen=True)
class Operation:
    operation_id: str
    status: str              # success | refused | in_progress
    datetime_raw: str
    datetime: datetime | None
    direction: str           # in | out
    amount: Decimal
    label: str               # "" when the operation has none
    type: str                # e.g. deposition, payment, incoming-transfer
    title: str = ""
    amount_due: Decimal | None = None
    fee: Decimal | None = None
    sender: str | None = None
    codepro: bool | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)


    def notification_fields(self, config: YooMoneyConfig, withdraw_amount: Decimal | None = None) -> dict[str, str]:
        """Notification-like raw fields for an incoming operation found by reconciliation
        (billing.apply_payment with source "reconcile"; they carry no signature).

        The wallet API does not say what the payer paid.  ``withdraw_amount`` is, in order:
        the one given (e.g. the invoice price when the credited amount matches it), amount +
        fee when the details carry the fee, else the smallest sum that credits ``amount``
        under the configured fee for the payment type (``incoming-transfer*`` = wallet,
        anything else = card).  Raises ValueError for outgoing or refused operations.
        """
        if self.direction != "in":
            raise ValueError(f"operation {self.operation_id} is not incoming")
        if self.status not in ("success", "in_progress"):
            raise ValueError(f"operation {self.operation_id} is {self.status}")
        wallet = self.type.startswith("incoming-transfer")
        amount = self.amount.quantize(Decimal("0.01"))
        if withdraw_amount is None and self.fee is not None:
            withdraw_amount = amount + self.fee
        if withdraw_amount is None:
            withdraw_amount = sum_for_credited(amount, "PC" if wallet else "AC", config)
        return {
            "notification_type": "p2p-incoming" if wallet else "card-incoming",
            "operation_id": self.operation_id,
            "amount": f"{amount:.2f}",
            "withdraw_amount": f"{withdraw_amount.quantize(Decimal('0.01')):.2f}",
            "currency": "643",
            "datetime": self.datetime_raw,
            "sender": self.sender or "",
            "codepro": "true" if self.codepro else "false",
            "label": self.label,
            "unaccepted": "true" if (self.status == "in_progress" and not self.codepro) else "false",
        }


@dataclass(frozen=True)
class HistoryPage:
    operations: tuple[Operation, ...]
    next_record: str | None


class IWalletAPI(Interface):
    def operation_history(type=None, label=None, from_=None, till=None, start_record=None, records=None, details=False):
        """Coroutine -> HistoryPage."""

    def iter_history(type=None, label=None, from_=None, till=None, records=100, details=False, max_pages=1000):
        """Async iterator of every Operation, paging through next_record."""

    def operation_details(operation_id):
        """Coroutine -> Operation."""


def _money(value: Any, name: str) -> Decimal:
    if isinstance(value, bool):
        raise HTTPFailure(f"{name} is not an amount", code="bad_response")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, (Decimal, str)):
        try:
            amount = Decimal(value)
        except InvalidOperation:
            raise HTTPFailure(f"{name} is not an amount", code="bad_response") from None
        if amount.is_finite():
            return amount
    raise HTTPFailure(f"{name} is not an amount", code="bad_response")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (str, int, Decimal)) and not isinstance(value, bool):
        return str(value)
    raise HTTPFailure("expected text in a wallet API answer", code="bad_response")


def parse_operation(raw: Any) -> Operation:
    if not isinstance(raw, dict):
        raise HTTPFailure("an operation is not an object", code="bad_response")
    for name in ("operation_id", "status", "datetime", "amount"):
        if name not in raw:
            raise HTTPFailure(f"an operation has no {name}", code="bad_response")
    datetime_raw = _text(raw["datetime"])
    codepro = raw.get("codepro")
    return Operation(
        operation_id=_text(raw["operation_id"]),
        status=_text(raw["status"]),
        datetime_raw=datetime_raw,
        datetime=parse_datetime(datetime_raw),
        direction=_text(raw.get("direction")),
        amount=_money(raw["amount"], "amount"),
        label=_text(raw.get("label")),
        type=_text(raw.get("type")),
        title=_text(raw.get("title")),
        amount_due=_money(raw["amount_due"], "amount_due") if raw.get("amount_due") is not None else None,
        fee=_money(raw["fee"], "fee") if raw.get("fee") is not None else None,
        sender=_text(raw["sender"]) if raw.get("sender") is not None else None,
        codepro=codepro if isinstance(codepro, bool) else None,
        raw=raw,
    )


def _rfc3339(name: str, value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime")
    return value.isoformat()


@implementer(IWalletAPI)
class WalletAPI:
    """``await api.operation_history(...)``, ``async for op in api.iter_history(...)``,
    ``await api.operation_details(id)``; ``await api.close()`` when done."""

    def __init__(self, reactor, api_url: str, token: str, pool: HTTPConnectionPool | None = None,
                 timeout: float = 30.0, trust_pem: bytes | None = None, insecure_local_tls: bool = False,
                 max_response: int = MAX_RESPONSE, clock=None):
        self._reactor = reactor
        self._clock = clock if clock is not None else reactor  # for the per-call timeout
        self._base = api_url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._max_response = max_response
        self._own_pool = pool is None
        self._client, self._pool = make_http_client(reactor, pool, trust_pem, insecure_local_tls, connect_timeout=timeout)

    async def close(self) -> None:
        if self._own_pool:
            await self._pool.closeCachedConnections()

    async def operation_history(self, type: str | Iterable[str] | None = None, label: str | None = None,
                                from_: datetime | str | None = None, till: datetime | str | None = None,
                                start_record: str | int | None = None, records: int | None = None,
                                details: bool = False) -> HistoryPage:
        params: list[tuple[str, str]] = []
        if type is not None:
            params.append(("type", type if isinstance(type, str) else " ".join(type)))
        if label is not None:
            params.append(("label", label))
        if from_ is not None:
            params.append(("from", _rfc3339("from_", from_)))
        if till is not None:
            params.append(("till", _rfc3339("till", till)))
        if start_record is not None:
            params.append(("start_record", str(start_record)))
        if records is not None:
            params.append(("records", str(records)))
        if details:
            params.append(("details", "true"))
        answer = await self._call("operation-history", params)
        operations = answer.get("operations", [])
        if not isinstance(operations, list):
            raise HTTPFailure("operations is not a list", code="bad_response")
        next_record = answer.get("next_record")
        return HistoryPage(tuple(parse_operation(op) for op in operations),
                           _text(next_record) if next_record not in (None, "") else None)

    async def iter_history(self, type: str | Iterable[str] | None = None, label: str | None = None,
                           from_: datetime | str | None = None, till: datetime | str | None = None,
                           records: int = 100, details: bool = False, max_pages: int = 1000) -> AsyncIterator[Operation]:
        """Every operation matching the filters, newest first, following next_record."""
        start: str | None = None
        seen: set[str] = set()
        for _ in range(max_pages):
            page = await self.operation_history(type, label, from_, till, start, records, details)
            for operation in page.operations:
                yield operation
            if page.next_record is None:
                return
            if page.next_record in seen:
                raise HTTPFailure("next_record does not advance", code="bad_response")
            seen.add(page.next_record)
            start = page.next_record
        raise HTTPFailure(f"history longer than {max_pages} pages", code="too_many_pages")

    async def all_operations(self, **filters) -> list[Operation]:
        return [operation async for operation in self.iter_history(**filters)]

    async def operation_details(self, operation_id: str) -> Operation:
        answer = await self._call("operation-details", [("operation_id", operation_id)])
        return parse_operation(answer)

    async def _call(self, method: str, params: list[tuple[str, str]]) -> dict:
        d = Deferred.fromCoroutine(self._request(method, params))
        timer = self._clock.callLater(self._timeout, d.cancel)
        try:
            return await d
        except (defer.CancelledError, WalletAPIError):
            if timer.active():
                raise
            # the cancellation surfaces as CancelledError or wrapped in a connection failure
            log.warn("wallet API {method} timed out after {timeout}s", method=method, timeout=self._timeout)
            raise Timeout(f"{method} took longer than {self._timeout}s") from None
        finally:
            if timer.active():
                timer.cancel()

    async def _request(self, method: str, params: list[tuple[str, str]]) -> dict:
        url = f"{self._base}/api/{method}"
        try:
            response = await self._client.post(
                url, data=params, allow_redirects=False, unbuffered=True,
                headers={"Authorization": f"Bearer {self._token}", "Accept": "application/json"})
            body = await read_body(response, self._max_response)
        except defer.CancelledError:
            raise
        except BodyTooLarge as e:
            raise HTTPFailure(str(e), code="too_large") from None
        except Exception as e:  # connection refused, TLS failure, reset...
            log.warn("wallet API {method} failed: {error}", method=method, error=type(e).__name__)
            raise HTTPFailure(f"{method}: {type(e).__name__}: {e}", code="connection_failed") from None
        status = response.code
        if status == 401:
            raise InvalidToken(f"{method}: the API token was refused ({_bearer_error(response) or 'invalid_token'})")
        if status == 403:
            raise InsufficientScope(f"{method}: the API token lacks the scope for this method")
        if status == 400:
            raise InvalidRequest(f"{method}: YooMoney refused the request as malformed")
        if status != 200:
            raise HTTPFailure(f"{method}: HTTP {status}", status=status)
        try:
            answer = json.loads(body.decode("utf-8"), parse_float=Decimal)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise HTTPFailure(f"{method}: the answer is not JSON", status=status, code="bad_response") from None
        if not isinstance(answer, dict):
            raise HTTPFailure(f"{method}: the answer is not a JSON object", status=status, code="bad_response")
        error = answer.get("error")
        if error:
            code = _text(error)[:100]
            if code.startswith("illegal_param"):
                raise IllegalParam(f"{method}: {code}", code)
            raise WalletAPIError(f"{method}: {code}", code)
        return answer


def _bearer_error(response) -> str | None:
    for value in response.headers.getRawHeaders(b"www-authenticate", []):
        text = value.decode("latin-1")
        marker = 'error="'
        if marker in text:
            return text.split(marker, 1)[1].split('"', 1)[0][:50]
    return None


__all__ = [
    "WalletAPI", "IWalletAPI", "Operation", "HistoryPage", "parse_operation", "WalletAPIError", "InvalidToken",
    "InsufficientScope", "InvalidRequest", "IllegalParam", "HTTPFailure", "Timeout",
]
