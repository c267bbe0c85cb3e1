"""What a command group module declares: one :class:`Command` per subcommand.

A command group module (``ymds/cli/payments.py``, ...) has a ``COMMANDS`` tuple of these;
``ymds/cli/registry.py`` lists the modules.  See the package docstring.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ymds.cli.context import Context


@dataclass(frozen=True)
class Command:
    """One ``ymds`` subcommand.

    ``add_arguments`` adds its options to its own argparse parser (every one with a help
    line); ``run`` does the work in the reactor and returns an exit status from
    ``ymds.cli.errors``.  ``needs_redis``/``needs_ledger`` make ``ymds`` probe them before
    the reactor starts, so an unreachable one is one line and status 2, not a long retry.
    ``needs``, if given, decides both from the arguments instead (``link --via-queue``).
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[Context], Awaitable[int]]
    needs_redis: bool = False
    needs_ledger: bool = False
    needs: Callable[[argparse.Namespace], tuple[bool, bool]] | None = None

    def dependencies(self, args: argparse.Namespace) -> tuple[bool, bool]:
        """(needs Redis, needs the ledger) for these arguments."""
        if self.needs is not None:
            return self.needs(args)
        return self.needs_redis, self.needs_ledger


def positive(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value
