"""``ymds dead-letters`` and ``ymds replay``: jobs that failed every attempt, and putting them
back in their queue once the cause is fixed.

    ymds dead-letters [--queue billing|bot] [--json]
    ymds replay [--queue billing|bot] (ID | --all)
"""

from __future__ import annotations

import argparse
from typing import Any

from ymds.cli.command import Command, positive
from ymds.cli.context import Context
from ymds.cli.errors import EXIT_ATTENTION, EXIT_OK, usage
from ymds.cli.output import dumps, printable, short_time, table

QUEUES = ("billing", "bot")


async def _queue_admin(ctx: Context) -> Any:
    from ymds.queue.admin import QueueAdmin
    return QueueAdmin(ctx.reactor, ctx.config.redis)


async def cmd_dead_letters(ctx: Context) -> int:
    from ymds.queue.keys import QueueKeys
    a = ctx.args
    admin = await _queue_admin(ctx)
    try:
        queues = [a.queue] if a.queue else list(QUEUES)
        everything = []
        totals = {}
        for q in queues:
            totals[q] = int(await admin.pool.execute("XLEN", QueueKeys(admin.prefix, q).dead))
            for letter in await admin.list_dead(q, limit=a.limit):
                everything.append(dict(letter, queue=q))
    finally:
        await admin.close()
    if a.json:
        ctx.say(dumps(everything))
    else:
        if everything:
            rows = [[d["queue"], d["id"], short_time(d["failed_at"]), printable(d["task"], 24), str(d["attempts"]),
                     printable(d["reason"] or "-", 20), printable(d["error"] or "-", 60)] for d in everything]
            for line in table(rows, ["queue", "id", "failed (UTC)", "task", "tries", "reason", "error"], right={4}):
                ctx.say(line)
        ctx.say(", ".join(f"{q}: {n} dead letter{'s' if n != 1 else ''}" for q, n in totals.items()))
        if any(totals.values()):
            ctx.say("after fixing the cause: `ymds replay --queue QUEUE ID` or `ymds replay --queue QUEUE --all`")
    return EXIT_ATTENTION if any(totals.values()) else EXIT_OK


async def cmd_replay(ctx: Context) -> int:
    from ymds.queue.keys import QueueKeys
    a = ctx.args
    admin = await _queue_admin(ctx)
    try:
        queues = [a.queue] if a.queue else list(QUEUES)
        total = 0
        for q in queues:
            if a.all:
                waiting = int(await admin.pool.execute("XLEN", QueueKeys(admin.prefix, q).dead))
                if waiting:
                    ctx.note(f"replay: {q}: {waiting} dead letter{'s' if waiting != 1 else ''} to put back")
            try:
                n = await admin.replay(q, None if a.all else a.id)
            except ValueError as e:
                raise usage(str(e)) from None
            if n or a.all:
                ctx.note(f"replay: {q}: {n} job{'s' if n != 1 else ''} back in the queue")
            total += n
            if n and not a.all:
                break
    finally:
        await admin.close()
    if not a.all and total == 0:
        ctx.note(f"ymds: no dead letter {a.id} in {' or '.join(queues)} (see: ymds dead-letters)")
        return EXIT_ATTENTION
    ctx.say(f"replayed {total} job{'s' if total != 1 else ''}")
    return EXIT_OK


def _dead_letters_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--queue", choices=QUEUES, help="one queue (default: both)")
    p.add_argument("--limit", type=positive, default=50, help="newest N per queue")
    p.add_argument("--json", action="store_true", help="JSON, including the jobs' arguments")


def _replay_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--queue", choices=QUEUES, help="one queue (default: look in both)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", help="the dead letter's id, as `ymds dead-letters` shows it")
    which.add_argument("--all", action="store_true", help="every dead letter")


COMMANDS = (
    Command("dead-letters", "jobs that failed every attempt", _dead_letters_arguments, cmd_dead_letters,
            needs_redis=True),
    Command("replay", "put dead letters back in their queue", _replay_arguments, cmd_replay, needs_redis=True),
)
