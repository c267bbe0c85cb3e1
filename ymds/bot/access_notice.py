"""When the bot cannot make a buyer's invitation (it lacks a right in the paid chat, the chat
is not found, Telegram refuses), the buyer is told at once that the invitation comes a little
later, and the owner is told exactly which right is missing in which chat.

The same grant is then tried again by itself every :data:`RETRY_EVERY` seconds (a delayed
job with the same message key, so the invitation is sent once) until it succeeds, i.e. once
the owner gives the right; after :data:`RETRY_FOR` seconds of failures it becomes a dead
letter as before (``ymds replay --queue bot --all``).  Both notices are keyed by the job, so
a retry that fails again tells nobody twice.  Telegram's 5xx and 429 answers are not
refusals: the queue's own retries handle them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from twisted.logger import Logger

from ymds.bot import texts
from ymds.bot.jobs import AccessOutcome, BotClient, GrantAccess
from ymds.bot.shop_texts import contact_part
from ymds.queue.errors import PermanentJobError

log = Logger()

#: seconds between automatic retries of a failed invitation
RETRY_EVERY = 300.0
#: seconds of failed retries after which the grant is a dead letter
RETRY_FOR = 86400.0

GrantHandler = Callable[[GrantAccess], Awaitable[AccessOutcome]]

_BUYER = {
    "ru": "Оплата получена, подписка действует. Приглашение в канал придёт чуть позже: владелец уже знает, "
          "что его нужно выдать.",
    "en": "Your payment is in and your subscription is active. The invitation to the channel will come a "
          "little later: the owner has been told to issue it.",
}
_OWNER = {
    "ru": "🔑 Бот не смог выдать приглашение подписчику (чат {chat_id}). {problems} Когда вы дадите боту это "
          "право, приглашение уйдёт само в течение нескольких минут. Если бот так и не сможет его выдать за сутки, "
          "задание попадёт в «мёртвые»: отправьте его командой <code>ymds replay --queue bot --all</code>.",
    "en": "🔑 The bot could not issue an invitation to a subscriber (chat {chat_id}). {problems} Once you give the "
          "bot this right, the invitation is sent automatically within a few minutes. If it still fails after a day, "
          "the job becomes a dead letter: send it with <code>ymds replay --queue bot --all</code>.",
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
            if not await retry_later(tasks, job):
                raise
            return AccessOutcome(granted=False, reason=f"invitation failed; tried again in {RETRY_EVERY:g} s")
    return grant_access


async def retry_later(tasks: Any, job: GrantAccess) -> bool:
    """Schedule ``job`` again in RETRY_EVERY seconds (same message key); False once the
    retries have lasted RETRY_FOR (the failure then goes to the dead letters)."""
    if (job.attempt + 1) * RETRY_EVERY > RETRY_FOR:
        log.warn("bot: invitation for {chat_id} still failing after {attempts} retries; a dead letter now",
                 chat_id=job.chat_id, attempts=job.attempt)
        return False
    key = job.dedup_key()
    again = GrantAccess(job.chat_id, job.ends_at, key, job.attempt + 1)
    # one enqueue key per attempt: a redelivery of this failed job schedules the retry once
    await BotClient(tasks.queue).grant_access_later(again, RETRY_EVERY, key=f"{key}:retry:{again.attempt}")
    return True


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
