"""Exit statuses of the ``ymds`` command and the error that carries one.

Scripts rely on these numbers; docs/OPERATIONS.md and README.md repeat them.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_UNREACHABLE = 2
EXIT_ATTENTION = 3
EXIT_INTERNAL = 4


class CommandError(Exception):
    """Stops the command with one line on stderr (``ymds: <message>``) and exit status ``status``."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def unreachable(message: str) -> CommandError:
    """A dependency (Redis, the ledger, the wallet API, a URL) could not be reached: status 2."""
    return CommandError(message, EXIT_UNREACHABLE)


def usage(message: str) -> CommandError:
    """A usage or configuration error the owner fixes by changing an option or a key: status 1."""
    return CommandError(message, EXIT_USAGE)
