"""Configuration values: ConfigError and one parser per kind of value.

Each parser takes ``(key, raw)`` (raw from TOML, the environment or the command line) and
returns the typed value or raises a ConfigError naming ``key``, the problem and the fix.
"""

from __future__ import annotations

import ipaddress
import re
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit


class ConfigError(Exception):
    """A configuration value is wrong; ``str()`` is one line for the operator."""

    def __init__(self, key: str, problem: str, fix: str):
        self.key = key
        self.problem = problem
        self.fix = fix
        super().__init__(f"configuration error: {key}: {problem}; {fix}")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_text(key: str, raw: Any) -> str:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return str(raw)
    if not isinstance(raw, str):
        raise ConfigError(key, f"expected text, got {type(raw).__name__}", 'quote the value, e.g. key = "value"')
    return raw


def parse_bool(key: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(raw, str) and raw.strip().lower() in ("false", "0", "no", "off"):
        return False
    raise ConfigError(key, f"{raw!r} is not a boolean", "use true or false")


def parse_int(key: str, raw: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = int(raw) if isinstance(raw, (int, str)) else int(parse_text(key, raw))
    except (ValueError, TypeError):
        raise ConfigError(key, f"{raw!r} is not a whole number", "write digits only, e.g. 65536") from None
    if minimum is not None and value < minimum:
        raise ConfigError(key, f"{value} is below the minimum {minimum}", f"use a value of at least {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(key, f"{value} is above the maximum {maximum}", f"use a value of at most {maximum}")
    return value


def parse_float(key: str, raw: Any, minimum: float = 0.0) -> float:
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = float(raw)
    except (ValueError, TypeError):
        raise ConfigError(key, f"{raw!r} is not a number", "write a number, e.g. 60") from None
    if value < minimum:
        raise ConfigError(key, f"{value} is below the minimum {minimum}", f"use a value of at least {minimum}")
    return value


def parse_money(key: str, raw: Any) -> Decimal:
    if isinstance(raw, float):
        raise ConfigError(key, f"{raw!r} is a float and money must be exact", f'quote it as text, e.g. {key.split(".")[-1]} = "{raw:.2f}"')
    try:
        value = Decimal(parse_text(key, raw).strip())
    except InvalidOperation:
        raise ConfigError(key, f"{raw!r} is not an amount", 'write an amount in rubles as text, e.g. "199.00"') from None
    if not value.is_finite() or value <= 0:
        raise ConfigError(key, f"{raw!r} is not a positive amount", 'write a positive amount, e.g. "199.00"')
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:  # finite here, so always an int
        raise ConfigError(key, f"{raw!r} has more than two decimal places", "round it to kopecks, e.g. \"199.99\"")
    return value.quantize(Decimal("0.01"))


def parse_rate(key: str, raw: Any) -> Decimal:
    try:
        value = Decimal(parse_text(key, raw).strip())
    except InvalidOperation:
        raise ConfigError(key, f"{raw!r} is not a rate", 'write a fraction as text, e.g. "0.03" for 3%') from None
    if not value.is_finite() or not (0 <= value < 1):
        raise ConfigError(key, f"{raw!r} is not between 0 and 1", 'write a fraction as text, e.g. "0.03" for 3%')
    return value


def parse_duration(key: str, raw: Any) -> int:
    """'3d', '12h', '30m', '45s' or a number of seconds -> seconds."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        seconds = raw
    else:
        match = _DURATION.match(parse_text(key, raw))
        if not match:
            raise ConfigError(key, f"{raw!r} is not a duration", 'write a number with s, m, h or d, e.g. "3d"')
        seconds = int(float(match.group(1)) * _UNITS[match.group(2)])
    if seconds <= 0:
        raise ConfigError(key, f"{raw!r} is not a positive duration", 'write a positive duration, e.g. "3d"')
    return seconds


def parse_list(key: str, raw: Any) -> list:
    if isinstance(raw, str):
        raw = [item.strip() for item in raw.split(",") if item.strip()]
    if not isinstance(raw, (list, tuple)):
        raise ConfigError(key, f"{raw!r} is not a list", 'write a list, e.g. ["AC", "PC"]')
    return list(raw)


_ENDPOINT_TYPES = {"tcp", "tcp6", "ssl", "tls", "unix", "systemd", "le", "lets"}


def parse_timezone(key: str, raw: Any) -> str:
    """An IANA time zone name ("Europe/Moscow", "UTC") that this system's zone database knows."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    name = parse_text(key, raw).strip()
    try:
        if not name or name != name.strip("/.") or ".." in name:
            raise ValueError(name)
        ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        raise ConfigError(key, f"{name!r} is not a known time zone",
                          'use an IANA name such as "Europe/Moscow" or "UTC" (install tzdata if none is known)') from None
    return name


def check_endpoint(key: str, raw: Any) -> str:
    value = parse_text(key, raw).strip()
    kind = value.split(":", 1)[0].lower()
    if not value or kind not in _ENDPOINT_TYPES:
        raise ConfigError(
            key, f"{raw!r} is not a server endpoint",
            'use a Twisted endpoint such as "ssl:8443:privateKey=key.pem:certKey=cert.pem", '
            '"tls:/etc/letsencrypt/live/pay.example.org" or "tcp:8080:interface=127.0.0.1"')
    return value


def check_http_url(key: str, raw: Any, require_https: bool = False) -> str:
    value = parse_text(key, raw).strip().rstrip("/")
    parts = urlsplit(value)
    allowed = ("https",) if require_https else ("http", "https")
    if parts.scheme not in allowed or not parts.hostname:
        wanted = "an https:// URL" if require_https else "an http:// or https:// URL"
        raise ConfigError(key, f"{raw!r} is not {wanted}", f"write {wanted}, e.g. https://pay.example.org")
    return value


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is localhost or a loopback address (nobody else can reach it)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_redis_url(key: str, raw: Any) -> str:
    value = parse_text(key, raw).strip()
    scheme = urlsplit(value).scheme
    if scheme not in ("redis", "rediss", "unix", "redis+sentinel"):
        raise ConfigError(
            key, f"{raw!r} is not a Redis URL",
            'use redis://host:6379/0, rediss://..., unix:///run/redis.sock?db=0 or redis+sentinel://h1:26379/mymaster/0')
    return value


def check_ledger_url(key: str, raw: Any) -> str:
    value = parse_text(key, raw).strip()
    scheme = urlsplit(value).scheme
    if scheme in ("sqlite", "postgresql", "postgres"):
        if scheme == "sqlite" and not value.startswith("sqlite:///"):
            raise ConfigError(key, f"{raw!r} has no file path", "write sqlite:///absolute/path.sqlite3 or sqlite:///relative.sqlite3")
        return value
    if re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$|^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$", value):
        return value  # a third-party ILedger named by dotted path
    raise ConfigError(key, f"{raw!r} is not a ledger URL", "use sqlite:///path/ledger.sqlite3, postgresql://user@host/dbname or a dotted path to an ILedger factory")
