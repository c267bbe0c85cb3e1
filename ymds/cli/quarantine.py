"""``ymds quarantine`` and ``ymds reverify``: notifications that failed verification, closing
one by hand, and re-checking them all (crediting those that verify now or that the wallet
API confirms).

    ymds quarantine [--all] [--json] | --resolve ID [--note forged]
    ymds reverify [--json]
"""

from __future__ import annotations

import argparse
from typing import Any

from ymds.cli.command import Command, positive
from ymds.cli.context import Context
from ymds.cli.errors import EXIT_ATTENTION, EXIT_OK
from ymds.cli.output import dumps, iso, printable, short_time, table


def _quarantine_summary(q: Any) -> dict[str, str]:
    from ymds.yoomoney.notification import NotificationError, parse_form
    info = {"operation_id": "", "label": "", "amount": ""}
    try:
        fields = parse_form(q.body.encode("utf-8"))
        info = {"operation_id": fields.get("operation_id", ""), "label": fields.get("label", ""),
                "amount": fields.get("withdraw_amount") or fields.get("amount", "")}
    except (NotificationError, UnicodeError, ValueError):
        pass
    return info


async def cmd_quarantine(ctx: Context) -> int:
    ledger = await ctx.ledger()
    a = ctx.args
    if a.resolve is not None:
        how = "manual" + (f": {a.note[:180]}" if a.note else "")
        if await ledger.quarantine.quarantine_resolve(a.resolve, how, ctx.now()):
            ctx.say(f"quarantine #{a.resolve} resolved ({printable(how, 200)})")
            return EXIT_OK
        ctx.note(f"ymds: quarantine #{a.resolve} is unknown or already resolved (see: ymds quarantine --all)")
        return EXIT_ATTENTION
    rows = await ledger.quarantine.quarantine_list(unresolved_only=not a.all, limit=a.limit)
    unresolved = sum(1 for q in rows if q.resolved_at is None)
    if a.json:
        ctx.say(dumps([{
            "id": q.id, "received_at": iso(q.received_at), "last_seen": iso(q.last_seen), "count": q.count,
            "reason": q.reason, "remote": q.remote, "size": q.size, "body": q.body,
            "resolved_at": iso(q.resolved_at) or None, "resolution": q.resolution, **_quarantine_summary(q),
        } for q in rows]))
    elif rows:
        out = []
        for q in rows:
            s = _quarantine_summary(q)
            out.append([str(q.id), short_time(q.received_at), str(q.count), printable(q.reason, 40),
                        printable(q.remote or "-", 40), printable(s["operation_id"] or "-", 32),
                        printable(s["amount"] or "-", 12), printable(s["label"] or "-", 24),
                        printable(q.resolution, 30) if q.resolved_at else "open"])
        for line in table(out, ["id", "received", "seen", "reason", "from", "operation", "amount", "label", "state"],
                          right={0, 2}):
            ctx.say(line)
    if not a.json:
        if unresolved:
            ctx.say(f"{unresolved} unresolved: `ymds reverify` credits those that now verify or that the wallet API "
                    "confirms; `ymds quarantine --resolve ID` closes one by hand")
        else:
            ctx.say("quarantine is empty" if not rows else "nothing unresolved")
    return EXIT_ATTENTION if unresolved else EXIT_OK


async def cmd_reverify(ctx: Context) -> int:
    from ymds.billing.reverify import reverify
    from ymds.billing.tasks import BillingTasks
    ledger = await ctx.ledger()
    wallet_api = ctx.wallet_api(required=False)
    if wallet_api is None:
        ctx.note("ymds: no yoomoney.api_token: re-checking signatures with the current secret only "
                 "(with a token, operation-details can confirm payments whatever their signature)")
    queue = ctx.queue()
    tasks = BillingTasks(ctx.config, ledger, queue, ctx.reactor, wallet_api=wallet_api)
    counts = await reverify(ledger, ctx.config, wallet_api=wallet_api, clock=ctx.reactor, tasks=tasks)
    if ctx.args.json:
        ctx.say(dumps(counts))
    else:
        ctx.say(f"checked {counts['checked']}: applied {counts['applied']} (signature now verifies), "
                f"{counts['api_confirmed']} confirmed by the wallet API, {counts['still_quarantined']} still "
                f"quarantined, {counts['unparseable']} unparseable")
    left = counts["still_quarantined"] + counts["unparseable"]
    if left:
        ctx.note(f"ymds: {left} notification(s) stay in quarantine: see `ymds quarantine`; resolve forgeries "
                 "with `ymds quarantine --resolve ID --note forged`")
        return EXIT_ATTENTION
    return EXIT_OK



def _quarantine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resolve", type=int, metavar="ID", help="mark quarantined notification ID resolved")
    p.add_argument("--note", default="", help="with --resolve: why (kept in the ledger's event log)")
    p.add_argument("--all", action="store_true", help="include resolved ones")
    p.add_argument("--limit", type=positive, default=100, help="show at most N (default 100)")
    p.add_argument("--json", action="store_true", help="JSON, including the raw bodies")


def _reverify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="the counts as JSON")


COMMANDS = (
    Command("quarantine", "notifications that failed verification; --resolve ID closes one", _quarantine_arguments,
            cmd_quarantine, needs_ledger=True),
    Command("reverify", "re-check quarantined notifications; credit those that verify now or that the wallet API "
            "confirms", _reverify_arguments, cmd_reverify, needs_redis=True, needs_ledger=True),
)
