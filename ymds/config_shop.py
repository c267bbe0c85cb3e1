"""How the shop presents itself: the ``[shop]`` section (its name and the owner's contact)
and the two Telegram identities an owner types and often gets wrong (``telegram.channel_id``
and ``telegram.bot_username``).  Each parser raises a one-line ConfigError with the fix."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ymds.config_values import ConfigError, parse_int, parse_text


@dataclass(frozen=True)
class ShopConfig:
    """What the buyer sees the shop called and how to reach its owner."""
    name: str = ""      # shown by /start, /help, the landing and pay pages
    contact: str = ""   # "@owner" or an e-mail, given when the buyer must get in touch


_CONTACT = re.compile(r"@[A-Za-z0-9_]{4,32}|[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+|https://t\.me/[A-Za-z0-9_]{4,32}")


def parse_shop(sh: dict) -> ShopConfig:
    """[shop]: the name buyers see and the contact they are given (both optional)."""
    name = " ".join(parse_text("shop.name", sh.get("name", "")).split())
    if len(name) > 64:
        raise ConfigError("shop.name", f"is {len(name)} characters long", "keep it to 64 characters, e.g. \"Клуб Анны\"")
    contact = parse_text("shop.contact", sh.get("contact", "")).strip()
    if contact and not _CONTACT.fullmatch(contact):
        raise ConfigError("shop.contact", f"{contact[:64]!r} is neither a Telegram username nor an e-mail",
                          'write "@yourname" or "you@example.org"')
    return ShopConfig(name=name, contact=contact)


CHANNEL_ID_FIX = ("write the channel's numeric id, a negative number like -1001234567890: forward a post "
                  "from the channel to @userinfobot (or open the channel in web.telegram.org: the address "
                  "ends in it), and write -100 before the digits if they are not there")


def parse_channel_id(raw: Any) -> int:
    """telegram.channel_id: 0 (no channel) or a chat id, which for a channel or group is negative."""
    if isinstance(raw, str) and raw.strip().startswith("@"):
        raise ConfigError("telegram.channel_id", f"{raw.strip()!r} is a username, not a chat id", CHANNEL_ID_FIX)
    try:
        value = parse_int("telegram.channel_id", raw)
    except ConfigError:
        raise ConfigError("telegram.channel_id", f"{raw!r} is not a chat id", CHANNEL_ID_FIX) from None
    if value > 0:
        raise ConfigError("telegram.channel_id", f"{value} is positive, the id of a person, not of a channel",
                          CHANNEL_ID_FIX)
    return value


def parse_bot_username(raw: Any) -> str:
    """telegram.bot_username: "" or the bot's username without the @ (Telegram's bot names end in "bot")."""
    name = parse_text("telegram.bot_username", raw).strip().lstrip("@")
    if name.startswith("https://t.me/"):
        name = name[len("https://t.me/"):]
    if name and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{1,30}[Bb][Oo][Tt]", name):
        raise ConfigError("telegram.bot_username", f"{name[:40]!r} is not a bot's username",
                          'write the name @BotFather gave it, e.g. "my_shop_bot"')
    return name
