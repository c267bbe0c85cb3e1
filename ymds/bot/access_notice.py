"""When the bot cannot make a buyer's invitation (it lacks a right in the paid chat, or
Telegram refuses), the buyer is told at once that the invitation comes a little later, and
the owner is told exactly which right is missing in which chat and how to send the waiting
invitations once it is fixed.

The grant job still fails (a dead letter, as before): ``ymds replay --queue bot --all`` after
the fix runs it again, and the buyer then gets the invitation.  Both messages are keyed by
the job, so a replay that fails again tells nobody twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from twisted.logger import Logger

from ymds.bot import texts
from ymds.bot.jobs import AccessOutcome, GrantAccess
from ymds.bot.shop_texts import contact_part
from ymds.queue.errors import PermanentJobError

log = Logger()

GrantHandler = Callable[[GrantAccess], Awaitable[AccessOutcome]]

_BUYER = {
    "ru": "Оплата получена, подписка действует. Приглашение в канал придёт чуть позже: владелец уже знает, "
          "что его нужно выдать.",
    "en": "Your payment is in and your subscription is active. The invitation to the channel will come a "
          "little later: the owner has been told to issue it.",
}
_OWNER = {
    "ru": "🔑 Бот не смог выдать приглашение подписчику (чат {chat_id}). {problems} Когда исправите, отправьте "
          "ждущие приглашения: <code>ymds replay --queue bot --all</code>.",
    "en": "🔑 The bot could not issue an invitation to a subscriber (chat {chat_id}). {problems} Once fixed, send "
          "the waiting invitations: <code>ymds replay --queue bot --all</code>.",
}


def is_invitation_failure(error: PermanentJobError) -> bool:
    """The grant paths' refusal to make an invitation (as opposed to a bug in our own text)."""
    return str(error).startswith("cannot create an invite link")


def noticed(tasks: Any, grant: GrantHandler) -> GrantHandler:
    """``grant`` (BotTasks.grant_access) with the buyer's and the owner's notices on failure."""
    async def grant_access(job: GrantAccess) -> AccessOutcome:
        try:
            return await grant(job)
        except PermanentJobError as e:
            if not is_invitation_failure(e):
                raise
            await tell(tasks, job, str(e))
            raise
    return grant_access


async def tell(tasks: Any, job: GrantAccess, error: str) -> None:
    """The buyer's and every admin's message for ``job``'s failed invitation (once each)."""
    key = job.dedup_key()
    lang = await tasks.language(job.chat_id)
    buyer = (_BUYER.get(lang) or _BUYER["ru"]) + contact_part(tasks.config, lang)
    await tasks.sender.send(f"{key}:delayed", job.chat_id, buyer)
    problems = await rights_problems(tasks, error)
    for admin in tasks.config.telegram.admins:
        admin_lang = await tasks.language(admin)
        text = (_OWNER.get(admin_lang) or _OWNER["ru"]).format(chat_id=job.chat_id, problems=texts.escape(problems))
        await tasks.sender.send(f"{key}:delayed:{admin}", admin, text)
    log.warn("bot: invitation for {chat_id} delayed: {problems}", chat_id=job.chat_id, problems=problems)


async def rights_problems(tasks: Any, error: str) -> str:
    """Which right is missing in which chat (one sentence each, from the access module's
    check); Telegram's own refusal when the check finds nothing or cannot be made."""
    access = getattr(tasks, "access", None)
    chats = tuple(access.paid_chats) if access is not None else (tasks.config.telegram.channel_id,)
    try:
        from ymds.bot.access.api import BotCalls
        from ymds.bot.access.rights import check_bot_rights
        api = access.api if access is not None else BotCalls(tasks.api)
        found = await check_bot_rights(api, [c for c in chats if c])
    except Exception as e:  # getMe failed: Telegram's refusal says enough
        log.info("bot: rights not checked after a failed invitation: {error}", error=str(e) or type(e).__name__)
        found = []
    lines = [problem.line() for problem in found]
    return " ".join(lines) if lines else error
