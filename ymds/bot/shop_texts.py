"""The words that name the shop and say how to reach its owner ([shop] name and contact),
added around the catalogue of ymds/bot/texts.py."""

from __future__ import annotations

from typing import Any

from ymds.bot.texts import escape

_CONTACT = {"ru": " Связь с владельцем: {contact}.", "en": " Contact the owner: {contact}."}


def shop_heading(config: Any, language: str) -> str:
    """``<b>name</b>`` and a blank line before /start's and /help's text, or "" without a name."""
    name = config.shop.name
    return f"<b>{escape(name)}</b>\n\n" if name else ""


def contact_part(config: Any, language: str) -> str:
    """One sentence giving ``[shop] contact`` (Telegram HTML), or "" when none is configured."""
    contact = config.shop.contact
    if not contact:
        return ""
    return (_CONTACT.get(language) or _CONTACT["ru"]).format(contact=escape(contact))
