"""The sandbox wallet's operations, kept in memory (bounded), and their wallet-API form."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Iterator

MOSCOW = timezone(timedelta(hours=3))


@dataclass
class SandboxOperation:
    operation_id: str
    created: float                 # clock seconds
    datetime_raw: str              # as sent in the notification
    payment_type: str              # AC | PC
    notification_type: str
    amount: Decimal                # credited, after the fee
    withdraw_amount: Decimal       # what the payer paid
    sender: str
    label: str
    codepro: bool
    unaccepted: bool
    is_test: bool
    fields: dict[str, str] = field(default_factory=dict)   # the notification as sent

    @property
    def status(self) -> str:
        return "in_progress" if (self.codepro or self.unaccepted) else "success"

    def api_record(self, details: bool) -> dict:
        record = {
            "operation_id": self.operation_id,
            "status": self.status,
            "datetime": api_datetime(self.created),
            "title": ("Пополнение с карты" if self.payment_type == "AC" else "Перевод от " + self.sender),
            "pattern_id": "p2p",
            "direction": "in",
            "amount": self.amount,
            "type": ("deposition" if self.payment_type == "AC"
                     else "incoming-transfer-protected" if self.codepro else "incoming-transfer"),
        }
        if self.label:
            record["label"] = self.label
        if details:
            record.update({
                "amount_due": self.amount,
                "fee": self.withdraw_amount - self.amount,
                "sender": self.sender,
                "codepro": self.codepro,
                "details": "sandbox test operation",
            })
        return record


def api_datetime(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000+00:00")


def notification_datetime(seconds: float, style: str) -> str:
    """The two forms YooMoney has been seen to send: '...T16:31:28Z' and '...T09:00:00.000+03:00'."""
    moment = datetime.fromtimestamp(int(seconds), timezone.utc)
    if style == "utc":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.astimezone(MOSCOW).strftime("%Y-%m-%dT%H:%M:%S.000+03:00")


class OperationStore:
    """The last ``limit`` operations, newest last; unique numeric operation ids."""

    def __init__(self, limit: int = 10000):
        self._limit = limit
        self._operations: OrderedDict[str, SandboxOperation] = OrderedDict()

    def new_operation_id(self) -> str:
        while True:
            candidate = str(10**17 + secrets.randbelow(9 * 10**17))
            if candidate not in self._operations:
                return candidate

    def add(self, operation: SandboxOperation) -> None:
        self._operations[operation.operation_id] = operation
        while len(self._operations) > self._limit:
            self._operations.popitem(last=False)

    def get(self, operation_id: str) -> SandboxOperation | None:
        return self._operations.get(operation_id)

    def newest_first(self) -> Iterator[SandboxOperation]:
        return reversed(list(self._operations.values()))

    def __len__(self) -> int:
        return len(self._operations)
