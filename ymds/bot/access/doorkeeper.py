"""The door of every paid chat: join requests decided by subscription, intruders removed.

``chat_join_request``: approved when the user's active subscription covers the chat (or
the user is one of ``telegram.admins``: an owner testing their own link gets in); otherwise the user is told in private how to subscribe (while Telegram still lets the bot
write to them: before the request is answered) and the request is declined.

``chat_member``: whoever becomes a member of a paid chat without a subscription covering
it (an old link, added by an administrator, a request approved by a person...) is removed:
banned for a short while, then unbanned at once so that they can come back after paying.
Chat administrators, the bot itself and ``telegram.admins`` are never removed; the
person's status now is asked first (getChatMember), so an old update removes nobody twice.  Each
removal is logged (chat and reason, no personal data), counted with ``count_removal(reason)``
and collected into one owner summary per burst (RemovalDigest).

``my_chat_member``: when the bot loses a right it needs in a paid chat, the owner is told.

A failure that may pass (network, 5xx, 429, the subscription check) is raised, so that the
caller keeps the update and hands it over again; every step is safe to repeat.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable, Protocol

from twisted.logger import Logger

from ymds.bot.access.api import ChatAdminAPI, Clock
from ymds.bot.access.digest import RemovalDigest
from ymds.bot.access.rights import problems_of
from ymds.bot.access.texts import say
from ymds.bot.errors import BadRequest, Forbidden, TelegramError

log = Logger()

#: The update kinds the poller must name in allowed_updates for the door to work
#: (Telegram sends chat_member only to a bot that asks for it).
ALLOWED_UPDATES = ("chat_member", "chat_join_request", "my_chat_member")

# Telegram answers these when the request was already answered (by us, earlier, or a person).
_ALREADY_ANSWERED = ("HIDE_REQUESTER_MISSING", "USER_ALREADY_PARTICIPANT")
# A ban refused because the person is an administrator or the owner: not an intruder.
_NOT_REMOVABLE = ("administrator", "owner", "can't restrict self")


class AccessPolicy(Protocol):
    """Who may be in a paid chat (backed by billing)."""

    async def covers(self, user_id: int, chat_id: int) -> bool:
        """True when the user's active subscription includes ``chat_id``."""

    async def is_admin(self, user_id: int) -> bool:
        """True for the owner's people (``telegram.admins``): never removed."""


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _is_member(member: object) -> bool:
    if not isinstance(member, dict):
        return False
    status = member.get("status")
    return (status in ("creator", "administrator", "member")
            or (status == "restricted" and member.get("is_member") is True))


def removal_reason(change: dict) -> str:
    """How the person got in: "link", "approved" (a join request), "added" or "other"."""
    link = change.get("invite_link")
    if isinstance(link, dict):
        return "approved" if link.get("creates_join_request") else "link"
    if change.get("via_join_request"):
        return "approved"
    user = _dict(_dict(change.get("new_chat_member")).get("user"))
    actor = _dict(change.get("from"))
    if _int(actor.get("id")) not in (None, _int(user.get("id"))):
        return "added"
    return "other"


class DoorKeeper:
    """Decides join requests and removes intruders in ``paid_chats``; other chats are ignored."""

    def __init__(self, api: ChatAdminAPI, policy: AccessPolicy, paid_chats: Iterable[int], clock: Clock,
                 digest: RemovalDigest, count_removal: Callable[[str], None] = lambda reason: None,
                 alert: Callable[[str], Awaitable[Any]] | None = None, language: str = "ru",
                 bot_id: int | None = None, ban_seconds: int = 120):
        self._api = api
        self._policy = policy
        self.paid_chats = frozenset(paid_chats)
        self._clock = clock
        self._digest = digest
        self._count_removal = count_removal
        self._alert = alert
        self._language = language
        self._bot_id = bot_id
        # Telegram lifts a ban by itself after until_date (30 s at least): a safety net in
        # case the unban that follows at once never gets through.
        self._ban_seconds = max(31, ban_seconds)

    async def bot_id(self) -> int:
        if self._bot_id is None:
            self._bot_id = int((await self._api.getMe())["id"])
        return self._bot_id

    async def handle(self, update: dict) -> str:
        """Act on one update; the outcome ("approved", "declined", "removed", "kept",
        "gone" (no longer there), "failed", "ignored") for logs and tests."""
        if isinstance(update.get("chat_join_request"), dict):
            return await self.on_join_request(update["chat_join_request"])
        if isinstance(update.get("chat_member"), dict):
            return await self.on_chat_member(update["chat_member"])
        if isinstance(update.get("my_chat_member"), dict):
            return await self.on_my_chat_member(update["my_chat_member"])
        return "ignored"

    def _chat(self, event: dict) -> tuple[int | None, str]:
        chat = _dict(event.get("chat"))
        chat_id = _int(chat.get("id"))
        title = chat.get("title")
        title = title if isinstance(title, str) else str(chat_id)
        return (chat_id if chat_id in self.paid_chats else None), title

    def _language_of(self, user: dict) -> str:
        code = user.get("language_code")
        if not isinstance(code, str) or not code:
            return self._language
        return "ru" if code.lower().startswith("ru") else "en"

    # --- join requests ----------------------------------------------------------------------

    async def on_join_request(self, request: dict) -> str:
        chat_id, title = self._chat(request)
        user = _dict(request.get("from"))
        user_id = _int(user.get("id"))
        if chat_id is None or user_id is None:
            return "ignored"
        # telegram.admins are let in too: an owner testing their own link should get in.
        if await self._policy.is_admin(user_id) or await self._policy.covers(user_id, chat_id):
            await self._answer(self._api.approveChatJoinRequest, chat_id, user_id)
            log.info("access: join request to {chat_id} approved", chat_id=chat_id)
            return "approved"
        # Telegram lets the bot write to the requester only until the request is answered.
        await self._tell_declined(_int(request.get("user_chat_id")) or user_id, title, self._language_of(user))
        await self._answer(self._api.declineChatJoinRequest, chat_id, user_id)
        log.info("access: join request to {chat_id} declined (no subscription covering it)", chat_id=chat_id)
        return "declined"

    async def _answer(self, method: Callable[[int, int], Awaitable[Any]], chat_id: int, user_id: int) -> None:
        try:
            await method(chat_id, user_id)
        except BadRequest as e:
            if not any(marker in e.description for marker in _ALREADY_ANSWERED):
                raise

    async def _tell_declined(self, private_chat: int, title: str, language: str) -> None:
        text = say(language, "declined", chat=title)
        button = {"inline_keyboard": [[{"text": say(language, "subscribe_button"), "callback_data": "subscribe"}]]}
        try:
            await self._api.sendMessage(private_chat, text, button)
        except TelegramError as e:  # cannot write to them (privacy, blocked, flood): decline all the same
            log.info("access: could not tell a declined requester why: {error}",
                     error=e.description or type(e).__name__)

    # --- members ----------------------------------------------------------------------------

    async def on_chat_member(self, change: dict) -> str:
        chat_id, title = self._chat(change)
        old, new = change.get("old_chat_member"), change.get("new_chat_member")
        if chat_id is None or not isinstance(new, dict) or _is_member(old) or not _is_member(new):
            return "ignored"  # not a paid chat, or not someone becoming a member
        if new.get("status") in ("creator", "administrator"):
            return "kept"
        user = _dict(new.get("user"))
        user_id = _int(user.get("id"))
        if user_id is None:
            return "ignored"
        return await self.remove_uncovered(chat_id, title, user_id, removal_reason(change))

    async def remove_uncovered(self, chat_id: int, title: str, user_id: int, reason: str,
                               check_cover: bool = True) -> str:
        """Remove ``user_id`` from ``chat_id`` unless they may be there (the bot,
        ``telegram.admins``, a chat administrator, a covering subscription): "removed",
        "kept", "gone" (not a member now) or "failed".  Used for chat_member updates, when a
        subscription's grace ends ("expired") and by ``ymds members --fix`` ("audit");
        ``check_cover=False`` when the owner revoked the subscription (no grace then)."""
        if user_id == await self.bot_id() or await self._policy.is_admin(user_id):
            return "kept"
        if check_cover and await self._policy.covers(user_id, chat_id):
            return "kept"
        # The update may be old (handed over again, or the person already left or was
        # promoted): act on what the chat is now, so that nobody is counted twice.
        now = await self._api.getChatMember(chat_id, user_id)
        if not _is_member(now):
            return "gone"
        if _dict(now).get("status") in ("creator", "administrator"):
            return "kept"
        return await self.remove(chat_id, title, user_id, reason)

    async def remove(self, chat_id: int, title: str, user_id: int, reason: str) -> str:
        """Ban then unban (so that they may come back after paying); "removed", "kept"
        (an administrator: Telegram refused) or "failed" (the bot lacks the right)."""
        until = int(self._clock.seconds()) + self._ban_seconds
        try:
            await self._api.banChatMember(chat_id, user_id, until_date=until)
        except (BadRequest, Forbidden) as e:
            if isinstance(e, BadRequest) and any(m in e.description for m in _NOT_REMOVABLE):
                return "kept"
            log.error("access: could not remove a member without a subscription from {chat_id}: {error}",
                      chat_id=chat_id, error=e.description)
            self._digest.failed(chat_id, title)
            return "failed"
        try:
            await self._api.unbanChatMember(chat_id, user_id, only_if_banned=True)
        except (BadRequest, Forbidden) as e:  # the ban ends by itself at until_date
            log.warn("access: unban after a removal from {chat_id} failed: {error}", chat_id=chat_id,
                     error=e.description)
        self._count_removal(reason)
        log.info("access: removed a member without a subscription from {chat_id} (reason: {reason})",
                 chat_id=chat_id, reason=reason)
        self._digest.removed(chat_id, title, reason)
        return "removed"

    # --- the bot itself -----------------------------------------------------------------------

    async def on_my_chat_member(self, change: dict) -> str:
        chat_id, _ = self._chat(change)
        if chat_id is None:
            return "ignored"
        problems = problems_of(chat_id, change.get("new_chat_member"))
        if not problems:
            return "kept"
        for problem in problems:
            log.error("access: the bot cannot guard chat {chat_id}: {problem}", chat_id=chat_id, problem=problem.kind)
        if self._alert is not None:
            try:
                await self._alert("\n".join("⚠️ " + p.line() for p in problems))
            except Exception as e:
                log.warn("access: the rights alert could not be sent: {error}", error=str(e) or type(e).__name__)
        return "failed"
