"""How a moment is written for people: in the owner's zone (``[server] timezone``), with
the zone's name and offset, in the reader's language.  One formatter for the bot and the
payer pages, so "30.11.2026 00:30 MSK (UTC+3)" looks the same everywhere."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone(name: str | tzinfo | None) -> tzinfo:
    """The zone named by an IANA name (UTC for "" or None, or a name this system does not
    know: the config check refuses those before any role starts)."""
    if isinstance(name, tzinfo):
        return name
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc


def parse_moment(value: object) -> datetime | None:
    """An ISO 8601 moment (naive means UTC) or a datetime; None for anything else."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def offset_text(offset: timedelta | None) -> str:
    """ "UTC", "UTC+3", "UTC-3:30", "UTC+5:45"."""
    minutes = int((offset or timedelta(0)).total_seconds() // 60)
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def zone_label(moment: datetime) -> str:
    """The zone as a reader knows it: "UTC", "MSK (UTC+3)"; "UTC+5" when the zone has no
    letters of its own (many IANA zones are named "+05")."""
    offset = offset_text(moment.utcoffset())
    name = moment.tzname() or ""
    if offset == "UTC" and name in ("UTC", "GMT", "Z", ""):
        return "UTC"
    if not name or not name.isalpha():
        return offset
    return f"{name} ({offset})"


def moment_text(value: object, where: str | tzinfo | None, lang: str = "ru") -> str | None:
    """``value`` in the zone ``where``: "30.11.2026 00:30 MSK (UTC+3)" in ru,
    "2026-11-30 00:30 MSK (UTC+3)" in en; None when it is not a moment."""
    moment = parse_moment(value)
    if moment is None:
        return None
    here = moment.astimezone(zone(where))
    shown = here.strftime("%d.%m.%Y %H:%M") if lang == "ru" else here.strftime("%Y-%m-%d %H:%M")
    return f"{shown} {zone_label(here)}"


def day_text(value: object, where: str | tzinfo | None, lang: str = "ru") -> str | None:
    """A date ("2026-12-31") or a moment's day in the zone ``where``: "31.12.2026" in ru,
    "2026-12-31" in en; None when it is neither."""
    text = str(value).strip()
    if len(text) > 10:
        moment = parse_moment(text)
        if moment is None:
            return None
        day = moment.astimezone(zone(where)).date()
    else:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            return None
    return day.strftime("%d.%m.%Y") if lang == "ru" else day.isoformat()
