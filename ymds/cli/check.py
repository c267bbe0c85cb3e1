"""``ymds check``: validate the configuration, build every endpoint (loading its
certificate), reach Redis and the ledger, call Telegram's getMe when a bot token is set and
try the wallet API token when one is set, like ``twistd ymds --check`` (the same report,
from ymds/check.py): a configuration that passes it starts.

    ymds check [--roles web,billing,bot]
"""

from __future__ import annotations

import argparse

from ymds.cli import common_options
from ymds.cli.command import Command
from ymds.cli.context import Context
from ymds.cli.errors import EXIT_OK, EXIT_UNREACHABLE, usage
from ymds.config import ConfigError


async def cmd_check(ctx: Context) -> int:
    """The checks are blocking probes with short timeouts; nothing else runs meanwhile."""
    from ymds.check import run_check
    from ymds.config import require_secrets
    config, args = ctx.config, ctx.args
    if args.roles:
        try:
            roles = common_options.parse_roles(args.roles)
        except ValueError as e:
            raise usage(str(e)) from None
    else:
        roles = common_options.default_roles(config)
    try:
        require_secrets(config, roles)
    except ConfigError as e:
        raise usage(str(e)) from None
    status = run_check(config, roles, ctx.say)
    return EXIT_OK if status == 0 else EXIT_UNREACHABLE


def _check_arguments(p: argparse.ArgumentParser) -> None:
    common_options.add_to_argparse(p, common_options.ROLES_OPTION)


COMMANDS = (
    Command("check", "validate the configuration and reach Redis and the ledger (like twistd ymds --check)",
            _check_arguments, cmd_check),
)
