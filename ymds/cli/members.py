"""``ymds members``: the people the bot has seen join or leave each paid chat, with their
subscription state; ``--audit`` lists those in a chat without a subscription covering it
(exit 3 when there are any) and ``--fix`` has the bot remove them (ban, then unban).

    ymds members [--chat ID] [--all] [--json]
    ymds members --audit [--fix] [--chat ID] [--json]

The bot sees people only from the moment it asks for chat_member updates (issue 15): members
who joined before that are not listed until they do something the bot sees.
"""

from __future__ import annotations

import argparse
from typing import Any

from ymds.cli.command import Command
from ymds.cli.context import Context
from ymds.cli.errors import EXIT_ATTENTION, EXIT_OK, usage
from ymds.cli.output import dumps, iso, short_time, table


def _state(config: Any, sub: Any, chat_id: int, now: float) -> str:
    """"active", "grace", "ended", "other plan" or "none" for (subscription, chat)."""
    from ymds.billing.access_config import plan_chats
    if sub is None:
        return "none"
    if chat_id not in plan_chats(config, sub.plan):
        return "other plan"
    if sub.ends_at > now:
        return "active"
    return "grace" if sub.ends_at + config.telegram.grace > now else "ended"


async def _rows(ctx: Context) -> list[dict[str, Any]]:
    from ymds.billing.access_config import paid_chats
    ledger = await ctx.ledger()
    a = ctx.args
    chats = paid_chats(ctx.config)
    if a.chat is not None and a.chat not in chats:
        raise usage(f"chat {a.chat} is not a paid chat (telegram.channel_id or a plan's chats): "
                    f"use one of {', '.join(map(str, chats)) or 'none configured'}")
    now, admins = ctx.now(), set(ctx.config.telegram.admins)
    rows = []
    for member in await ledger.access.members(a.chat, present_only=a.audit or not a.all):
        if member.chat_id not in chats:
            continue
        sub = await ledger.subscriptions.subscription(member.user_id)
        state = _state(ctx.config, sub, member.chat_id, now)
        if member.status in ("creator", "administrator"):
            state = "chat admin"
        elif member.user_id in admins:
            state = "telegram.admins"
        rows.append({"chat_id": member.chat_id, "user_id": member.user_id, "status": member.status,
                     "joined_at": member.joined_at, "seen_at": member.seen_at, "subscription": state,
                     "ends_at": sub.ends_at if sub is not None else None})
    return rows


def _intruder(row: dict[str, Any]) -> bool:
    return row["status"] == "member" and row["subscription"] in ("none", "ended", "other plan")


async def cmd_members(ctx: Context) -> int:
    a = ctx.args
    if a.fix and not a.audit:
        raise usage("--fix works with --audit: ymds members --audit --fix")
    rows = await _rows(ctx)
    if a.audit:
        rows = [r for r in rows if _intruder(r)]
    if a.json:
        ctx.say(dumps([{**r, "joined_at": iso(r["joined_at"]) or None, "seen_at": iso(r["seen_at"]),
                        "ends_at": iso(r["ends_at"]) or None} for r in rows]))
    elif rows:
        out = [[str(r["chat_id"]), str(r["user_id"]), r["status"], r["subscription"],
                short_time(r["ends_at"]) if r["ends_at"] else "-", short_time(r["seen_at"])] for r in rows]
        for line in table(out, ["chat", "user", "status", "subscription", "ends (UTC)", "seen (UTC)"], right={0, 1}):
            ctx.say(line)
    if not a.audit:
        if not a.json:
            ctx.say(f"{len(rows)} member(s) seen" if rows else "no members seen yet (the bot records joins and leaves "
                                                                "from the moment it guards the chats)")
        return EXIT_OK
    if not rows:
        if not a.json:
            ctx.say("audit: every member seen has a subscription covering the chat")
        return EXIT_OK
    if a.fix:
        from ymds.bot.access.jobs import AccessBotClient, RemoveMember
        bot = AccessBotClient(ctx.queue())
        day = int(ctx.now() // 86400)
        for r in rows:
            await bot.remove_member(RemoveMember(r["chat_id"], r["user_id"], "audit",
                                                 f"access_audit:{r['chat_id']}:{r['user_id']}:{day}"))
        ctx.note(f"ymds: asked the bot to remove {len(rows)} member(s) without a subscription; it checks each again "
                 "first (a renewal or an administrator is kept) — run `ymds members --audit` again in a minute")
    else:
        ctx.note(f"ymds: {len(rows)} member(s) without a subscription covering their chat: "
                 "`ymds members --audit --fix` has the bot remove them")
    return EXIT_ATTENTION


def _chat_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a chat id (a negative number like -1001234567890)") from None


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chat", type=_chat_id, metavar="ID", help="only this paid chat")
    p.add_argument("--all", action="store_true", help="also those seen leaving or removed")
    p.add_argument("--audit", action="store_true", help="only members without a subscription covering the chat "
                   "(exit 3 when there are any)")
    p.add_argument("--fix", action="store_true", help="with --audit: have the bot remove them")
    p.add_argument("--json", action="store_true", help="JSON")


def _needs(args: argparse.Namespace) -> tuple[bool, bool]:
    return bool(args.fix), True


COMMANDS = (
    Command("members", "people seen in the paid chats with their subscription; --audit lists those without one, "
            "--fix removes them", _arguments, cmd_members, needs=_needs),
)
