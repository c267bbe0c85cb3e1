"""``ymds overlay-url`` and ``ymds overlay``: the stream overlay's secret URLs and moderation.

    ymds overlay-url [--rotate]     the two OBS browser-source URLs (a token is made on first use;
                                    --rotate makes a new one and the old URLs stop working)
    ymds overlay skip ID            do not show (or stop showing) the alert of event ID
    ymds overlay replay ID          show the alert of donation event ID again

Event ids are the ``id:`` of the overlay's event stream (e.g. 1732900000000-0); the owner's
bot alert and the web node's log do not carry names, so the id is the handle.
"""

from __future__ import annotations

import argparse
from typing import Any

from ymds.cli.command import Command
from ymds.cli.context import Context
from ymds.cli.errors import EXIT_ATTENTION, EXIT_OK, CommandError, usage

OBS_SIZES = {"alerts": "800 x 600", "goal": "800 x 120"}


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


async def cmd_overlay(ctx: Context) -> int:
    from ymds.overlay.events import BadEvent, entry_order
    a = ctx.args
    try:
        entry_order(a.event_id)
    except BadEvent:
        raise usage(f"{a.event_id[:40]!r} is not an event id; copy the id: of the event, e.g. 1732900000000-0") from None
    writer = await _writer(ctx)
    if a.overlay_command == "skip":
        await writer.skip(a.event_id)
        ctx.say(f"skipped {a.event_id}: overlays drop that alert (or stop showing it)")
        return EXIT_OK
    entry_id = await writer.replay(a.event_id)
    if entry_id is None:
        raise CommandError(f"no donation event {a.event_id} in the overlay stream (it keeps the newest 1000)",
                           EXIT_ATTENTION)
    ctx.say(f"replayed {a.event_id} as {entry_id}")
    return EXIT_OK


def _overlay_arguments(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="overlay_command", metavar="ACTION", parser_class=type(p),
                               help="skip or replay")
    actions.required = True
    skip = actions.add_parser("skip", help="do not show, or stop showing, the alert of one event")
    skip.add_argument("event_id", help="the event's id, e.g. 1732900000000-0")
    replay = actions.add_parser("replay", help="show the alert of one donation event again")
    replay.add_argument("event_id", help="the event's id, e.g. 1732900000000-0")


COMMANDS = (
    Command("overlay-url", "the stream overlay's two OBS browser-source URLs (--rotate: new secret)",
            _overlay_url_arguments, cmd_overlay_url, needs_ledger=True),
    Command("overlay", "stream overlay moderation: skip or replay an alert", _overlay_arguments, cmd_overlay,
            needs_redis=True),
)
