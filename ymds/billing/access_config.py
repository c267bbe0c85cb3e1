"""Configuration of access to paid chats: ``[telegram] grace`` and ``[[plans]] chats``,
and which chats a plan (or any plan) opens.

Parsers raise ConfigError(key, problem, fix); ymds.config calls them from its sections.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence

from ymds.config_values import ConfigError, parse_duration, parse_list

MAX_GRACE = 90 * 86400


def parse_grace(raw: Any) -> int:
    """``telegram.grace``: 0 (the default: removed when the subscription ends) or a
    duration in the syntax of links.ttl ("1d", "12h"), at most 90 days."""
    if raw in (0, "0", "", None):
        return 0
    if isinstance(raw, bool):
        raise ConfigError("telegram.grace", f"{raw!r} is not a duration", 'write a duration like "1d", or 0 for none')
    seconds = parse_duration("telegram.grace", raw)
    if seconds > MAX_GRACE:
        raise ConfigError("telegram.grace", f"{raw!r} is longer than 90 days", 'write a shorter grace, e.g. "1d"')
    return seconds


def parse_chat_ids(key: str, raw: Any) -> tuple[int, ...]:
    """``plans[i].chats``: channel or supergroup ids (negative, like -1001234567890)."""
    chats: list[int] = []
    for item in parse_list(key, raw):
        value = item
        if isinstance(item, str) and item.strip().lstrip("-").isdigit():
            value = int(item.strip())
        if isinstance(value, bool) or not isinstance(value, int) or value >= 0:
            raise ConfigError(key, f"{item!r} is not a channel or supergroup id",
                              "write the chats' numeric ids, negative numbers like -1001234567890")
        if value not in chats:
            chats.append(value)
    if len(chats) > 50:
        raise ConfigError(key, "lists more than 50 chats", "split the chats between plans or use fewer chats")
    return tuple(chats)


class _Plan(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def chats(self) -> tuple[int, ...]: ...


class _Telegram(Protocol):
    @property
    def channel_id(self) -> int: ...


class AccessConfig(Protocol):
    """The part of ymds.config.Config this module reads."""

    @property
    def plans(self) -> Sequence[_Plan]: ...

    @property
    def telegram(self) -> _Telegram: ...


def plan_chats(config: AccessConfig, plan_id: str | None) -> tuple[int, ...]:
    """The chats a subscription to ``plan_id`` opens: the plan's ``chats``, else
    ``telegram.channel_id`` (also for a plan no longer configured); () when neither."""
    for plan in config.plans:
        if plan.id == plan_id and plan.chats:
            return tuple(plan.chats)
    channel = config.telegram.channel_id
    return (channel,) if channel else ()


def paid_chats(config: AccessConfig) -> tuple[int, ...]:
    """Every chat some plan opens (telegram.channel_id included when set), each once."""
    found: dict[int, None] = {}
    if config.telegram.channel_id:
        found[config.telegram.channel_id] = None
    for plan in config.plans:
        for chat in plan.chats:
            found[chat] = None
    return tuple(found)
