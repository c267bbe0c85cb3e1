"""Typed errors of the Telegram Bot API, built from its JSON answers.

Telegram answers ``{"ok": false, "error_code": N, "description": "...",
"parameters": {"retry_after": S}}``; callers decide by type, never by parsing text.
No error text ever contains the bot token (it is part of the request URL).
"""

from __future__ import annotations

# Telegram's retry_after is seconds; refuse absurd values from a broken or hostile server.
MAX_RETRY_AFTER = 3600


class TelegramError(Exception):
    """Any failure of a Bot API call."""

    retryable = False

    def __init__(self, method: str, error_code: int | None, description: str):
        self.method = method
        self.error_code = error_code
        self.description = description
        super().__init__(f"{method}: {error_code} {description}" if error_code else f"{method}: {description}")


class BadRequest(TelegramError):
    """400: our request was wrong (chat not found, can't parse entities, ...). Not retryable."""


class Unauthorized(TelegramError):
    """401: the token is wrong or revoked."""


class Forbidden(TelegramError):
    """403: the user blocked the bot, or the bot was removed from the chat."""


class NotFound(TelegramError):
    """404: unknown method (or a token the server does not know)."""


class Conflict(TelegramError):
    """409: a webhook is set or another process runs getUpdates."""

    retryable = True


class RetryAfter(TelegramError):
    """429: flood control; wait ``retry_after`` seconds."""

    retryable = True

    def __init__(self, method: str, description: str, retry_after: float):
        super().__init__(method, 429, description)
        self.retry_after = retry_after


class ServerError(TelegramError):
    """5xx, or an answer that is not Telegram-shaped JSON: try again later."""

    retryable = True


class NetworkError(TelegramError):
    """The call did not complete: connection refused/lost, timeout, oversized answer."""

    retryable = True

    def __init__(self, method: str, description: str):
        super().__init__(method, None, description)


def error_from_answer(method: str, http_status: int, answer: object) -> TelegramError:
    """The typed error for a Telegram answer with ``ok`` false (or a non-JSON HTTP error)."""
    if not isinstance(answer, dict):
        if http_status >= 500 or http_status == 0:
            return ServerError(method, http_status, "answer is not Telegram JSON")
        return ServerError(method, http_status, f"unexpected HTTP {http_status} without Telegram JSON")
    code = answer.get("error_code")
    if not isinstance(code, int) or isinstance(code, bool):
        code = http_status
    description = answer.get("description")
    if not isinstance(description, str):
        description = ""
    description = description[:300]
    if code == 429:
        params = answer.get("parameters")
        retry_after = params.get("retry_after") if isinstance(params, dict) else None
        if not isinstance(retry_after, (int, float)) or isinstance(retry_after, bool) or retry_after != retry_after:
            retry_after = 1
        return RetryAfter(method, description, float(min(max(retry_after, 0), MAX_RETRY_AFTER)))
    if code == 400:
        return BadRequest(method, code, description)
    if code == 401:
        return Unauthorized(method, code, description)
    if code == 403:
        return Forbidden(method, code, description)
    if code == 404:
        return NotFound(method, code, description)
    if code == 409:
        return Conflict(method, code, description)
    if code >= 500:
        return ServerError(method, code, description)
    return TelegramError(method, code, description)
