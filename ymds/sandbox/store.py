"""The sandbox's operations kept on disk, so that its wallet API (operation-history,
operation-details) still knows them after a restart and a payment whose notification was
lost can be reconciled later, as with the real YooMoney.

One JSON line per operation, appended as it is made (``sandbox-operations.jsonl``); a start
reads the file back and rewrites it when it holds far more lines than the store keeps.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from decimal import Decimal, InvalidOperation
from typing import Any

from twisted.logger import Logger

from ymds.config import Config
from ymds.sandbox.operations import OperationStore, SandboxOperation

log = Logger()

FILE_NAME = "sandbox-operations.jsonl"
_MONEY_FIELDS = ("amount", "withdraw_amount")


def store_directory(config: Config, fallback: str) -> str:
    """Where a sandbox keeps its operations: beside a SQLite ledger, else ``fallback`` (the
    demo's data directory or the current directory)."""
    url = config.ledger.url
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return os.path.dirname(url[len("sqlite:///"):]) or fallback
    return fallback


def _to_line(operation: SandboxOperation) -> str:
    record = asdict(operation)
    for name in _MONEY_FIELDS:
        record[name] = f"{record[name]:.2f}"
    return json.dumps(record, ensure_ascii=False, sort_keys=True)


def _from_line(line: str) -> SandboxOperation | None:
    try:
        record: dict[str, Any] = json.loads(line)
        for name in _MONEY_FIELDS:
            record[name] = Decimal(record[name])
        return SandboxOperation(**record)
    except (ValueError, TypeError, KeyError, InvalidOperation):
        return None  # a line cut short by a crash: the operations before it still count


class PersistentOperationStore(OperationStore):
    """An :class:`OperationStore` whose operations survive restarts (the newest ``limit``)."""

    def __init__(self, directory: str, limit: int = 10000):
        super().__init__(limit)
        self.path = os.path.join(directory, FILE_NAME)
        lines = self._load()
        if lines > 2 * limit:
            self._rewrite()

    def _load(self) -> int:
        """Read the file back; the number of lines it had."""
        count = skipped = 0
        try:
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    count += 1
                    operation = _from_line(line)
                    if operation is None:
                        skipped += 1
                        continue
                    super().add(operation)
        except FileNotFoundError:
            return 0
        log.info("sandbox: {count} operations read back from {path} ({skipped} unreadable lines skipped)",
                 count=len(self), path=self.path, skipped=skipped)
        return count

    def _rewrite(self) -> None:
        temporary = self.path + ".new"
        with open(temporary, "w", encoding="utf-8") as f:
            for operation in reversed(list(self.newest_first())):
                f.write(_to_line(operation) + "\n")
        os.replace(temporary, self.path)

    def add(self, operation: SandboxOperation) -> None:
        super().add(operation)
        # Append before the notification goes out: a crash after it leaves an operation the
        # wallet API knows, exactly what reconciliation needs.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(_to_line(operation) + "\n")
