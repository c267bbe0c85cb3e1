"""The overlay in the web role: :func:`make_overlay_node` builds one node's
:class:`ymds.overlay.service.OverlayNode` from the configuration, asking billing (over the
job queue) for the current token and the goal, never the ledger itself."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from ymds.billing.overlay_jobs import OverlayClient
from ymds.overlay.events import GoalEvent
from ymds.overlay.pages import OverlaySettings
from ymds.overlay.resource import read_sound
from ymds.overlay.service import OverlayNode
from ymds.overlay.tokens import CachedTokenCheck


def board_goal(board: Any) -> GoalEvent | None:
    """The goal event of a DonationBoard (None without a goal)."""
    if board is None or board.goal is None:
        return None
    return GoalEvent(Decimal(board.raised), Decimal(board.goal), board.goal_title, board.goal_until)


def make_overlay_node(reactor: Any, config: Any, queue: Any, *, clock: Any = None,
                      token_ttl: float = 10.0) -> OverlayNode:
    """One web node's overlay (a Service; mount ``node.resource`` at ``/overlay``).

    Tokens are checked against billing's ``overlay_token`` at most every ``token_ttl``
    seconds (a rotation takes effect within that); a fresh overlay's goal bar is the newest
    goal in the stream, or billing's ``donation_board`` when the stream has none for the
    configured goal."""
    client = OverlayClient(queue)
    o = config.overlay

    async def current_token() -> str | None:
        view = await client.overlay_token()
        return view.token if view is not None else None

    d = config.donations

    async def goal_snapshot() -> GoalEvent | None:
        # the node's reader already holds the newest goal of the stream; billing is asked only
        # when it has none for this goal (an empty or trimmed stream, a goal just changed)
        seen = node.tailer.last_goal
        if seen is not None and (seen.goal, seen.title, seen.until) == (d.goal, d.goal_title, d.goal_until or None):
            return seen
        return board_goal(await client.donation_board())

    sound = read_sound(o.sound_file) if o.sound_file else None
    settings = OverlaySettings(alert_seconds=o.alert_seconds, sound=sound is not None, lang=o.language)
    node = OverlayNode(reactor, config.redis.url, config.redis.prefix,
                       CachedTokenCheck(clock or reactor, current_token, ttl=token_ttl), settings, sound,
                       clock=clock, goal_snapshot=goal_snapshot if d.goal is not None else None,
                       max_per_token=o.max_connections_per_token, max_total=o.max_connections)
    return node
