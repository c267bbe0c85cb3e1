"""``ymds promo``: the owner's promo codes (issue 19).

    ymds promo add CODE (--percent N | --off AMOUNT) [--plans a,b] [--uses N] [--per-user N]
                        [--from T] [--until T] [--first-only]
    ymds promo list [--json]
    ymds promo disable CODE

A user applies a code with ``/start promo_CODE`` or ``/promo CODE``; the pay links made after
that carry the discounted price, fixed into each invoice (one use reserved per invoice,
given back if it expires unpaid).  T is a date (2026-12-01, UTC midnight), an ISO 8601 time,
or a duration from now (30d, 12h).
"""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation
from typing import Any

from ymds.cli.command import Command, positive
from ymds.cli.context import Context
from ymds.cli.errors import EXIT_ATTENTION, EXIT_OK, usage
from ymds.cli.output import dumps, parse_when, short_time, table
from ymds.config_values import ConfigError, parse_duration


def when(text: str | None, now: float, option: str) -> float | None:
    """A date, an ISO 8601 time, or a duration forward from now (``30d``); None stays None."""
    if text is None:
        return None
    stripped = text.strip()
    if stripped and stripped[-1] in "smhd" and stripped[:-1].replace(".", "", 1).isdigit():
        try:
            return now + parse_duration(option, stripped)
        except ConfigError:
            pass
    return parse_when(stripped, now, option)


def _amount(text: str) -> Decimal:
    try:
        value = Decimal(text.strip().replace(",", "."))
    except InvalidOperation:
        raise usage(f"--off: {text!r} is not an amount; write rubles, e.g. 50 or 49.90") from None
    if not value.is_finite() or value <= 0 or value != value.quantize(Decimal("0.01")):
        raise usage(f"--off: {text!r} is not a positive amount with at most two decimals; write e.g. 50 or 49.90")
    return value


def _plans(ctx: Context, text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    plans = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    unknown = [p for p in plans if ctx.config.plan(p) is None]
    if unknown:
        known = ", ".join(p.id for p in ctx.config.plans) or "none configured"
        raise usage(f"--plans: unknown plan {unknown[0]!r}; use plan ids from [[plans]] ({known})")
    return plans


async def _add(ctx: Context, ledger: Any) -> int:
    from ymds.billing.stores.trials import SellingRefused
    a = ctx.args
    if (a.percent is None) == (a.off is None):
        raise usage("promo add takes --percent N or --off AMOUNT (one of them)")
    if a.percent is not None and not 1 <= a.percent <= 100:
        raise usage("--percent must be between 1 and 100")
    now = ctx.now()
    starts, ends = when(a.start, now, "--from"), when(a.until, now, "--until")
    if starts is not None and ends is not None and ends <= starts:
        raise usage("--until must be after --from")
    try:
        promo = await ledger.promo.add(a.code, now, percent=a.percent, off=_amount(a.off) if a.off else None,
                                       plans=_plans(ctx, a.plans), uses=a.uses, per_user=a.per_user,
                                       starts_at=starts, ends_at=ends, first_only=a.first_only)
    except SellingRefused as e:
        if e.reason == "exists":
            raise usage(f"promo code {a.code.upper()} exists already; choose another code or see: ymds promo list") \
                from None
        raise usage(str(e)) from None
    ctx.say(f"promo code {promo.code} added; users apply it with /promo {promo.code} "
            f"or the link https://t.me/<your bot>?start=promo_{promo.code}")
    return EXIT_OK


def _record(p: Any, now: float) -> dict[str, Any]:
    return {"code": p.code, "percent": p.percent, "off": p.off, "plans": list(p.plans), "uses": p.uses,
            "per_user": p.per_user, "used": p.used, "from": p.starts_at, "until": p.ends_at,
            "first_only": p.first_only, "active": p.window_problem(now) is None, "disabled_at": p.disabled_at}


async def _list(ctx: Context, ledger: Any) -> int:
    now = ctx.now()
    promos = await ledger.promo.list()
    if ctx.args.json:
        ctx.say(dumps([_record(p, now) for p in promos]))
        return EXIT_OK
    rows = [[p.code, f"{p.percent}%" if p.percent is not None else f"-{p.off}", ",".join(p.plans) or "all",
             f"{p.used}/{p.uses if p.uses is not None else '∞'}", str(p.per_user or "-"),
             short_time(p.starts_at) if p.starts_at else "-", short_time(p.ends_at) if p.ends_at else "-",
             "yes" if p.first_only else "no", "active" if p.window_problem(now) is None else
             ("disabled" if p.disabled_at else "inactive")] for p in promos]
    for line in table(rows, ["CODE", "DISCOUNT", "PLANS", "USED", "PER USER", "FROM", "UNTIL", "FIRST ONLY", "STATE"]):
        ctx.say(line)
    ctx.note(f"{len(promos)} promo code(s)")
    return EXIT_OK


async def _disable(ctx: Context, ledger: Any) -> int:
    from ymds.billing.stores.trials import SellingRefused
    try:
        done = await ledger.promo.disable(ctx.args.code, ctx.now())
    except SellingRefused:
        done = False
    if not done:
        ctx.note(f"ymds: promo code {ctx.args.code.upper()} is unknown or already disabled (see: ymds promo list)")
        return EXIT_ATTENTION
    ctx.say(f"promo code {ctx.args.code.upper()} disabled; pay links made before keep their price")
    return EXIT_OK


ACTIONS = {"add": _add, "list": _list, "disable": _disable}


async def cmd_promo(ctx: Context) -> int:
    ledger = await ctx.ledger()
    return await ACTIONS[ctx.args.promo_command](ctx, ledger)


def _promo_arguments(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="promo_command", metavar="ACTION", parser_class=type(p),
                               help="add, list or disable")
    actions.required = True
    add = actions.add_parser("add", help="create a promo code")
    add.add_argument("code", help="the code users type: 1-32 letters, digits, - or _ (case does not matter)")
    add.add_argument("--percent", type=int, help="percent off the plan's price (1-100)")
    add.add_argument("--off", help="rubles off the plan's price, e.g. 50 or 49.90")
    add.add_argument("--plans", help="comma separated plan ids it applies to (default: every plan)")
    add.add_argument("--uses", type=positive, help="how many discounted invoices in all (default: unlimited)")
    add.add_argument("--per-user", type=positive, help="how many discounted invoices per user (default: unlimited)")
    add.add_argument("--from", dest="start", help="valid from: 2026-12-01, an ISO 8601 time, or 2d from now")
    add.add_argument("--until", help="valid until: 2026-12-31, an ISO 8601 time, or 30d from now")
    add.add_argument("--first-only", action="store_true", help="only for users who never paid for a plan")
    listing = actions.add_parser("list", help="every promo code with its uses")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    disable = actions.add_parser("disable", help="stop a code (pay links already made keep their price)")
    disable.add_argument("code", help="the promo code")


COMMANDS = (
    Command("promo", "promo codes: add, list, disable", _promo_arguments, cmd_promo, needs_ledger=True),
)
