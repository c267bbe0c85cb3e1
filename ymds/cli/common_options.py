"""The options both ``twistd ymds`` (ymds/tap.py, a ``twisted.python.usage.Options``) and the
``ymds`` admin command (argparse) accept: ``--config/-c``, ``--roles/-r`` and ``--set``.

Each option's name, help line and parsing is written here once; the two front ends only
adapt it to their parser (:func:`add_to_argparse`, :func:`usage_parameter`).  This module
imports nothing of ymds but the configuration, so the twistd plugin stays light.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from ymds.config import Config

ROLES = ("web", "billing", "bot")


@dataclass(frozen=True)
class SharedOption:
    """One option: ``--name`` (and ``-short``), its argument's name and its help line."""

    name: str
    short: str | None
    metavar: str
    help: str

    @property
    def flags(self) -> list[str]:
        """``["-c", "--config"]``: the strings argparse is given."""
        return ([f"-{self.short}"] if self.short else []) + [f"--{self.name}"]


CONFIG = SharedOption("config", "c", "PATH", "path of ymds.toml (default: $YMDS_CONFIG)")
ROLES_OPTION = SharedOption("roles", "r", "ROLES", "comma-separated roles among web, billing, bot "
                            "(default: web and billing, and bot when telegram.token is set)")
SET = SharedOption("set", None, "SECTION.KEY=VALUE", "override one configuration key (repeatable), "
                   "e.g. --set redis.url=redis://10.0.0.5:6379/0")


def parse_roles(text: str) -> set[str]:
    """``"web,billing"`` -> ``{"web", "billing"}``; ValueError (one line saying what to write)
    for an empty list or an unknown role."""
    roles = {r.strip() for r in text.split(",") if r.strip()}
    if not roles or roles - set(ROLES):
        raise ValueError(f"--roles takes any of web,billing,bot (got {text!r})")
    return roles


def default_roles(config: Config) -> set[str]:
    """The roles run or checked without ``--roles``: web and billing, and bot with a token."""
    return {"web", "billing"} | ({"bot"} if config.telegram.token else set())


def parse_override(text: str) -> tuple[str, str]:
    """``"redis.url=redis://h:6379/0"`` -> ``("redis.url", "redis://h:6379/0")``; ValueError
    (one line saying what to write) unless it is section.key=value."""
    key, sep, value = text.partition("=")
    if not sep or "." not in key:
        raise ValueError(f"--set takes section.key=value, e.g. --set redis.url=redis://10.0.0.5:6379/0 "
                         f"(got {text!r})")
    return key.strip(), value


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """Every ``--set`` in order (a later one for the same key wins); ValueError as :func:`parse_override`."""
    return dict(parse_override(pair) for pair in pairs)


def add_to_argparse(parser: argparse.ArgumentParser, option: SharedOption, **extra: Any) -> argparse.Action:
    """Add ``option`` to an argparse parser; ``extra`` are further add_argument arguments
    (``dest``, ``default``, ``action``)."""
    return parser.add_argument(*option.flags, metavar=option.metavar, help=option.help, **extra)


def usage_parameter(option: SharedOption) -> list[Any]:
    """``option`` as an entry of ``usage.Options.optParameters`` (no default: None)."""
    return [option.name, option.short, None, option.help]
