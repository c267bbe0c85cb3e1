"""``ymds reconcile``: apply payments from the wallet's operation history whose notifications
never arrived (needs ``yoomoney.api_token``), by the billing role's own per-operation rule.

    ymds reconcile --since 2026-11-01 [--until 2026-11-20]
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import Any

from ymds.cli.command import Command, positive
from ymds.cli.context import Context
from ymds.cli.errors import EXIT_OK, unreachable, usage
from ymds.cli.output import iso, money, parse_when, printable


async def cmd_reconcile(ctx: Context) -> int:
    """Walk operation-history from --since and apply incoming operations the ledger lacks
    (their notifications never came), with the billing role's own rules; the stored
    reconciliation cursor of the billing timers is left alone."""
    from ymds.billing.tasks import BillingTasks
    from ymds.billing.timers import BillingTimers
    from ymds.progress import Progress
    from ymds.yoomoney.wallet_api import InsufficientScope, InvalidToken, WalletAPIError
    a = ctx.args
    now = ctx.now()
    since = parse_when(a.since, now, "--since")
    until = parse_when(a.until, now, "--until") if a.until else None
    wallet_api = ctx.wallet_api(required=True)
    ledger = await ctx.ledger()
    queue = ctx.queue()
    tasks = BillingTasks(ctx.config, ledger, queue, ctx.reactor, wallet_api=wallet_api)
    timers = BillingTimers(ctx.config, ledger, queue, ctx.reactor, tasks, wallet_api=wallet_api)
    progress = Progress("reconcile", ctx.note, ctx.reactor, every=a.progress_every, unit="operations")
    counts = {"seen": 0, "known": 0, "applied": 0, "released": 0, "skipped": 0}
    applied: list[tuple[Any, str]] = []
    try:
        async for op in wallet_api.iter_history(
                type="deposition", from_=datetime.fromtimestamp(since, timezone.utc),
                till=datetime.fromtimestamp(until, timezone.utc) if until else None, records=100, details=True):
            counts["seen"] += 1
            progress.add()
            kind, result = await timers.reconcile_operation(op, ctx.now())
            if kind in counts:
                counts[kind] += 1
            if kind in ("applied", "released"):
                applied.append((op, getattr(result, "outcome", kind)))  # an ApplyResult for these kinds
    except (InvalidToken, InsufficientScope) as e:
        raise usage(f"wallet API: {e}; issue a new token with operation-history and operation-details") from None
    except WalletAPIError as e:
        from ymds.sandbox.trust import TLS_HINT, is_tls_failure
        hint = f"; {TLS_HINT}" if is_tls_failure(str(e)) else ""
        raise unreachable(f"wallet API unreachable or failing ({ctx.config.yoomoney.api_url}): {e}{hint}") from None
    progress.done(", done")
    for op, outcome in applied:
        ctx.say(f"applied {printable(op.operation_id, 40)} {money(op.amount)} RUB label "
                f"{printable(op.label or '-', 40)}: {outcome}")
    ctx.say(f"seen {counts['seen']} incoming operations since {iso(since)}: {counts['known']} already in the ledger, "
            f"{counts['applied']} applied now, {counts['released']} released from hold, {counts['skipped']} skipped "
            "(refused or outgoing)")
    return EXIT_OK



def _reconcile_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", required=True, help="from this time: 2026-11-01, an ISO 8601 time, or 7d back")
    p.add_argument("--until", help="up to this time (default: now)")
    p.add_argument("--cafile", help="trust this PEM certificate for yoomoney.api_url (a self-signed sandbox)")
    p.add_argument("--insecure", action="store_true",
                   help="do not check the certificate of a wallet API on localhost/127.0.0.1")
    p.add_argument("--progress-every", type=positive, default=100, metavar="N",
                   help="a progress line every N operations")


COMMANDS = (
    Command("reconcile", "apply payments from the wallet's operation history whose notifications never arrived "
            "(needs yoomoney.api_token)", _reconcile_arguments, cmd_reconcile, needs_redis=True, needs_ledger=True),
)
