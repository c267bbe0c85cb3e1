"""``ymds``: the owner's admin command.  Reads the same configuration as ``twistd ymds``.

    ymds --config ymds.toml payments [--since 2026-11-01] [--status paid] [--json]
    ymds --config ymds.toml export --format csv --output payments.csv
    ymds --config ymds.toml quarantine [--resolve ID]
    ymds --config ymds.toml reverify
    ymds --config ymds.toml dead-letters [--queue billing|bot]
    ymds --config ymds.toml replay [--queue billing|bot] (ID | --all)
    ymds --config ymds.toml reconcile --since 2026-11-01
    ymds --config ymds.toml link --plan month --chat 123456789
    ymds --config ymds.toml test-notification [--url URL]
    ymds --config ymds.toml stats
    ymds --config ymds.toml check
    ymds --config ymds.toml api-key create|list|revoke ...
    ymds --config ymds.toml webhook add|list|remove|redeliver|log ...
    ymds --version

``--config/-c``, ``--set`` and ``--verbose`` may also come after the command.

Exit status (scripts rely on it; docs/OPERATIONS.md repeats it; ymds/cli/errors.py):

    0  done, nothing needs attention
    1  usage or configuration error (the line says which key or option, and the fix)
    2  a dependency is unreachable: Redis, the ledger database, the wallet API, the URL
    3  done, but something needs attention: unresolved quarantine, dead letters, items
       reverify could not resolve, a test notification not answered 200, an unknown id
    4  internal error (a bug: the traceback is printed; please report it)

The package, one module per command group (like Tahoe-LAFS's allmydata/scripts):

    __init__.py           main() (the console script) and run() (for tests, any reactor)
    errors.py             exit statuses, CommandError
    context.py            Context: reactor, config, args, output; ledger/queue/wallet API on demand
    command.py            Command: what a command group declares
    common_options.py     --config, --roles, --set: shared with twistd ymds (ymds/tap.py)
    parser.py             the argparse parser built from the registry
    runner.py             load config, probe dependencies, run, map failures to exit statuses
    output.py             tables, times, money, JSON, CSV cells, --since/--until
    registry.py           GROUPS: the list of command group modules
    payments.py quarantine.py queue_admin.py reconcile.py link.py test_notification.py
    stats.py check.py api_key.py webhook.py          the command groups

Adding a command group (``ymds promo``, ``ymds members``, ...): write ``ymds/cli/promo.py``
with ``async def cmd_promo(ctx: Context) -> int``, a function adding its arguments (each
with ``help=``; nested actions via ``p.add_subparsers(parser_class=type(p), ...)``) and

    COMMANDS = (Command("promo", "one help line", _promo_arguments, cmd_promo, needs_ledger=True),)

then add ``promo,`` to ``GROUPS`` in ymds/cli/registry.py.  tests/test_cli.py checks that
every subcommand and option has a help line.

This is a program of its own: only ``main()`` imports the global reactor (through
``task.react``); ``run(reactor, argv, ...)`` takes the reactor it is given.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import IO, Any, NoReturn

from ymds.cli import registry
from ymds.cli.errors import (EXIT_ATTENTION, EXIT_INTERNAL, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE,
                             CommandError)
from ymds.cli.parser import build_parser, parse_arguments
from ymds.cli.runner import run_parsed, start_logging

__all__ = ["main", "run", "build_parser", "CommandError", "EXIT_OK", "EXIT_USAGE", "EXIT_UNREACHABLE",
           "EXIT_ATTENTION", "EXIT_INTERNAL"]


async def run(reactor: Any, argv: list[str], env: Mapping[str, str] | None = None,
              out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Run ``ymds <argv>`` on ``reactor``; returns the exit status.  Usage errors, ``--help``
    and ``--version`` return argparse's status (their text goes to sys.stdout/sys.stderr)."""
    commands = registry.commands()
    try:
        args = parse_arguments(build_parser(commands), argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    return await run_parsed(reactor, commands, args, os.environ if env is None else env,
                            sys.stdout if out is None else out, sys.stderr if err is None else err)


def main(argv: list[str] | None = None) -> NoReturn:
    """The ``ymds`` console script: parse, start logging, run in the global reactor, exit."""
    from twisted.internet import task
    from twisted.internet.defer import Deferred

    commands = registry.commands()
    args = parse_arguments(build_parser(commands), sys.argv[1:] if argv is None else argv)
    start_logging(args.verbose)

    def start(reactor: Any, args: argparse.Namespace) -> Deferred[None]:
        d = Deferred.fromCoroutine(run_parsed(reactor, commands, args, os.environ, sys.stdout, sys.stderr))
        return d.addCallback(_exit)

    task.react(start, (args,))
    raise SystemExit(EXIT_INTERNAL)  # not reached: react exits


def _exit(status: int) -> NoReturn:
    """task.react exits with the code of a SystemExit from its function (and 0 otherwise)."""
    sys.stdout.flush()
    raise SystemExit(status)
