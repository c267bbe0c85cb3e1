"""``ymds webhook``: the outgoing webhook endpoints kept in the ledger, their deliveries and
their log.

    ymds webhook add URL --events invoice.paid,subscription.extended|all       (prints id and secret)
    ymds webhook list [--all] [--json]
    ymds webhook remove ENDPOINT_ID
    ymds webhook redeliver EVENT_ID | --endpoint ENDPOINT_ID --since 2026-11-01
    ymds webhook log [--endpoint ID] [--event ID] [--limit N] [--json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from ymds.cli.command import Command, positive
from ymds.cli.context import Context
from ymds.cli.errors import EXIT_ATTENTION, EXIT_OK, CommandError, usage
from ymds.cli.output import parse_when, printable, short_time, table

EVENT_TYPES = ("invoice.paid", "invoice.underpaid", "payment.unmatched", "subscription.extended",
               "subscription.expired")


def _parse_events(text: str) -> tuple[str, ...]:
    names = [n.strip() for n in text.replace(" ", ",").split(",") if n.strip()]
    if names in (["all"], ["*"]):
        return ("*",)
    unknown = [n for n in names if n not in EVENT_TYPES]
    if unknown or not names:
        raise ValueError(f"unknown event {unknown[0]!r}" if unknown else "no events given")
    return tuple(dict.fromkeys(names))


def _check_url(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        return "give an http(s) URL with a host, e.g. https://shop.example.org/ymds-webhook"
    return None


async def _wake(ctx: Context, endpoint_ids: Iterable[str]) -> None:
    """Ask a billing worker to deliver now; without Redis the billing sweep does it within a minute."""
    from twisted.internet.defer import Deferred
    try:
        queue = ctx.queue()
        for endpoint_id in endpoint_ids:
            await Deferred.fromCoroutine(_enqueue(queue, endpoint_id)).addTimeout(5, ctx.reactor)
    except Exception:
        ctx.note("redis not reachable: the billing role's sweep delivers them within a minute of its next start")


async def _enqueue(queue: Any, endpoint_id: str) -> Any:
    from ymds.billing.jobs import BillingClient
    return await BillingClient(queue).webhook_deliver(endpoint_id)


async def _add(ctx: Context, ledger: Any) -> int:
    from ymds.webhooks.signing import new_secret
    import secrets
    a = ctx.args
    problem = _check_url(a.url)
    if problem:
        raise usage(f"URL {a.url[:100]!r}: {problem}")
    try:
        events = _parse_events(a.events)
    except ValueError as e:
        raise usage(f"--events: {e}; choose from {', '.join(EVENT_TYPES)} (comma separated) or all") from None
    endpoint_id, secret = "we_" + secrets.token_hex(6), new_secret()
    await ledger.webhooks.webhook_endpoint_add(endpoint_id, a.url, events, secret, ctx.now())
    if a.url.startswith("http://") and urlsplit(a.url).hostname not in ("localhost", "127.0.0.1", "::1"):
        ctx.note("warning: plain http: the events (amounts, your metadata) travel unencrypted")
    ctx.note("verify each delivery's Ymds-Signature header with this secret (ymds.client.verify_webhook):")
    ctx.say(f"endpoint: {endpoint_id}")
    ctx.say(f"secret: {secret}")
    return EXIT_OK


async def _list(ctx: Context, ledger: Any) -> int:
    a = ctx.args
    endpoints = await ledger.webhooks.webhook_endpoints(include_removed=a.all)
    if a.json:
        ctx.say(json.dumps([{"id": e.id, "url": e.url, "events": list(e.events), "pending": e.pending,
                             "failed": e.failed, "created_at": e.created_at, "removed_at": e.removed_at}
                            for e in endpoints]))
        return EXIT_OK
    for line in table([[e.id, e.url[:60], ",".join(e.events), str(e.pending), str(e.failed), short_time(e.created_at),
                        short_time(e.removed_at)] for e in endpoints],
                      ["ID", "URL", "EVENTS", "PENDING", "FAILED", "CREATED", "REMOVED"]):
        ctx.say(line)
    return EXIT_ATTENTION if any(e.failed for e in endpoints if e.removed_at is None) else EXIT_OK


async def _remove(ctx: Context, ledger: Any) -> int:
    endpoint_id = ctx.args.endpoint_id
    if await ledger.webhooks.webhook_endpoint_remove(endpoint_id, ctx.now()):
        ctx.say(f"removed {endpoint_id}: nothing more is delivered to it")
        return EXIT_OK
    raise CommandError(f"no active endpoint {endpoint_id!r} (see ymds webhook list)", EXIT_ATTENTION)


async def _redeliver(ctx: Context, ledger: Any) -> int:
    a = ctx.args
    if (a.event_id is None) == (a.endpoint is None):
        raise usage("redeliver takes an EVENT_ID, or --endpoint ID with --since")
    if a.endpoint is not None and not a.since:
        raise usage("--endpoint needs --since (e.g. --since 2026-11-01 or --since 2d)")
    since = parse_when(a.since, ctx.now(), "--since") if a.since else None
    endpoints = await ledger.webhooks.webhook_redeliver(ctx.now(), event_id=a.event_id, endpoint_id=a.endpoint, since=since)
    if not endpoints:
        raise CommandError("nothing to redeliver: unknown event, or no active endpoint wants it", EXIT_ATTENTION)
    pending = 0
    for endpoint_id in endpoints:
        pending += len(await ledger.webhooks.webhook_deliveries(endpoint_id=endpoint_id, status="pending", limit=100000))
    ctx.say(f"queued again: {pending} pending deliveries to {', '.join(endpoints)}")
    await _wake(ctx, endpoints)
    return EXIT_OK


async def _log(ctx: Context, ledger: Any) -> int:
    a = ctx.args
    attempts = await ledger.webhooks.webhook_attempts(endpoint_id=a.endpoint, event_id=a.event, limit=a.limit)
    if a.json:
        ctx.say(json.dumps([{"endpoint_id": t.endpoint_id, "event_id": t.event_id, "at": t.at,
                             "status_code": t.status_code, "error": t.error, "duration": round(t.duration, 3),
                             "outcome": t.outcome} for t in attempts]))
        return EXIT_OK
    for line in table([[short_time(t.at), t.endpoint_id, t.event_id, t.outcome, str(t.status_code or "-"),
                        str(int(t.duration * 1000)), printable(t.error or "", 60)] for t in attempts],
                      ["AT", "ENDPOINT", "EVENT", "OUTCOME", "STATUS", "MS", "ERROR"]):
        ctx.say(line)
    return EXIT_OK


ACTIONS = {"add": _add, "list": _list, "remove": _remove, "redeliver": _redeliver, "log": _log}


async def cmd_webhook(ctx: Context) -> int:
    ledger = await ctx.ledger()
    return await ACTIONS[ctx.args.webhook_command](ctx, ledger)


def _webhook_arguments(p: argparse.ArgumentParser) -> None:
    hooks = p.add_subparsers(dest="webhook_command", metavar="ACTION", parser_class=type(p),
                             help="add, list, remove, redeliver or log")
    hooks.required = True
    add = hooks.add_parser("add", help="register an endpoint; prints its id and signing secret")
    add.add_argument("url", help="where to POST the events, e.g. https://shop.example.org/ymds-webhook")
    add.add_argument("--events", required=True, help=f"comma separated: {', '.join(EVENT_TYPES)}; or all")
    listing = hooks.add_parser("list", help="endpoints with pending and failed deliveries")
    listing.add_argument("--all", action="store_true", help="include removed endpoints")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    remove = hooks.add_parser("remove", help="stop delivering to an endpoint")
    remove.add_argument("endpoint_id", help="the endpoint's id, as webhook list shows it (we_...)")
    redeliver = hooks.add_parser("redeliver", help="send events again (same id and body, a fresh signature)")
    redeliver.add_argument("event_id", nargs="?", help="one event (evt_...)")
    redeliver.add_argument("--endpoint", help="every event of this endpoint created since --since")
    redeliver.add_argument("--since", help="2026-11-01, an ISO 8601 time, or 2d/12h back")
    log = hooks.add_parser("log", help="the delivery log: every attempt with its status, error and duration")
    log.add_argument("--endpoint", help="only attempts to this endpoint")
    log.add_argument("--event", help="only attempts of this event")
    log.add_argument("--limit", type=positive, default=100, help="the newest N attempts (default 100)")
    log.add_argument("--json", action="store_true", help="JSON instead of a table")


COMMANDS = (
    Command("webhook", "outgoing webhook endpoints, deliveries and their log", _webhook_arguments, cmd_webhook,
            needs_ledger=True),
)
