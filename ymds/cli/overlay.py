"""``ymds overlay-url`` and ``ymds overlay``: the stream overlay's secret URLs and moderation.

    ymds overlay-url [--rotate]     the two OBS browser-source URLs (a token is made on first use;
                                    --rotate makes a new one and the old URLs stop working)
    ymds overlay skip ID            do not show (or stop showing) the alert of ID
    ymds overlay replay ID          show the alert of donation ID again

ID is the ``id:`` of the overlay's event stream (e.g. 1732900000000-0) or the donation's
operation id (in the bot's donation alert and ``ymds payments``), looked up in the ledger.
"""

from __future__ import annotations

import argparse
from typing import Any

from ymds.cli.command import Command
from ymds.cli.context import Context
from ymds.cli.errors import EXIT_ATTENTION, EXIT_OK, CommandError, usage

OBS_SIZES = {"alerts": "800 x 600", "goal": "800 x 170"}


async def cmd_overlay_url(ctx: Context) -> int:
    from ymds.overlay.tokens import new_token, overlay_urls
    ledger = await ctx.ledger()
    token = await ledger.overlay.overlay_token()
    if token is None or ctx.args.rotate:
        token = new_token()
        replaced = await ledger.overlay.set_overlay_token(token, ctx.now())
        if replaced:
            ctx.note("new overlay token: the old URLs stop working within 10 seconds; "
                     "paste the new ones into OBS / новые адреса вставьте в OBS")
    urls = overlay_urls(ctx.config.server.public_url, token)
    ctx.note("Add each as an OBS Browser source (width x height), keep the URLs secret / "
             "добавьте каждый адрес в OBS как «Браузер» и никому не показывайте:")
    for name in ("alerts", "goal"):
        ctx.say(f"{name}: {urls[name]}")
        ctx.note(f"  {name}: {OBS_SIZES[name]}")
    return EXIT_OK


def _overlay_url_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rotate", action="store_true",
                   help="make a new secret token; the old URLs stop working (use it if a URL leaked)")


async def _writer(ctx: Context) -> Any:
    from ymds.overlay.stream import OverlayStreamWriter
    return OverlayStreamWriter(ctx.queue().pool, ctx.config.redis.prefix)


def _is_event_id(text: str) -> bool:
    from ymds.overlay.events import BadEvent, entry_order
    try:
        entry_order(text)
    except BadEvent:
        return False
    return True


async def _event_id(ctx: Context, given: str) -> str:
    """The overlay event id of ``given``: an event id as is, or a payment's operation id
    (the bot's donation alert and ``ymds payments`` show it) looked up in the ledger."""
    if _is_event_id(given):
        return given
    if len(given) > 64:
        raise usage("give an event id (e.g. 1732900000000-0) or the donation's operation id")
    ledger = await ctx.ledger()
    found = await ledger.overlay.outbox_entry(given)
    if found is None:
        raise CommandError(f"no alert was shown for operation {given!r} (not a donation, not paid yet, "
                           "or below min_alert_amount)", EXIT_ATTENTION)
    return str(found)


async def cmd_overlay(ctx: Context) -> int:
    a = ctx.args
    event_id = await _event_id(ctx, a.event_id)
    writer = await _writer(ctx)
    if a.overlay_command == "skip":
        await writer.skip(event_id)
        ctx.say(f"skipped {event_id}: overlays drop that alert (or stop showing it)")
        return EXIT_OK
    entry_id = await writer.replay(event_id)
    if entry_id is None:
        raise CommandError(f"no donation event {event_id} in the overlay stream (it keeps the newest 1000)",
                           EXIT_ATTENTION)
    ctx.say(f"replayed {event_id} as {entry_id}")
    return EXIT_OK


def _overlay_arguments(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="overlay_command", metavar="ACTION", parser_class=type(p),
                               help="skip or replay")
    actions.required = True
    what = "the event's id (e.g. 1732900000000-0) or the donation's operation id"
    skip = actions.add_parser("skip", help="do not show, or stop showing, the alert of one donation")
    skip.add_argument("event_id", metavar="ID", help=what)
    replay = actions.add_parser("replay", help="show the alert of one donation again")
    replay.add_argument("event_id", metavar="ID", help=what)


COMMANDS = (
    Command("overlay-url", "the stream overlay's two OBS browser-source URLs (--rotate: new secret)",
            _overlay_url_arguments, cmd_overlay_url, needs_ledger=True),
    Command("overlay", "stream overlay moderation: skip or replay an alert", _overlay_arguments, cmd_overlay,
            needs=lambda args: (True, not _is_event_id(getattr(args, "event_id", "") or ""))),
)
