"""Redis key names (DESIGN.md section 7) and the job's wire format."""
from __future__ import annotations

import re
from dataclasses import dataclass

GROUP = "workers"  # the one consumer group of every queue stream

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"bad {kind} name {name!r}: use 1-64 letters, digits, '_', '.', '-'")
    return name


@dataclass(frozen=True)
class QueueKeys:
    """``{prefix}:q:<queue>`` (stream), ``...:delayed`` (ZSET), ``...:dead`` (stream),
    ``...:key:<idempotency key>`` (strings with a TTL)."""

    prefix: str
    queue: str

    @property
    def stream(self) -> str:
        return f"{self.prefix}:q:{self.queue}"

    @property
    def delayed(self) -> str:
        return f"{self.prefix}:q:{self.queue}:delayed"

    @property
    def dead(self) -> str:
        return f"{self.prefix}:q:{self.queue}:dead"

    def idempotency(self, key: str) -> str:
        return f"{self.prefix}:q:{self.queue}:key:{key}"


def reply_list(prefix: str, token: str) -> str:
    return f"{prefix}:reply:{token}"


# Job JSON fields (short: every byte is paid per job):
#   i: job id, t: task, a: args, r: reply list, c: correlation id, d: RPC deadline (epoch ms)
