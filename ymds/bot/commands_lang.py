"""A bot that explains itself (issue 19): which language a user is answered in, the command
menu Telegram shows (setMyCommands in ru and en), and the bot's @username for the web role.

Language: the user's own choice (/lang, kept in Redis as ``bot:lang:<chat>``) wins; until
they choose, the ``language_code`` Telegram sends with each of their messages decides
(``ru*`` -> ru, any other code -> en), remembered as ``bot:lang:auto:<chat>`` for the
messages the bot sends on its own (confirmations, reminders); without either,
``telegram.language``.

Username: the web role never calls Telegram, so the bot role writes the username getMe
gives to Redis (``bot:username``) when it starts; the landing page's "Subscribe in
Telegram" buttons read it from there (``telegram.bot_username`` in the config wins).
"""

from __future__ import annotations

from typing import Any, Mapping

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger

log = Logger()

LANGUAGES = ("ru", "en")
AUTO_TTL = 180 * 86400  # a user silent for half a year is asked again by their next message
INTRODUCE_RETRIES = (5, 30, 120, 600)  # seconds between attempts when Telegram does not answer at start

#: the command menu, per language (the same commands the bot answers; /start is implied)
COMMAND_MENU: Mapping[str, tuple[tuple[str, str], ...]] = {
    "ru": (("subscribe", "Оформить или продлить подписку"), ("status", "Моя подписка и ссылка в канал"),
           ("promo", "Применить промокод"), ("redeem", "Активировать подарочный код"),
           ("gift", "Подарить подписку"), ("lang", "Язык / Language"), ("help", "Что умеет бот")),
    "en": (("subscribe", "Subscribe or renew"), ("status", "My subscription and the channel link"),
           ("promo", "Apply a promo code"), ("redeem", "Redeem a gift code"),
           ("gift", "Give a subscription as a gift"), ("lang", "Language / Язык"), ("help", "What the bot does")),
}


def language_of_code(code: object) -> str | None:
    """Telegram's ``language_code`` as one of ours: ru for ``ru``/``ru-RU``, en for any other
    code, None when there is none."""
    if not isinstance(code, str) or not code.strip():
        return None
    return "ru" if code.strip().lower().startswith("ru") else "en"


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def username_key(prefix: str) -> str:
    """Where the bot role keeps its @username for the web role."""
    return f"{prefix}:bot:username"


class LanguagePreference:
    """``of(chat_id)``: the language to answer a chat in; ``observe(chat_id, user)``: note
    the ``language_code`` of a user's message (private chats only)."""

    def __init__(self, config: Any, store: Any):
        self.default = config.telegram.language
        self.store = store
        self.prefix = config.redis.prefix

    def _auto_key(self, chat_id: int) -> str:
        return f"{self.prefix}:bot:lang:auto:{int(chat_id)}"

    async def _redis(self, *args: Any) -> Any:
        d = self.store.redis.execute(*args)
        return await d if isinstance(d, Deferred) else d

    async def of(self, chat_id: int) -> str:
        chosen = await self.store.get_language(chat_id)
        if chosen:
            return str(chosen)
        auto = _text(await self._redis("GET", self._auto_key(chat_id)))
        return auto if auto in LANGUAGES else self.default

    async def observe(self, chat_id: int, user: object) -> None:
        if chat_id <= 0 or not isinstance(user, dict):
            return
        language = language_of_code(user.get("language_code"))
        if language is not None:
            await self._redis("SET", self._auto_key(chat_id), language, "EX", AUTO_TTL)


class BotIntroduction(Service):
    """At start: getMe (its username into Redis for the web role) and setMyCommands for ru,
    en and the default menu.  Runs in the background and tries again a few times: a bot
    whose menu could not be set still answers every command."""

    def __init__(self, config: Any, api: Any, redis: Any, clock: Any):
        self.config = config
        self.api = api
        self.redis = redis
        self.clock = clock
        self.done = False
        self._delayed: Any = None

    def startService(self) -> None:
        super().startService()
        self._attempt(0)

    def stopService(self) -> None:
        super().stopService()
        if self._delayed is not None and self._delayed.active():
            self._delayed.cancel()

    def _attempt(self, n: int) -> None:
        self._delayed = None
        Deferred.fromCoroutine(self._introduce(n)).addErrback(
            lambda f: log.failure("bot: introducing itself failed", f))

    async def _introduce(self, n: int) -> None:
        try:
            await self.introduce()
        except Exception as e:
            if not self.running or n >= len(INTRODUCE_RETRIES):
                log.warn("bot: could not set the command menu ({error}); commands still work",
                         error=str(e) or type(e).__name__)
                return
            log.info("bot: setting the command menu failed ({error}); again in {delay}s",
                     error=str(e) or type(e).__name__, delay=INTRODUCE_RETRIES[n])
            self._delayed = self.clock.callLater(INTRODUCE_RETRIES[n], self._attempt, n + 1)

    async def introduce(self) -> None:
        """getMe and setMyCommands (ru, en, and the default for other languages)."""
        me = await self.api.getMe()
        username = me.get("username") if isinstance(me, dict) else None
        if isinstance(username, str) and username:
            d = self.redis.execute("SET", username_key(self.config.redis.prefix), username)
            if isinstance(d, Deferred):
                await d
        for language in LANGUAGES:
            await self.api.call("setMyCommands", {"commands": menu(language), "language_code": language})
        await self.api.call("setMyCommands", {"commands": menu(self.config.telegram.language)})
        self.done = True
        log.info("bot: command menu set in ru and en for @{username}", username=username or "?")


def menu(language: str) -> list[dict[str, str]]:
    """setMyCommands' ``commands`` for one language."""
    return [{"command": c, "description": d} for c, d in COMMAND_MENU.get(language, COMMAND_MENU["en"])]
