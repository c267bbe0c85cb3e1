"""``ymds admin-link``: a one-time sign-in link to the dashboard, or the end of every session.

    ymds admin-link [--minutes 10]   print <public_url>/admin/login?t=… (single use; expires)
    ymds admin-link --revoke-all     sign every dashboard session out; unused links stop working

Sessions and links live in Redis (``redis.url``), so any web node accepts the link.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from ymds.cli.command import Command
from ymds.cli.context import Context
from ymds.cli.errors import EXIT_OK, usage

MAX_MINUTES = 24 * 60


async def cmd_admin_link(ctx: Context) -> int:
    from ymds.admin.sessions import login_url
    from ymds.admin.web import QueueRedis, admin_sessions
    a = ctx.args
    sessions = admin_sessions(QueueRedis(ctx.queue()), ctx.reactor, ctx.config)
    if a.revoke_all:
        await sessions.revoke_all()
        ctx.note("every dashboard session has ended; sign-in links issued before now do not work / "
                 "все сеансы панели завершены, выданные ранее ссылки не работают")
        return EXIT_OK
    if not 1 <= a.minutes <= MAX_MINUTES:
        raise usage(f"--minutes must be from 1 to {MAX_MINUTES}")
    token = await sessions.issue_login_token(a.minutes, admin="cli")
    ctx.say(login_url(ctx.config.server.public_url, token))
    until = datetime.fromtimestamp(ctx.now() + a.minutes * 60, timezone.utc).astimezone(ZoneInfo(ctx.config.server.timezone))
    ctx.note(f"open it once within {a.minutes} min (until {until:%Y-%m-%d %H:%M %Z}); keep it private / "
             f"откройте один раз до {until:%H:%M %Z}, никому не показывайте")
    return EXIT_OK


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--minutes", type=int, default=10, help=f"minutes the link stays valid (1 to {MAX_MINUTES}; default 10)")
    p.add_argument("--revoke-all", action="store_true",
                   help="end every dashboard session and make unused links useless instead of printing a link")


COMMANDS = (
    Command("admin-link", "a one-time sign-in link to the dashboard (/admin), or --revoke-all sessions", _arguments,
            cmd_admin_link, needs_redis=True),
)
