"""What the REST API's route groups share: the error every route answers with, the checks of
a request's fields, query parameters and Idempotency-Key header, and the members ApiResource
gives each group of routes it mixes in (ymds.api.subscribers, ymds.api.selling)."""

from __future__ import annotations

import re
from typing import Any, Collection, Mapping
from urllib.parse import parse_qs

from ymds.api.openapi import IDEMPOTENCY_KEY_PATTERN

_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


class ApiError(Exception):
    """An answer to the client: HTTP ``status``, a stable ``code``, a ``message`` saying what to
    do, the ``param`` it is about (if one) and extra response ``headers``."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers or {}


def invalid(message: str, param: str | None = None) -> ApiError:
    """The 422 ``invalid_request`` answer."""
    return ApiError(422, "invalid_request", message, param)


def refuse_unknown_fields(body: Mapping[str, Any], allowed: Collection[str]) -> None:
    """Raise 422 naming the first field of ``body`` (in sorted order) that ``allowed`` lacks."""
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise invalid(f"unknown field {unknown[0][:40]!r}", unknown[0][:40])


def query_parameters(request: Any, allowed: Collection[str]) -> dict[str, str]:
    """The request's query parameters, name -> value; 422 for a name not in ``allowed`` or
    given more than once."""
    query = parse_qs(request.uri.partition(b"?")[2].decode("utf-8", "replace"), keep_blank_values=True)
    for name, values in query.items():
        if name not in allowed:
            raise invalid(f"unknown parameter {name[:40]!r}", name[:40])
        if len(values) > 1:
            raise invalid(f"{name} given more than once", name)
    return {name: values[0] for name, values in query.items()}


def idempotency_key(request: Any) -> str | None:
    """The Idempotency-Key header's text, None without one; 422 unless 1-255 printable ASCII."""
    header = request.getHeader(b"idempotency-key")
    if header is None:
        return None
    text: str = header.decode("latin-1")
    if not _IDEMPOTENCY_KEY.fullmatch(text):
        raise invalid("Idempotency-Key must be 1-255 printable ASCII characters", "Idempotency-Key")
    return text


class RouteGroup:
    """Base of a group of route handlers mixed into ApiResource, which supplies these members:
    ``_ask`` calls billing and maps its failures to ApiErrors, ``_body`` reads the JSON object
    body (or raises the ApiError saying what is wrong with it)."""

    queue: Any
    call_timeout: float

    def _ask(self, task: str, call: Any) -> Any:
        raise NotImplementedError

    def _body(self, request: Any) -> dict:
        raise NotImplementedError
