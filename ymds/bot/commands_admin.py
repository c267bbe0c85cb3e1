"""The bot's ``/admin`` command: a one-time dashboard sign-in link for the owner.

Only a user whose Telegram user id is in ``telegram.admins`` gets it, and only in a private
chat (a link posted in a group could be taken by anyone there).  Anyone else gets no
answer at all: the command's existence is not advertised.  The link is the same kind
``ymds admin-link`` prints (single use, 10 minutes), with the admin recorded as
``tg:<user id>`` in the ledger's audit events of what they do.
"""
from __future__ import annotations

import html
from typing import Any

from twisted.logger import Logger

from ymds.admin.sessions import AdminSessions, login_url
from ymds.admin.web import admin_sessions

log = Logger()

MINUTES = 10
TEXTS = {
    "ru": "Ссылка для входа в панель управления — откройте её один раз в течение {minutes} минут и никому "
          "не пересылайте:\n{url}",
    "en": "Your dashboard sign-in link: open it once within {minutes} minutes and do not forward it:\n{url}",
}
FAILED = {
    "ru": "Не получилось выдать ссылку: попробуйте ещё раз через минуту или выполните ymds admin-link на сервере.",
    "en": "Could not make a link: try again in a minute, or run ymds admin-link on the server.",
}


class AdminLinkCommand:
    """``/admin`` for the owner; ``sessions`` default to the bot's Redis and the reactor's clock."""

    def __init__(self, config: Any, redis: Any, clock: Any = None, sessions: AdminSessions | None = None):
        if clock is None:
            from twisted.internet import reactor as clock
        self.config = config
        self.sessions = sessions or admin_sessions(redis, clock, config)

    def allowed(self, user_id: int | None, chat_kind: str) -> bool:
        """True only for a listed admin's user id in a private chat."""
        return chat_kind == "private" and user_id is not None and user_id in self.config.telegram.admins

    async def text_for(self, user_id: int | None, lang: str) -> str:
        """The message carrying a fresh link (or a one-sentence failure)."""
        try:
            token = await self.sessions.issue_login_token(MINUTES, admin=f"tg:{user_id}")
        except Exception as e:
            log.warn("bot: /admin link not issued: {error}", error=str(e) or type(e).__name__)
            return FAILED.get(lang, FAILED["en"])
        url = login_url(self.config.server.public_url, token)
        log.info("bot: dashboard sign-in link issued to admin {user_id}", user_id=user_id)
        return TEXTS.get(lang, TEXTS["en"]).format(minutes=MINUTES, url=html.escape(url))
