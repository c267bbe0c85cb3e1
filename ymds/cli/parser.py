"""The argparse parser of ``ymds``: global options, then one subparser per registered command.

``--config/-c`` and ``--set`` (written once in :mod:`ymds.cli.common_options`) and
``--verbose`` work before or after the subcommand: every subparser repeats them with a
default of ``argparse.SUPPRESS``, so one given before is not overwritten by its absence after.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from ymds import __version__
from ymds.cli import common_options
from ymds.cli.command import Command
from ymds.cli.errors import EXIT_USAGE

DESCRIPTION = "Admin command of ymds (reads the same configuration as twistd ymds)."
EPILOG = ("Exit status: 0 ok, 1 usage or configuration error, 2 Redis/ledger/API unreachable, "
          "3 done but something needs attention, 4 internal error. See docs/OPERATIONS.md.")
VERBOSE_HELP = "show ymds's log lines on stderr"


class Parser(argparse.ArgumentParser):
    """Usage errors are one line and exit status 1, like configuration errors.

    Subparsers (argparse builds them with this class) get the global options again, so that
    ``ymds payments -c ymds.toml`` works like ``ymds -c ymds.toml payments``.
    """

    def __init__(self, *args: Any, top: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        add_global_options(self, top)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"ymds: {message} (ymds --help)\n")


def add_global_options(parser: argparse.ArgumentParser, top: bool) -> None:
    """The options accepted anywhere on the line; ``top`` for the main parser (real defaults)."""
    late: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    common_options.add_to_argparse(parser, common_options.CONFIG, **late)
    # argparse copies a subparser's values over the main parser's: later --set go to their own
    # list, which parse_arguments appends to the earlier ones.
    if top:
        common_options.add_to_argparse(parser, common_options.SET, action="append", dest="set", default=[])
    else:
        common_options.add_to_argparse(parser, common_options.SET, action="append", dest="set_late", **late)
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP, **late)


def build_parser(commands: dict[str, Command]) -> Parser:
    """The whole command line: ``ymds [--config PATH] [--set K=V] COMMAND [options]``."""
    parser = Parser(prog="ymds", description=DESCRIPTION, epilog=EPILOG, top=True)
    parser.add_argument("--version", action="version", version=f"ymds {__version__}",
                        help="print the version of ymds and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser,
                                help="what to do (ymds COMMAND --help for its options)")
    sub.required = True
    for command in commands.values():
        command.add_arguments(sub.add_parser(command.name, help=command.help, description=command.help))
    return parser


def parse_arguments(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; usage errors, ``--help`` and ``--version`` raise SystemExit as argparse does."""
    args = parser.parse_args(argv)
    args.set = list(args.set) + list(getattr(args, "set_late", []))
    return args
