"""How the ``ymds`` command writes things: times, money, tables, JSON, CSV cells, and the
time arguments it reads (``--since``/``--until``).

Every value shown may come from a hostile notification body, so text goes through
:func:`printable` (tables) or :func:`csv_safe` (spreadsheets).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from ymds.cli.errors import usage
from ymds.config import ConfigError, parse_duration


def iso(ts: float | None) -> str:
    """``2026-11-01T12:00:00Z`` (UTC), or "" for no time."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# Tables show times in the owner's zone (server.timezone, set by the runner); JSON and CSV
# keep UTC (:func:`iso`) so that scripts reading them never depend on the configuration.
_table_zone: ZoneInfo | None = None


def show_times_in(zone_name: str) -> None:
    """Show table times in ``zone_name`` (an IANA name; "UTC" keeps the ``...Z`` form)."""
    global _table_zone
    _table_zone = None if zone_name in ("", "UTC") else ZoneInfo(zone_name)


def short_time(ts: float | None) -> str:
    """A table cell's time: :func:`iso` in UTC, or ISO 8601 with the owner's offset
    (``2026-11-01T15:00:00+03:00``) once :func:`show_times_in` named a zone; "-" for none."""
    if ts is None:
        return "-"
    if _table_zone is None:
        return iso(ts)
    return datetime.fromtimestamp(ts, _table_zone).isoformat(timespec="seconds")


def operation_timestamp(datetime_raw: str) -> float | None:
    """A notification's own ``datetime`` as Unix seconds; None when it does not parse."""
    text = operation_time(datetime_raw)
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp() if text else None


def operation_time(datetime_raw: str) -> str:
    """A notification's or operation's own ``datetime`` (when the buyer paid) in the one
    format of :func:`iso`; "" when it does not parse."""
    try:
        moment = datetime.fromisoformat(datetime_raw.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return iso(moment.timestamp())


def printable(text: Any, limit: int = 60) -> str:
    """One terminal-safe line: values may come from hostile notification bodies."""
    s = "".join(c if c.isprintable() else "?" for c in str(text))
    return s if len(s) <= limit else s[: limit - 1] + "…"


def table(rows: list[list[str]], header: list[str], right: Collection[int] = frozenset()) -> list[str]:
    """Lines of a plain-text table; the columns in ``right`` are right-aligned (amounts)."""
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: list[str]) -> str:
        out = [(c.rjust(widths[i]) if i in right else c.ljust(widths[i])) for i, c in enumerate(cells)]
        return "  ".join(out).rstrip()

    return [line(header)] + [line(r) for r in rows]


def parse_when(text: str, now: float, option: str) -> float:
    """``2026-11-01`` (UTC midnight), an ISO 8601 time (UTC unless it says otherwise), or a
    duration back from now (``7d``, ``12h``, ``30m``)."""
    text = text.strip()
    if text and text[-1] in "smhd" and text[:-1].replace(".", "", 1).isdigit():
        try:
            return now - parse_duration(option, text)
        except ConfigError:
            pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise usage(f"{option}: {text!r} is not a date; write 2026-11-01, 2026-11-01T12:00:00+03:00 or 7d") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def money(value: Decimal) -> str:
    """``199.00``: machine-readable, for scripts and exports."""
    return f"{value:.2f}"


class JSONOut(json.JSONEncoder):
    """Decimals as exact strings (``"199.00"``), never floats."""

    def default(self, o: Any) -> Any:
        if isinstance(o, Decimal):
            return f"{o:f}"
        return super().default(o)


def dumps(obj: Any) -> str:
    """One JSON document on one line, keys sorted, Decimals exact."""
    return json.dumps(obj, cls=JSONOut, ensure_ascii=False, sort_keys=True)


def csv_safe(value: Any) -> str:
    """Spreadsheets run cells that start with = + - @ as formulas: labels come from payers."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    s = str(value)
    if s and s[0] in "=+-@\t\r" and not _is_number(s):
        return "'" + s
    return s


def _is_number(s: str) -> bool:
    try:
        Decimal(s)
        return True
    except Exception:
        return False
