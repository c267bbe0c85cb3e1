"""Telegram Bot API client over treq, with its own connection pool.

URLs are ``{api_url}/bot{token}/{method}`` (so a local Bot API server works too).  The
token is in every URL, so nothing here logs or puts a URL into an exception: errors
name the method only.
"""

from __future__ import annotations

import json

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool, RequestNotSent, ResponseNeverReceived
from twisted.web.http_headers import Headers
from zope.interface import implementer

from treq.client import HTTPClient

from ymds.bot.errors import NetworkError, ServerError, TelegramError, error_from_answer
from ymds.bot.interfaces import IBotAPI
from ymds.util.http import BodyTooLarge, QuietEndpointFactory, read_body

log = Logger()

# getUpdates with 100 updates of long texts fits well below this; anything larger is not Telegram.
MAX_ANSWER_BYTES = 8 * 1024 * 1024


@implementer(IBotAPI)
class BotAPI:
    """One bot's API client.

    ``timeout`` bounds each call (connect, request, and reading the whole answer);
    getUpdates adds its long-poll ``timeout`` on top.
    """

    def __init__(self, reactor, token: str, api_url: str = "https://api.telegram.org",
                 timeout: float = 30.0, max_connections: int = 8):
        if not token:
            raise ValueError("a bot token is required")
        self._reactor = reactor
        self._base = f"{api_url.rstrip('/')}/bot{token}/"
        self._timeout = timeout
        self.retried_connections = 0  # requests sent again after a closed pooled connection
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = max_connections
        self.pool.cachedConnectionTimeout = 120
        self._http = HTTPClient(Agent.usingEndpointFactory(
            reactor, QuietEndpointFactory(reactor, connect_timeout=10), pool=self.pool))

    def __repr__(self) -> str:
        return "<BotAPI>"  # never the URL: it holds the token

    async def close(self) -> None:
        await self.pool.closeCachedConnections()

    async def call(self, method: str, params: dict | None = None, timeout: float | None = None):
        """Call ``method`` with JSON ``params``; Telegram's ``result`` or a TelegramError."""
        body = {k: v for k, v in (params or {}).items() if v is not None}
        limit = self._timeout if timeout is None else timeout
        d = Deferred.fromCoroutine(self._request_once_more(method, body))
        timer = self._reactor.callLater(limit, d.cancel)
        try:
            return await d
        except TelegramError:
            raise
        except Exception as e:
            if not timer.active():  # our timer cancelled it, whatever error that surfaced as
                raise NetworkError(method, f"no answer within {limit:g}s") from None
            if isinstance(e, CancelledError):
                raise
            if isinstance(e, BodyTooLarge):
                raise NetworkError(method, f"answer larger than {MAX_ANSWER_BYTES} bytes") from None
            # connection refused/lost, DNS, TLS: the type says enough, and carries no URL
            raise NetworkError(method, type(e).__name__) from None
        finally:
            if timer.active():
                timer.cancel()

    async def _request_once_more(self, method: str, body: dict):
        """``_request``, tried a second time on a fresh connection when the first failed before
        any answer: Telegram closes idle keep-alive connections, and a request written to one it
        has just closed fails this way although Telegram never saw it.  (Telegram may have seen
        it if the connection died later; a duplicate is the accepted risk of ymds/bot/sender.py.)"""
        try:
            return await self._request(method, body)
        except (ResponseNeverReceived, RequestNotSent) as e:
            if any(reason.check(CancelledError) for reason in getattr(e, "reasons", ())):
                raise  # our own timeout cancelled it: call() reports that
            self.retried_connections += 1
            log.info("bot: {method} met a closed pooled connection; trying once more", method=method)
            return await self._request(method, body)

    async def _request(self, method: str, body: dict):
        response = await self._http.request(
            "POST", self._base + method, json=body, allow_redirects=False, unbuffered=True,
            headers=Headers({b"Accept": [b"application/json"]}))  # fresh: treq adds to it
        raw = await read_body(response, MAX_ANSWER_BYTES)
        try:
            answer = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            answer = None
        if isinstance(answer, dict) and answer.get("ok") is True and "result" in answer:
            return answer["result"]
        if isinstance(answer, dict) and answer.get("ok") is False:
            raise error_from_answer(method, response.code, answer)
        if response.code >= 500:
            raise error_from_answer(method, response.code, None)
        raise ServerError(method, response.code, "answer is not Telegram JSON")

    # --- the methods ymds uses -------------------------------------------------------

    async def getMe(self):
        return await self.call("getMe")

    async def deleteWebhook(self, drop_pending_updates: bool = False):
        return await self.call("deleteWebhook", {"drop_pending_updates": drop_pending_updates})

    async def getUpdates(self, offset: int | None = None, timeout: int = 0, limit: int = 100,
                         allowed_updates: list[str] | None = None):
        # The HTTP timeout must exceed the long-poll timeout, or every idle poll fails.
        result = await self.call("getUpdates", {
            "offset": offset, "timeout": timeout, "limit": limit, "allowed_updates": allowed_updates,
        }, timeout=timeout + self._timeout)
        if not isinstance(result, list):
            raise ServerError("getUpdates", None, "result is not a list")
        return result

    async def sendMessage(self, chat_id, text: str, reply_markup: dict | None = None,
                          disable_web_page_preview: bool = True):
        return await self.call("sendMessage", {
            "chat_id": chat_id, "text": text, "parse_mode": "HTML", "reply_markup": reply_markup,
            "link_preview_options": {"is_disabled": True} if disable_web_page_preview else None,
        })

    async def createChatInviteLink(self, chat_id, member_limit: int | None = None,
                                   expire_date: int | None = None, name: str | None = None):
        return await self.call("createChatInviteLink", {
            "chat_id": chat_id, "member_limit": member_limit, "expire_date": expire_date, "name": name,
        })

    async def banChatMember(self, chat_id, user_id: int, until_date: int | None = None):
        return await self.call("banChatMember", {"chat_id": chat_id, "user_id": user_id, "until_date": until_date})

    async def unbanChatMember(self, chat_id, user_id: int, only_if_banned: bool = True):
        return await self.call("unbanChatMember", {
            "chat_id": chat_id, "user_id": user_id, "only_if_banned": only_if_banned,
        })

    async def answerCallbackQuery(self, callback_query_id: str, text: str | None = None):
        return await self.call("answerCallbackQuery", {"callback_query_id": callback_query_id, "text": text})
