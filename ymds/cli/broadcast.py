"""``ymds broadcast``: one message to every active, expired or past subscriber, through the
bot's rate-limited sender, exactly once each.

    ymds broadcast --to active|expired|all [--plan P] --text-file F [--dry-run]

The broadcast's id is made of the text and the audience: running the same command again
(after a crash, a kill, a Redis outage) resumes it, sending only to those not yet done.
Progress goes to stderr (sent/total, estimated time left); the counts are the last line.
Exit status 0 when every recipient is done, 3 when some are still pending (run it again).
"""

from __future__ import annotations

import argparse

from ymds.cli.command import Command, positive
from ymds.cli.context import Context
from ymds.cli.errors import EXIT_ATTENTION, EXIT_OK, CommandError, usage

MAX_TEXT = 4096


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_TEXT * 4 + 1).strip()
    except OSError as e:
        raise usage(f"--text-file {path!r}: {e.strerror or e}; give a readable UTF-8 file") from None
    except UnicodeDecodeError:
        raise usage(f"--text-file {path!r} is not UTF-8 text; save it as UTF-8") from None
    if not text:
        raise usage(f"--text-file {path!r} is empty; write the message (Telegram HTML) in it")
    if len(text) > MAX_TEXT:
        raise usage(f"--text-file {path!r} has {len(text)} characters; Telegram takes at most {MAX_TEXT}")
    from ymds.billing.broadcast_text import html_problem
    problem = html_problem(text)
    if problem:
        raise usage(f"--text-file {path!r}: Telegram would refuse it: {problem}; fix the text, nothing was sent")
    return text


def _counts_line(broadcast: str, counts: dict[str, int]) -> str:
    total = sum(counts.values())
    return (f"broadcast {broadcast}: {counts.get('sent', 0)} sent, {counts.get('blocked', 0)} blocked, "
            f"{counts.get('failed', 0)} failed, {counts.get('pending', 0)} pending, of {total}")


def _progress_line(broadcast: str, progress: object, now: float) -> str:
    from ymds.billing.broadcast import Progress
    assert isinstance(progress, Progress)
    left = progress.seconds_left(now)
    eta = "" if left is None else f", about {int(left // 60)} min {int(left % 60)} s left"
    errors = f", {progress.errors} to retry" if progress.errors else ""
    return f"{broadcast}: {progress.counts.get('sent', 0)}/{progress.total} sent{errors}{eta}"


async def cmd_broadcast(ctx: Context) -> int:
    from ymds.billing.broadcast import BroadcastAborted, Broadcaster, broadcast_id, text_hash
    a = ctx.args
    text = _read_text(a.text_file)
    if a.plan is not None and ctx.config.plan(a.plan) is None:
        known = ", ".join(p.id for p in ctx.config.plans) or "none configured"
        raise usage(f"--plan {a.plan!r} is not a plan of the configuration; plans: {known}")
    ledger = await ctx.ledger()
    bid = broadcast_id(text, a.to, a.plan)
    existing = await ledger.broadcasts.broadcast_get(bid)
    if a.dry_run:
        if existing is not None:
            ctx.say(_counts_line(bid, await ledger.broadcasts.broadcast_counts(bid)) + " (dry run: nothing sent)")
        else:
            audience = await ledger.subscribers.audience(ctx.now(), a.to, a.plan)
            ctx.say(f"broadcast {bid}: would send to {len(audience)} chats (dry run: nothing sent)")
        return EXIT_OK
    if existing is None:
        audience = await ledger.subscribers.audience(ctx.now(), a.to, a.plan)
        existing, _ = await ledger.broadcasts.broadcast_start(bid, a.to, a.plan, text_hash(text), audience, ctx.now())
    else:
        counts = await ledger.broadcasts.broadcast_counts(bid)
        ctx.note(f"resuming {bid}: {counts.get('pending', 0)} of {existing.total} still to send")
    sender = Broadcaster(ledger, ctx.queue(), ctx.reactor, window=a.window, call_timeout=a.timeout,
                         report=lambda p: ctx.note(_progress_line(bid, p, ctx.now())))
    try:
        progress = await sender.run(bid, text)
    except BroadcastAborted as e:
        counts = await ledger.broadcasts.broadcast_counts(bid)
        ctx.say(_counts_line(bid, counts))
        raise CommandError(f"the bot refused the message: {e}; fix the text (Telegram HTML) and send it "
                           "again (a changed text is a new broadcast)", EXIT_ATTENTION) from None
    ctx.say(_counts_line(bid, progress.counts))
    if progress.counts.get("pending", 0):
        ctx.note(f"some recipients are not done ({progress.last_error or 'no answer'}); "
                 "run the same command again to finish: nobody gets the message twice")
        return EXIT_ATTENTION
    return EXIT_OK


def _broadcast_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--to", required=True, choices=("active", "expired", "all"),
                   help="active subscribers, those whose subscription ended, or all")
    p.add_argument("--plan", help="only subscribers of this plan")
    p.add_argument("--text-file", required=True, metavar="FILE",
                   help="the message, UTF-8 Telegram HTML (<b>, <i>, <a href>), at most 4096 characters")
    p.add_argument("--dry-run", action="store_true", help="only count the recipients; send nothing")
    p.add_argument("--window", type=positive, default=50,
                   help="messages handed to the bot at once (default 50; the bot's rate limit paces them)")
    p.add_argument("--timeout", type=positive, default=120,
                   help="seconds to wait for the bot's answer to one message (default 120)")


def _needs(args: argparse.Namespace) -> tuple[bool, bool]:
    return not args.dry_run, True


COMMANDS = (
    Command("broadcast", "send one message to subscribers, once each (resumable)", _broadcast_arguments,
            cmd_broadcast, needs=_needs),
)
