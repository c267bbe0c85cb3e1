"""``ymds stats``: payments today and this month, active subscribers, quarantine, and the
depth of each job queue.

    ymds stats [--json]
"""

from __future__ import annotations

import argparse
from typing import Any

from ymds.cli.command import Command
from ymds.cli.context import Context
from ymds.cli.errors import EXIT_OK
from ymds.cli.output import dumps, money
from ymds.cli.queue_admin import QUEUES


async def cmd_stats(ctx: Context) -> int:
    ledger = await ctx.ledger()
    stats = await ledger.audit.stats(ctx.now())
    queue = ctx.queue()
    queues: dict[str, Any] = {}
    for name in QUEUES:
        queues[name] = await queue.snapshot(name)
    if ctx.args.json:
        ctx.say(dumps({"payments_today": stats.payments_today, "sum_today": stats.sum_today,
                       "payments_month": stats.payments_month, "sum_month": stats.sum_month,
                       "active_subscribers": stats.active_subscribers, "quarantined": stats.quarantined,
                       "queues": queues}))
        return EXIT_OK
    ctx.say(f"payments today (UTC):  {stats.payments_today}  {money(stats.sum_today)} RUB credited")
    ctx.say(f"payments this month:   {stats.payments_month}  {money(stats.sum_month)} RUB credited")
    ctx.say(f"active subscribers:    {stats.active_subscribers}")
    ctx.say(f"quarantined:           {stats.quarantined}")
    for name, s in queues.items():
        ctx.say(f"queue {name + ':':9}{s['depth']} in stream, {s['pending']} in progress, {s['delayed']} waiting to "
                f"retry, {s['dead']} dead, oldest {s['oldest_pending_age']:.0f}s")
    return EXIT_OK



def _stats_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="JSON instead of lines")


COMMANDS = (
    Command("stats", "payments today and this month, subscribers, quarantine, queues", _stats_arguments, cmd_stats,
            needs_redis=True, needs_ledger=True),
)
