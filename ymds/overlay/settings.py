"""Configuration of the creator features (issue 17): the ``[overlay]`` section and the
extra ``[donations]`` keys (presets, goal, supporters feed).

``ymds.config`` calls :func:`overlay_config` and :func:`donation_extras`; every bad value
is a ConfigError naming the key.  Files named here (the alert sound, the blocked words)
are read once at load time, so a wrong path stops start-up instead of the first alert.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from ymds.config_values import ConfigError, parse_bool, parse_float, parse_int, parse_list, parse_money, parse_text

MAX_PRESETS = 8
MAX_TITLE = 100


@dataclass(frozen=True)
class OverlayConfig:
    """``[overlay]``: how the OBS pages behave and how many may connect to one web node."""

    alert_seconds: float = 8.0
    sound_file: str = ""           # absolute path once loaded ("" = no sound)
    min_alert_amount: Decimal = Decimal("0.00")
    blocked_words_file: str = ""   # absolute path once loaded ("" = no masking)
    max_connections_per_token: int = 10
    max_connections: int = 1000
    language: str = "ru"


def _path(key: str, raw: Any, base: str) -> str:
    text = parse_text(key, raw).strip()
    if not text:
        return ""
    return os.path.abspath(os.path.join(base, os.path.expanduser(text)))


def overlay_config(section: dict, base: str) -> OverlayConfig:
    """The ``[overlay]`` section; relative file paths are taken from the config's directory."""
    from ymds.overlay.moderation import load_blocked_words
    from ymds.overlay.resource import read_sound

    d = OverlayConfig()
    seconds = parse_float("overlay.alert_seconds", section.get("alert_seconds", d.alert_seconds), minimum=1.0)
    if seconds > 120:
        raise ConfigError("overlay.alert_seconds", f"{seconds:g} s is above 120 s", "use 1 to 120 seconds")
    sound = _path("overlay.sound_file", section.get("sound_file", ""), base)
    if sound:
        try:
            read_sound(sound)
        except OSError as e:
            raise ConfigError("overlay.sound_file", f"cannot read {sound}: {e.strerror}",
                              "put the sound in the data directory or correct the path") from None
        except ValueError as e:
            raise ConfigError("overlay.sound_file", str(e).split(";")[0], str(e).split("; ")[-1]) from None
    words = _path("overlay.blocked_words_file", section.get("blocked_words_file", ""), base)
    if words:
        try:
            load_blocked_words(words)
        except OSError as e:
            raise ConfigError("overlay.blocked_words_file", f"cannot read {words}: {e.strerror}",
                              "create the file (one word a line) or correct the path") from None
        except UnicodeDecodeError:
            raise ConfigError("overlay.blocked_words_file", f"{words} is not UTF-8 text",
                              "save the word list as UTF-8") from None
    raw_min = section.get("min_alert_amount", "0")
    minimum = Decimal("0.00") if str(raw_min).strip() in ("0", "0.0", "0.00") else \
        parse_money("overlay.min_alert_amount", raw_min)
    language = parse_text("overlay.language", section.get("language", d.language))
    if language not in ("ru", "en"):
        raise ConfigError("overlay.language", f"{language!r} is not supported", 'use "ru" or "en"')
    return OverlayConfig(
        alert_seconds=seconds, sound_file=sound, min_alert_amount=minimum, blocked_words_file=words,
        max_connections_per_token=parse_int("overlay.max_connections_per_token",
                                            section.get("max_connections_per_token", d.max_connections_per_token), 1, 1000),
        max_connections=parse_int("overlay.max_connections", section.get("max_connections", d.max_connections), 1, 100000),
        language=language)


def _iso_date(key: str, raw: Any) -> str:
    text = parse_text(key, raw).strip()
    if not text:
        return ""
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise ConfigError(key, f"{text!r} is not a date", 'write it as "YYYY-MM-DD", e.g. "2026-12-31"') from None


def donation_extras(dn: dict, minimum: Decimal, maximum: Decimal) -> dict[str, Any]:
    """The creator keys of ``[donations]`` as DonationsConfig keyword arguments."""
    presets: list[Decimal] = []
    for i, raw in enumerate(parse_list("donations.presets", dn.get("presets", []))):
        amount = parse_money(f"donations.presets[{i}]", raw)
        if not minimum <= amount <= maximum:
            raise ConfigError("donations.presets", f"{amount} is outside donations.min-max ({minimum}-{maximum})",
                              "use amounts within donations.min and donations.max")
        if amount not in presets:
            presets.append(amount)
    if len(presets) > MAX_PRESETS:
        raise ConfigError("donations.presets", f"has {len(presets)} amounts", f"keep at most {MAX_PRESETS}")
    goal = parse_money("donations.goal", dn["goal"]) if str(dn.get("goal", "")).strip() else None
    title = parse_text("donations.goal_title", dn.get("goal_title", "")).strip()
    if len(title) > MAX_TITLE:
        raise ConfigError("donations.goal_title", f"is {len(title)} characters long", f"keep it under {MAX_TITLE}")
    until = _iso_date("donations.goal_until", dn.get("goal_until", ""))
    since = _iso_date("donations.goal_since", dn.get("goal_since", ""))
    if goal is None and (title or until or since):
        raise ConfigError("donations.goal", "is not set but goal_title, goal_until or goal_since is",
                          'set goal = "10000.00" or remove the other goal keys')
    if until and since and since > until:
        raise ConfigError("donations.goal_since", f"{since} is after goal_until {until}", "make goal_since earlier")
    return {"presets": tuple(presets), "goal": goal, "goal_title": title, "goal_until": until, "goal_since": since,
            "show_supporters": parse_bool("donations.show_supporters", dn.get("show_supporters", False))}
