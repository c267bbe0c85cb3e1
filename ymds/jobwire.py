"""The typed job contract shared by the role clients (ymds.billing.jobs, ymds.bot.jobs).

A job's arguments are a small frozen dataclass with ``from_wire(mapping)`` (the one place
its wire arguments are checked: it raises :class:`InvalidTaskArgs`) and ``to_wire()`` (the
dict put in Redis, the same keys as ever, so a rolling upgrade keeps working).  Results are
dataclasses too; :func:`result_from_wire` reads them leniently (an older handler may send
fewer keys) and :func:`result_to_wire` writes them.  :func:`typed_handler` joins a handler
that takes the dataclass to the registry, which deals in wire dicts.
"""
from __future__ import annotations

import dataclasses
import re
from decimal import ROUND_DOWN, Decimal
from typing import Any, Awaitable, Callable, Collection, Mapping, Protocol, TypeVar

from twisted.internet.defer import Deferred

from ymds.queue.errors import InvalidTaskArgs

CENT = Decimal("0.01")
_AMOUNT_TEXT = re.compile(r"\d{1,10}(\.\d{1,2})?")

__all__ = ["InvalidTaskArgs", "WireArgs", "Enqueued", "typed_handler", "result_from_wire", "result_to_wire",
           "wire_object", "wire_int", "wire_required_int", "JobQueue", "wire_text", "wire_money", "wire_dict"]


class JobQueue(Protocol):
    """The part of IJobQueue the clients use (typed for mypy; zope interfaces are not)."""

    def enqueue(self, queue: str, task: str, args: Any, key: str | None = None,
                delay: float | None = None) -> Deferred[Any]: ...

    def call(self, queue: str, task: str, args: Any, timeout: float = 10.0) -> Deferred[Any]: ...


class WireArgs(Protocol):
    """A job's arguments: checked when read off the wire, plain JSON-able when written."""

    def to_wire(self) -> dict[str, Any]: ...


A = TypeVar("A")
R = TypeVar("R")


@dataclasses.dataclass(frozen=True)
class Enqueued:
    """The answer of a fire-and-forget job: ``job_id`` once it is in Redis, or None when its
    idempotency key was used before (the earlier job stands; nothing was added)."""

    job_id: str | None

    @property
    def duplicate(self) -> bool:
        return self.job_id is None


def wire_object(args: object) -> Mapping[str, Any]:
    """Jobs come off the network: arguments that are not an object are refused outright."""
    if not isinstance(args, dict):
        raise InvalidTaskArgs("the job's arguments must be an object")
    return args


def wire_int(args: Mapping[str, Any], name: str, optional: bool = False) -> int | None:
    """A 64-bit signed integer (never a bool); None only when ``optional``."""
    if args.get(name) is None and optional:
        return None
    return wire_required_int(args, name)


def wire_required_int(args: Mapping[str, Any], name: str) -> int:
    """A 64-bit signed integer (never a bool)."""
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not -2**63 <= value < 2**63:
        raise InvalidTaskArgs(f"{name} must be an integer")
    return value


def wire_text(args: Mapping[str, Any], name: str, limit: int, default: str = "") -> str:
    """Text of at most ``limit`` characters; missing or null gives ``default``."""
    value = args.get(name, default)
    if value is None:
        value = default
    if not isinstance(value, str):
        raise InvalidTaskArgs(f"{name} must be text")
    if len(value) > limit:
        raise InvalidTaskArgs(f"{name} is longer than {limit} characters")
    return value


def wire_money(args: Mapping[str, Any], name: str) -> Decimal:
    """An amount: Decimal (or decimal text) below 10^10 with at most two decimal places."""
    value = args.get(name)
    if isinstance(value, str) and _AMOUNT_TEXT.fullmatch(value.strip()):
        value = Decimal(value.strip())
    if not isinstance(value, Decimal) or not value.is_finite() or abs(value) >= Decimal("1e10"):
        raise InvalidTaskArgs(f"{name} must be an amount (Decimal) below 10^10")
    if value != value.quantize(CENT, rounding=ROUND_DOWN):
        raise InvalidTaskArgs(f"{name} {value} has more than two decimal places")
    return value.quantize(CENT)


def wire_choice(args: Mapping[str, Any], name: str, choices: Collection[str], what: str) -> str:
    """``args[name]`` when it is one of ``choices``; else InvalidTaskArgs "unknown <what> ..."."""
    value = args.get(name)
    if value not in choices:
        raise InvalidTaskArgs(f"unknown {what} {str(value)[:40]!r}")
    return str(value)


def wire_key(args: Mapping[str, Any]) -> str | None:
    """The job's own dedup ``key`` (None when it brings none)."""
    key = args.get("key")
    return str(key) if key else None


def with_key(wire: dict[str, Any], key: str | None) -> dict[str, Any]:
    """``wire`` with ``key`` added when there is one (the handler dedups its own effects by it)."""
    if key is not None:
        wire["key"] = key
    return wire


def wire_dict(args: Mapping[str, Any], name: str) -> dict[str, Any]:
    """An object (missing or null gives {})."""
    value = args.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidTaskArgs(f"{name} must be an object")
    return value


def result_to_wire(result: Any) -> Any:
    """A handler's result as the JSON-able value put in the reply (None stays None)."""
    to_wire = getattr(result, "to_wire", None)
    if to_wire is not None:
        return to_wire()
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result)
    return result


def result_from_wire(cls: type[R], wire: Any) -> R | None:
    """``cls`` from a reply: None for None; keys the dataclass does not know are ignored and
    missing ones take their defaults (another version of the handler may have answered)."""
    if wire is None:
        return None
    if not isinstance(wire, Mapping):
        raise TypeError(f"{cls.__name__}: the reply is not an object")
    names = set(getattr(cls, "__dataclass_fields__"))  # fields(cls) is not typed for a TypeVar
    return cls(**{k: v for k, v in wire.items() if k in names})


HandlerTable = dict[str, tuple[Callable[[Any], Any], Callable[[Any], Awaitable[Any]]]]
"""Task name -> (the argument dataclass's ``from_wire``, the async handler taking it): what each
billing task group's ``handlers()`` returns, joined by BillingTasks into one registry."""


def typed_handler(from_wire: Callable[[Any], A], handler: Callable[[A], Awaitable[Any]]
                  ) -> Callable[[Any], Awaitable[Any]]:
    """A registry handler: wire args -> ``from_wire`` -> ``handler`` -> wire result."""

    async def on_wire(args: Any) -> Any:
        return result_to_wire(await handler(from_wire(args)))

    on_wire.__name__ = getattr(handler, "__name__", "handler")
    on_wire.__doc__ = getattr(handler, "__doc__", None)
    return on_wire
