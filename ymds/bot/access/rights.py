"""Does the bot have the rights it needs in each paid chat?  One line per problem."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ymds.bot.access.api import ChatAdminAPI
from ymds.bot.errors import TelegramError

# The rights guarding a chat needs: invite links and join requests, and removing people.
REQUIRED_RIGHTS = ("can_invite_users", "can_restrict_members")
_RIGHT_NAMES = {
    "can_invite_users": ("Пригласительные ссылки", "Invite users via link"),
    "can_restrict_members": ("Блокировка пользователей", "Ban users"),
}


@dataclass(frozen=True)
class RightsProblem:
    """``kind``: "unseen" (the bot cannot see the chat), "not_admin", "missing_right"
    (``right`` names it) or "unchecked" (Telegram could not be asked; ``detail`` says why)."""

    chat_id: int
    kind: str
    right: str = ""
    detail: str = ""

    def line(self) -> str:
        """One line, Russian then English, saying what to do."""
        c = self.chat_id
        if self.kind == "missing_right":
            ru, en = _RIGHT_NAMES.get(self.right, (self.right, self.right))
            return (f"Чат {c}: дайте боту право «{ru}» ({self.right}). / "
                    f"Chat {c}: give the bot the right “{en}” ({self.right}).")
        if self.kind == "not_admin":
            return (f"Чат {c}: сделайте бота администратором с правами «Пригласительные ссылки» и «Блокировка "
                    f"пользователей». / Chat {c}: make the bot an administrator with the rights “Invite users via "
                    f"link” and “Ban users”.")
        if self.kind == "unseen":
            return (f"Чат {c}: бот не видит чат ({self.detail}) — добавьте его туда администратором. / "
                    f"Chat {c}: the bot cannot see the chat ({self.detail}); add it there as an administrator.")
        return (f"Чат {c}: права бота не проверены ({self.detail}) — повторите проверку позже. / "
                f"Chat {c}: the bot's rights were not checked ({self.detail}); check again later.")


def problems_of(chat_id: int, member: object) -> list[RightsProblem]:
    """The problems in the bot's own ChatMember object for ``chat_id`` (empty: all is well)."""
    status = member.get("status") if isinstance(member, dict) else None
    if status == "creator":
        return []
    if status != "administrator":
        return [RightsProblem(chat_id, "not_admin")]
    assert isinstance(member, dict)
    return [RightsProblem(chat_id, "missing_right", right)
            for right in REQUIRED_RIGHTS if member.get(right) is not True]


async def check_bot_rights(api: ChatAdminAPI, chats: Iterable[int], bot_id: int | None = None) -> list[RightsProblem]:
    """Ask Telegram (getChatMember on the bot itself) about every chat; every problem found.

    Never raises for a Telegram failure: a chat that could not be asked is an "unchecked"
    problem, so that one bad chat does not hide the others."""
    if bot_id is None:
        bot_id = int((await api.getMe())["id"])
    problems: list[RightsProblem] = []
    for chat_id in dict.fromkeys(chats):
        try:
            member = await api.getChatMember(chat_id, bot_id)
        except TelegramError as e:
            kind = "unchecked" if e.retryable else "unseen"
            problems.append(RightsProblem(chat_id, kind, detail=e.description or type(e).__name__))
            continue
        problems.extend(problems_of(chat_id, member))
    return problems
