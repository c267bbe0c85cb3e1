"""Every command group of ``ymds``, in the order ``ymds --help`` lists them.

Adding a command group is one new module with a ``COMMANDS`` tuple of
:class:`ymds.cli.command.Command` and one line in ``GROUPS`` below.
"""

from __future__ import annotations

from types import ModuleType

from ymds.cli import (api_key, check, link, payments, quarantine, queue_admin, reconcile, stats, test_notification,
                      webhook)
from ymds.cli import broadcast, subscribers
from ymds.cli import codes, promo
from ymds.cli import overlay
from ymds.cli import admin_link
from ymds.cli import members
from ymds.cli.command import Command

GROUPS: tuple[ModuleType, ...] = (
    payments,            # payments, export
    quarantine,          # quarantine, reverify
    queue_admin,         # dead-letters, replay
    reconcile,
    admin_link,          # the dashboard's sign-in link (issue 16)
    link,
    test_notification,
    stats,
    check,
    api_key,
    webhook,
    overlay,             # overlay-url, overlay skip|replay (issue 17)
    subscribers,
    members,             # members [--audit [--fix]] (issue 15)
    broadcast,
    promo,               # promo codes (issue 19)
    codes,               # gift and access codes (issue 19)
)


def commands() -> dict[str, Command]:
    """Subcommand name -> its Command, for every group in ``GROUPS``."""
    found: dict[str, Command] = {}
    for group in GROUPS:
        for command in group.COMMANDS:
            if command.name in found:
                raise RuntimeError(f"ymds {command.name}: declared twice (ymds/cli/registry.py)")
            found[command.name] = command
    return found
