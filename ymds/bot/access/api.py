"""The Bot API calls that guarding paid chats needs, as one typed interface.

:class:`ChatAdminAPI` is what the access code depends on; :class:`BotCalls` implements it
over anything with ``async call(method, params)`` (ymds.bot.api.BotAPI), so the existing
client needs no new methods.  Every method raises ymds.bot.errors.TelegramError subclasses
as BotAPI does.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable, Protocol


class ChatAdminAPI(Protocol):
    """Telegram methods used to guard chats; each returns Telegram's ``result``."""

    async def getMe(self) -> dict: ...

    async def getChatMember(self, chat_id: int, user_id: int) -> dict: ...

    async def createChatInviteLink(self, chat_id: int, *, creates_join_request: bool = False,
                                   expire_date: int | None = None, name: str | None = None,
                                   member_limit: int | None = None) -> dict: ...

    async def revokeChatInviteLink(self, chat_id: int, invite_link: str) -> dict: ...

    async def approveChatJoinRequest(self, chat_id: int, user_id: int) -> bool: ...

    async def declineChatJoinRequest(self, chat_id: int, user_id: int) -> bool: ...

    async def banChatMember(self, chat_id: int, user_id: int, until_date: int | None = None) -> bool: ...

    async def unbanChatMember(self, chat_id: int, user_id: int, only_if_banned: bool = True) -> bool: ...

    async def sendMessage(self, chat_id: int, text: str, reply_markup: dict | None = None) -> dict: ...


class Timer(Protocol):
    def active(self) -> bool: ...

    def cancel(self) -> None: ...


class Clock(Protocol):
    """The part of the reactor (or task.Clock in tests) the access code uses."""

    def seconds(self) -> float: ...

    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any) -> Timer: ...


class Caller(Protocol):
    def call(self, method: str, params: dict | None = None) -> Awaitable[Any]: ...


class BotCalls:
    """:class:`ChatAdminAPI` over ``caller.call(method, params)`` (None values are left out)."""

    def __init__(self, caller: Caller):
        self._caller = caller

    async def _call(self, method: str, **params: Any) -> Any:
        return await self._caller.call(method, {k: v for k, v in params.items() if v is not None})

    async def getMe(self) -> dict:
        return await self._call("getMe")

    async def getChatMember(self, chat_id: int, user_id: int) -> dict:
        return await self._call("getChatMember", chat_id=chat_id, user_id=user_id)

    async def createChatInviteLink(self, chat_id: int, *, creates_join_request: bool = False,
                                   expire_date: int | None = None, name: str | None = None,
                                   member_limit: int | None = None) -> dict:
        return await self._call("createChatInviteLink", chat_id=chat_id, expire_date=expire_date, name=name,
                                member_limit=member_limit, creates_join_request=creates_join_request or None)

    async def revokeChatInviteLink(self, chat_id: int, invite_link: str) -> dict:
        return await self._call("revokeChatInviteLink", chat_id=chat_id, invite_link=invite_link)

    async def approveChatJoinRequest(self, chat_id: int, user_id: int) -> bool:
        return await self._call("approveChatJoinRequest", chat_id=chat_id, user_id=user_id)

    async def declineChatJoinRequest(self, chat_id: int, user_id: int) -> bool:
        return await self._call("declineChatJoinRequest", chat_id=chat_id, user_id=user_id)

    async def banChatMember(self, chat_id: int, user_id: int, until_date: int | None = None) -> bool:
        return await self._call("banChatMember", chat_id=chat_id, user_id=user_id, until_date=until_date)

    async def unbanChatMember(self, chat_id: int, user_id: int, only_if_banned: bool = True) -> bool:
        return await self._call("unbanChatMember", chat_id=chat_id, user_id=user_id, only_if_banned=only_if_banned)

    async def sendMessage(self, chat_id: int, text: str, reply_markup: dict | None = None) -> dict:
        return await self._call("sendMessage", chat_id=chat_id, text=text, parse_mode="HTML",
                                reply_markup=reply_markup, link_preview_options={"is_disabled": True})
