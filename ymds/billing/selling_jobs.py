"""The selling tools' job contract (issue 19): task names, argument and result dataclasses,
and :class:`SellingClient`, the way the bot, the API and the CLI reach billing's trials,
promo codes and gift/access codes.

Refusals are answers, not errors: a :class:`SellingAnswer` with ``refusal`` set to one
word (unknown, expired, used_up, not_for_plan, first_only, per_user, already, no_trial,
invalid, exists) that the bot and the API turn into one sentence.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, Mapping

from twisted.internet.defer import Deferred

from ymds.billing.jobs import QUEUE, InvoiceOffers
from ymds.jobwire import (
    InvalidTaskArgs, JobQueue, result_from_wire, wire_int, wire_money, wire_object, wire_required_int, wire_text,
)

APPLY_PROMO = "apply_promo"
START_TRIAL = "start_trial"
REDEEM_CODE = "redeem_code"
GIFT_INVOICES = "gift_invoices"
PROMO_ADD = "promo_add"
PROMO_LIST = "promo_list"
PROMO_DISABLE = "promo_disable"
CODES_ADD = "codes_add"

REFUSALS = ("unknown", "expired", "used_up", "not_for_plan", "first_only", "per_user", "already", "no_trial",
            "invalid", "exists")
MAX_CODE = 64


def _opt_time(a: Mapping[str, Any], name: str) -> float | None:
    value = a.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e11:
        raise InvalidTaskArgs(f"{name} must be Unix seconds")
    return float(value)


def _opt_positive(a: Mapping[str, Any], name: str) -> int | None:
    value = wire_int(a, name, optional=True)
    if value is not None and not 1 <= value <= 1_000_000:
        raise InvalidTaskArgs(f"{name} must be between 1 and 1000000")
    return value


# --- arguments -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChatCode:
    """A code typed by a chat (``apply_promo``, ``redeem_code``)."""
    chat_id: int
    code: str

    @classmethod
    def from_wire(cls, args: object) -> ChatCode:
        a = wire_object(args)
        return cls(wire_required_int(a, "chat_id"), wire_text(a, "code", MAX_CODE).strip())

    def to_wire(self) -> dict[str, Any]:
        return {"chat_id": self.chat_id, "code": self.code}


@dataclass(frozen=True)
class StartTrial:
    """A user's trial of a plan, in their private chat."""
    chat_id: int
    user_id: int
    plan: str

    @classmethod
    def from_wire(cls, args: object) -> StartTrial:
        a = wire_object(args)
        return cls(wire_required_int(a, "chat_id"), wire_required_int(a, "user_id"), wire_text(a, "plan", 32))

    def to_wire(self) -> dict[str, Any]:
        return {"chat_id": self.chat_id, "user_id": self.user_id, "plan": self.plan}


@dataclass(frozen=True)
class GiftInvoices:
    """Pay links for buying each plan as a gift."""
    chat_id: int

    @classmethod
    def from_wire(cls, args: object) -> GiftInvoices:
        return cls(wire_required_int(wire_object(args), "chat_id"))

    def to_wire(self) -> dict[str, Any]:
        return {"chat_id": self.chat_id}


@dataclass(frozen=True)
class PromoTerms:
    """``ymds promo add`` / ``POST /v1/promo-codes``: exactly one of percent and off."""
    code: str
    percent: int | None = None
    off: Decimal | None = None
    plans: tuple[str, ...] = ()
    uses: int | None = None
    per_user: int | None = None
    starts_at: float | None = None
    ends_at: float | None = None
    first_only: bool = False

    @classmethod
    def from_wire(cls, args: object) -> PromoTerms:
        a = wire_object(args)
        off = wire_money(a, "off") if a.get("off") is not None else None
        plans = a.get("plans", [])
        if plans is None:
            plans = []
        if not isinstance(plans, list) or not all(isinstance(p, str) and 0 < len(p) <= 32 for p in plans) \
                or len(plans) > 100:
            raise InvalidTaskArgs("plans must be a list of plan ids")
        first_only = a.get("first_only", False)
        if not isinstance(first_only, bool):
            raise InvalidTaskArgs("first_only must be true or false")
        return cls(wire_text(a, "code", MAX_CODE).strip(), wire_int(a, "percent", optional=True), off,
                   tuple(plans), _opt_positive(a, "uses"), _opt_positive(a, "per_user"), _opt_time(a, "starts_at"),
                   _opt_time(a, "ends_at"), first_only)

    def to_wire(self) -> dict[str, Any]:
        wire = asdict(self)
        wire["plans"] = list(self.plans)
        return wire


@dataclass(frozen=True)
class PromoCodeQuery:
    """One promo code by its text (``promo_disable``)."""
    code: str

    @classmethod
    def from_wire(cls, args: object) -> PromoCodeQuery:
        return cls(wire_text(wire_object(args), "code", MAX_CODE).strip())

    def to_wire(self) -> dict[str, Any]:
        return {"code": self.code}


@dataclass(frozen=True)
class CodesAdd:
    """``ymds codes add``: ``count`` codes of ``days`` (``plan``'s days when only a plan is given)."""
    plan: str | None = None
    days: int | None = None
    count: int = 1
    uses: int = 1
    expires_at: float | None = None

    @classmethod
    def from_wire(cls, args: object) -> CodesAdd:
        a = wire_object(args)
        plan = a.get("plan")
        if plan is not None and (not isinstance(plan, str) or not 0 < len(plan) <= 32):
            raise InvalidTaskArgs("plan must be a plan id")
        days = _opt_positive(a, "days")
        if plan is None and days is None:
            raise InvalidTaskArgs("give a plan or days")
        count = _opt_positive(a, "count") or 1
        if count > 10_000:
            raise InvalidTaskArgs("count must be at most 10000")
        return cls(plan, days, count, _opt_positive(a, "uses") or 1, _opt_time(a, "expires_at"))

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)


# --- results ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SellingAnswer:
    """What a chat's selling request did: ``refusal`` (one word) or the effect (a plan and
    the new ``ends_at``; a pay ``url`` and ``amount`` for a paid trial; the code's terms)."""
    ok: bool = False
    refusal: str | None = None
    code: str | None = None
    plan: str | None = None
    days: int | None = None
    ends_at: str | None = None
    url: str | None = None
    amount: Decimal | None = None
    percent: int | None = None
    off: Decimal | None = None
    plans: tuple[str, ...] = ()


@dataclass(frozen=True)
class PromoView:
    """A promo code as the CLI and the API show it (times ISO 8601 UTC)."""
    code: str = ""
    percent: int | None = None
    off: Decimal | None = None
    plans: tuple[str, ...] = ()
    uses: int | None = None
    per_user: int | None = None
    used: int = 0
    starts_at: str | None = None
    ends_at: str | None = None
    first_only: bool = False
    active: bool = True


@dataclass(frozen=True)
class PromoList:
    promo_codes: tuple[PromoView, ...] = ()

    @classmethod
    def from_wire(cls, wire: Any) -> PromoList:
        items = wire.get("promo_codes") if isinstance(wire, Mapping) else None
        views = (result_from_wire(PromoView, i) for i in items or [] if isinstance(i, Mapping))
        return cls(tuple(v for v in views if v is not None))

    def to_wire(self) -> dict[str, Any]:
        return {"promo_codes": [asdict(p) for p in self.promo_codes]}


@dataclass(frozen=True)
class CodesMade:
    codes: tuple[str, ...] = ()
    plan: str | None = None
    days: int = 0
    uses: int = 1
    expires_at: str | None = None
    refusal: str | None = None


def _answer(wire: Any) -> SellingAnswer:
    answer = result_from_wire(SellingAnswer, wire) or SellingAnswer()
    return answer if isinstance(answer.plans, tuple) else SellingAnswer(**{**vars(answer), "plans": tuple(answer.plans)})


class SellingClient:
    """Billing's selling calls over an IJobQueue (RPCs, safe to repeat: a repeated redeem or
    trial is refused with "already", a repeated promo application changes nothing)."""

    def __init__(self, queue: JobQueue, timeout: float = 10.0):
        self.queue = queue
        self.timeout = timeout

    def _call(self, task: str, args: dict[str, Any], timeout: float | None) -> Deferred[Any]:
        return self.queue.call(QUEUE, task, args, timeout=self.timeout if timeout is None else timeout)

    def apply_promo(self, chat_id: int, code: str, timeout: float | None = None) -> Deferred[SellingAnswer]:
        """Remember ``code`` for the chat's next pay links (or say why not)."""
        return self._call(APPLY_PROMO, ChatCode(chat_id, code).to_wire(), timeout).addCallback(_answer)

    def start_trial(self, chat_id: int, user_id: int, plan: str,
                    timeout: float | None = None) -> Deferred[SellingAnswer]:
        """A free trial (granted now) or a paid one (a pay link), once per user per plan."""
        return self._call(START_TRIAL, StartTrial(chat_id, user_id, plan).to_wire(), timeout).addCallback(_answer)

    def redeem_code(self, chat_id: int, code: str, timeout: float | None = None) -> Deferred[SellingAnswer]:
        """Grant or extend the chat's subscription with a gift or access code."""
        return self._call(REDEEM_CODE, ChatCode(chat_id, code).to_wire(), timeout).addCallback(_answer)

    def gift_invoices(self, chat_id: int, timeout: float | None = None) -> Deferred[InvoiceOffers]:
        """One pay link per plan for buying it as a gift (the payer receives a code)."""
        return self._call(GIFT_INVOICES, GiftInvoices(chat_id).to_wire(), timeout).addCallback(InvoiceOffers.from_wire)

    def promo_add(self, terms: PromoTerms, timeout: float | None = None) -> Deferred[SellingAnswer]:
        return self._call(PROMO_ADD, terms.to_wire(), timeout).addCallback(_answer)

    def promo_list(self, timeout: float | None = None) -> Deferred[PromoList]:
        return self._call(PROMO_LIST, {}, timeout).addCallback(PromoList.from_wire)

    def promo_disable(self, code: str, timeout: float | None = None) -> Deferred[SellingAnswer]:
        return self._call(PROMO_DISABLE, PromoCodeQuery(code).to_wire(), timeout).addCallback(_answer)

    def codes_add(self, request: CodesAdd, timeout: float | None = None) -> Deferred[CodesMade]:
        def read(wire: Any) -> CodesMade:
            made = result_from_wire(CodesMade, wire) or CodesMade()
            return CodesMade(tuple(made.codes), made.plan, made.days, made.uses, made.expires_at, made.refusal)
        return self._call(CODES_ADD, request.to_wire(), timeout).addCallback(read)


__all__ = [
    "APPLY_PROMO", "CODES_ADD", "GIFT_INVOICES", "PROMO_ADD", "PROMO_DISABLE", "PROMO_LIST", "REDEEM_CODE",
    "REFUSALS", "START_TRIAL", "ChatCode", "CodesAdd", "CodesMade", "GiftInvoices", "PromoCodeQuery", "PromoList",
    "PromoTerms", "PromoView", "SellingAnswer", "SellingClient", "StartTrial",
]
