"""``ymds codes``: gift and access codes (issue 19).

    ymds codes add (--plan P | --days N) [--count N] [--uses N] [--until T] [--json]

Prints the codes, one a line.  A user redeems one with ``/redeem CODE`` or the link
``https://t.me/<bot>?start=code_CODE``: it grants or extends their subscription (by the
plan's days, or N days keeping their plan), once per user, at most ``--uses`` users per code.
"""

from __future__ import annotations

import argparse
from typing import Any

from ymds.cli.command import Command, positive
from ymds.cli.context import Context
from ymds.cli.errors import EXIT_OK, usage
from ymds.cli.output import dumps, iso
from ymds.cli.promo import when


async def _add(ctx: Context, ledger: Any) -> int:
    from ymds.billing.stores.codes import MAX_COUNT
    a = ctx.args
    if (a.plan is None) == (a.days is None):
        raise usage("codes add takes --plan P or --days N (one of them)")
    plan = ctx.config.plan(a.plan) if a.plan else None
    if a.plan and plan is None:
        known = ", ".join(p.id for p in ctx.config.plans) or "none configured"
        raise usage(f"--plan: unknown plan {a.plan!r}; use a plan id from [[plans]] ({known})")
    if a.count > MAX_COUNT:
        raise usage(f"--count is at most {MAX_COUNT}; run the command again for more")
    now = ctx.now()
    until = when(a.until, now, "--until")
    if until is not None and until <= now:
        raise usage("--until must be in the future")
    days = plan.days if plan else a.days
    made = await ledger.codes.add(now, days, plan=a.plan, count=a.count, uses=a.uses, expires_at=until)
    if a.json:
        ctx.say(dumps({"codes": [c.code for c in made], "plan": a.plan, "days": days, "uses": a.uses,
                       "until": iso(until) or None}))
        return EXIT_OK
    for code in made:
        ctx.say(code.code)
    what = f"plan {a.plan} ({days} days)" if a.plan else f"{days} days"
    ctx.note(f"{len(made)} code(s) for {what}, {a.uses} use(s) each"
             + (f", valid until {iso(until)}" if until else "")
             + "; users send /redeem CODE or open https://t.me/<your bot>?start=code_CODE")
    return EXIT_OK


async def cmd_codes(ctx: Context) -> int:
    ledger = await ctx.ledger()
    return await _add(ctx, ledger)


def _codes_arguments(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="codes_command", metavar="ACTION", parser_class=type(p), help="add")
    actions.required = True
    add = actions.add_parser("add", help="make gift or access codes and print them")
    add.add_argument("--plan", help="grant this plan (its days)")
    add.add_argument("--days", type=positive, help="grant N days (the user keeps their plan)")
    add.add_argument("--count", type=positive, default=1, help="how many codes (default 1)")
    add.add_argument("--uses", type=positive, default=1, help="how many users may redeem each code (default 1)")
    add.add_argument("--until", help="valid until: 2026-12-31, an ISO 8601 time, or 30d from now")
    add.add_argument("--json", action="store_true", help="JSON instead of one code a line")


COMMANDS = (
    Command("codes", "gift and access codes: add", _codes_arguments, cmd_codes, needs_ledger=True),
)
