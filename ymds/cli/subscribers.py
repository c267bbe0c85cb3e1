"""``ymds subscribers``: the subscriber list, and grant / extend / revoke by hand.

    ymds subscribers [--plan P] [--expiring 7d] [--status active|expired|all] [--json]
    ymds subscribers grant --chat ID (--plan P | --days N)
    ymds subscribers extend --chat ID --days N
    ymds subscribers revoke --chat ID

Changes go to the ledger (with an audit event ``by=cli``); access follows through the bot
queue: a grant that opens access sends the user an invite, a revoke removes the user from
the plan's chats.  The user's /status shows the change at once.
"""

from __future__ import annotations

import argparse
from typing import Any

from ymds.cli.command import Command, positive
from ymds.cli.context import Context
from ymds.cli.errors import EXIT_ATTENTION, EXIT_OK, CommandError, usage
from ymds.cli.output import dumps, short_time, table
from ymds.config_values import ConfigError, parse_duration


async def _list(ctx: Context, ledger: Any) -> int:
    from ymds.billing.subscribers import view
    a = ctx.args
    within = None
    if a.expiring:
        try:
            within = parse_duration("--expiring", a.expiring)
        except ConfigError:
            raise usage(f"--expiring: {a.expiring!r} is not a duration; write e.g. 7d or 12h") from None
    now = ctx.now()
    subs = await ledger.subscribers.subscribers(now, status=a.status, plan=a.list_plan, expiring_within=within)
    if a.json:
        ctx.say(dumps([view(s, now).to_wire() for s in subs]))
        return EXIT_OK
    for line in table([[str(s.chat_id), s.plan or "-", short_time(s.ends_at), "yes" if s.active(now) else "no"]
                       for s in subs], ["CHAT", "PLAN", "ENDS", "ACTIVE"]):
        ctx.say(line)
    ctx.note(f"{len(subs)} subscriber(s)")
    return EXIT_OK


async def _change(ctx: Context, ledger: Any) -> int:
    from ymds.billing.subscribers import SubscriberTasks
    from ymds.billing.subscribers_jobs import ChangeSubscriber
    from ymds.jobwire import InvalidTaskArgs
    a = ctx.args
    action = a.subscribers_command
    if action == "grant" and (a.plan is None) == (a.days is None):
        raise usage("grant takes --plan P or --days N (one of them)")
    job = ChangeSubscriber(action, a.chat, getattr(a, "plan", None), getattr(a, "days", None), "cli")
    tasks = SubscriberTasks(ctx.config, ledger, ctx.queue(), ctx.reactor)
    try:
        result = await tasks.change(job)
    except InvalidTaskArgs as e:
        raise usage(str(e)) from None
    if not result.found or result.subscriber is None:
        hint = "use ymds subscribers grant" if action == "extend" else "nothing to revoke"
        raise CommandError(f"chat {a.chat} has no subscription; {hint}", EXIT_ATTENTION)
    sub = result.subscriber
    state = "active until " + (sub.ends_at or "-") if sub.active else "ended"
    ctx.say(f"{action}: chat {sub.chat_id}, plan {sub.plan or '-'}, {state}")
    return EXIT_OK


async def cmd_subscribers(ctx: Context) -> int:
    ledger = await ctx.ledger()
    if ctx.args.subscribers_command is None:
        return await _list(ctx, ledger)
    return await _change(ctx, ledger)


def _chat(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a Telegram chat id (a whole number)") from None


def _subscribers_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plan", dest="list_plan", metavar="P", help="only this plan's subscribers")
    p.add_argument("--expiring", metavar="DURATION", help="only active ones ending within this time, e.g. 7d")
    p.add_argument("--status", choices=("active", "expired", "all"), default="active",
                   help="active (default), expired or all")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    actions = p.add_subparsers(dest="subscribers_command", metavar="ACTION", parser_class=type(p),
                               help="grant, extend or revoke (none: list)")
    grant = actions.add_parser("grant", help="give a chat a plan's period or N days (added to what it has)")
    grant.add_argument("--chat", type=_chat, required=True, help="the user's Telegram chat id")
    grant.add_argument("--plan", help="a plan id of [[plans]]: its days, and the subscription's plan")
    grant.add_argument("--days", type=positive, help="this many days")
    extend = actions.add_parser("extend", help="add N days to an existing subscription")
    extend.add_argument("--chat", type=_chat, required=True, help="the user's Telegram chat id")
    extend.add_argument("--days", type=positive, required=True, help="this many days")
    revoke = actions.add_parser("revoke", help="end a subscription now and remove the user from the plan's chats")
    revoke.add_argument("--chat", type=_chat, required=True, help="the user's Telegram chat id")


def _needs(args: argparse.Namespace) -> tuple[bool, bool]:
    return args.subscribers_command is not None, True


COMMANDS = (
    Command("subscribers", "list subscribers; grant, extend or revoke a subscription", _subscribers_arguments,
            cmd_subscribers, needs=_needs),
)
