"""``ymds api-key`` and ``ymds webhook``: the integration API's keys and the outgoing webhook
endpoints, kept in the ledger (hooked into ymds/cli.py).

    ymds api-key create --scopes invoices:write,invoices:read [--name shop]   (the key is the last line)
    ymds api-key list [--json]
    ymds api-key revoke KEY_ID
    ymds webhook add URL --events invoice.paid,subscription.extended|all       (prints id and secret)
    ymds webhook list [--json]
    ymds webhook remove ENDPOINT_ID
    ymds webhook redeliver EVENT_ID | --endpoint ENDPOINT_ID --since 2026-11-01
    ymds webhook log [--endpoint ID] [--event ID] [--limit N] [--json]

Exit statuses as in ymds/cli.py: 0 done, 1 usage error, 2 unreachable, 3 unknown id.  This
module does not import ymds.cli (which may run as ``python -m ymds.cli``, i.e. ``__main__``).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from urllib.parse import urlsplit

EXIT_OK, EXIT_USAGE, EXIT_ATTENTION = 0, 1, 3
EVENT_TYPES = ("invoice.paid", "invoice.underpaid", "payment.unmatched", "subscription.extended",
               "subscription.expired")


def _when(ts) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M")


def _table(ctx, header: list[str], rows: list[list[str]]) -> None:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    for row in [header] + rows:
        ctx.say("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())


def _refuse(ctx, message: str, status: int = EXIT_USAGE) -> int:
    ctx.err.write(f"ymds: {message}\n")
    return status


# --- api-key ---------------------------------------------------------------------------------

async def cmd_api_key(ctx) -> int:
    from ymds.api.keys import key_hash, new_key, new_key_id, parse_scopes
    a = ctx.args
    ledger = await ctx.ledger()
    if a.api_key_command == "create":
        try:
            scopes = parse_scopes(a.scopes)
        except ValueError as e:
            from ymds.billing.ledger import API_SCOPES
            return _refuse(ctx, f"--scopes: {e}; choose from {', '.join(API_SCOPES)} (comma separated) or all")
        key, key_id = new_key(), new_key_id()
        await ledger.api_key_create(key_id, key_hash(key), a.name or "", scopes, ctx.now())
        ctx.note(f"created API key {key_id} with scopes {' '.join(scopes)}; only its hash is stored, "
                 "so copy the key now (it is the last line of the output):")
        ctx.say(key)
        return EXIT_OK
    if a.api_key_command == "list":
        keys = await ledger.api_key_list()
        if a.json:
            ctx.say(json.dumps([{"id": k.id, "name": k.name, "scopes": list(k.scopes), "created_at": k.created_at,
                                 "revoked_at": k.revoked_at} for k in keys]))
        else:
            _table(ctx, ["ID", "NAME", "SCOPES", "CREATED", "REVOKED"],
                   [[k.id, k.name or "-", ",".join(k.scopes), _when(k.created_at), _when(k.revoked_at)] for k in keys])
        return EXIT_OK
    if await ledger.api_key_revoke(a.key_id, ctx.now()):
        ctx.say(f"revoked {a.key_id} (a web process may still accept it for up to 5 seconds: its cache)")
        return EXIT_OK
    return _refuse(ctx, f"no active API key {a.key_id!r} (see ymds api-key list)", EXIT_ATTENTION)


# --- webhook ---------------------------------------------------------------------------------

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


async def _wake(ctx, endpoint_ids) -> None:
    """Ask a billing worker to deliver now; without Redis the billing sweep does it within a minute."""
    from twisted.internet.defer import Deferred
    try:
        queue = ctx.queue()
        for endpoint_id in endpoint_ids:
            await Deferred.fromCoroutine(_enqueue(queue, endpoint_id)).addTimeout(5, ctx.reactor)
    except Exception:
        ctx.note("redis not reachable: the billing role's sweep delivers them within a minute of its next start")


async def _enqueue(queue, endpoint_id):
    return await queue.enqueue("billing", "webhook_deliver", {"endpoint_id": endpoint_id})


async def cmd_webhook(ctx) -> int:
    from ymds.webhooks.signing import new_secret
    import secrets
    a = ctx.args
    ledger = await ctx.ledger()
    command = a.webhook_command
    if command == "add":
        problem = _check_url(a.url)
        if problem:
            return _refuse(ctx, f"URL {a.url[:100]!r}: {problem}")
        try:
            events = _parse_events(a.events)
        except ValueError as e:
            return _refuse(ctx, f"--events: {e}; choose from {', '.join(EVENT_TYPES)} (comma separated) or all")
        endpoint_id, secret = "we_" + secrets.token_hex(6), new_secret()
        await ledger.webhook_endpoint_add(endpoint_id, a.url, events, secret, ctx.now())
        if a.url.startswith("http://") and urlsplit(a.url).hostname not in ("localhost", "127.0.0.1", "::1"):
            ctx.note("warning: plain http: the events (amounts, your metadata) travel unencrypted")
        ctx.note("verify each delivery's Ymds-Signature header with this secret (ymds.client.verify_webhook):")
        ctx.say(f"endpoint: {endpoint_id}")
        ctx.say(f"secret: {secret}")
        return EXIT_OK
    if command == "list":
        endpoints = await ledger.webhook_endpoints(include_removed=a.all)
        if a.json:
            ctx.say(json.dumps([{"id": e.id, "url": e.url, "events": list(e.events), "pending": e.pending,
                                 "failed": e.failed, "created_at": e.created_at, "removed_at": e.removed_at}
                                for e in endpoints]))
        else:
            _table(ctx, ["ID", "URL", "EVENTS", "PENDING", "FAILED", "CREATED", "REMOVED"],
                   [[e.id, e.url[:60], ",".join(e.events), str(e.pending), str(e.failed), _when(e.created_at),
                     _when(e.removed_at)] for e in endpoints])
        return EXIT_ATTENTION if any(e.failed for e in endpoints if e.removed_at is None) and not a.json else EXIT_OK
    if command == "remove":
        if await ledger.webhook_endpoint_remove(a.endpoint_id, ctx.now()):
            ctx.say(f"removed {a.endpoint_id}: nothing more is delivered to it")
            return EXIT_OK
        return _refuse(ctx, f"no active endpoint {a.endpoint_id!r} (see ymds webhook list)", EXIT_ATTENTION)
    if command == "redeliver":
        if (a.event_id is None) == (a.endpoint is None):
            return _refuse(ctx, "redeliver takes an EVENT_ID, or --endpoint ID with --since")
        if a.endpoint is not None and not a.since:
            return _refuse(ctx, "--endpoint needs --since (e.g. --since 2026-11-01 or --since 2d)")
        since = None
        if a.since:
            since = _parse_since(ctx, a.since)
            if since is None:
                return EXIT_USAGE
        endpoints = await ledger.webhook_redeliver(ctx.now(), event_id=a.event_id, endpoint_id=a.endpoint, since=since)
        if not endpoints:
            return _refuse(ctx, "nothing to redeliver: unknown event, or no active endpoint wants it", EXIT_ATTENTION)
        pending = 0
        for endpoint_id in endpoints:
            pending += len(await ledger.webhook_deliveries(endpoint_id=endpoint_id, status="pending", limit=100000))
        ctx.say(f"queued again: {pending} pending deliveries to {', '.join(endpoints)}")
        await _wake(ctx, endpoints)
        return EXIT_OK
    # log
    attempts = await ledger.webhook_attempts(endpoint_id=a.endpoint, event_id=a.event, limit=a.limit)
    if a.json:
        ctx.say(json.dumps([{"endpoint_id": t.endpoint_id, "event_id": t.event_id, "at": t.at,
                             "status_code": t.status_code, "error": t.error, "duration": round(t.duration, 3),
                             "outcome": t.outcome} for t in attempts]))
    else:
        _table(ctx, ["AT", "ENDPOINT", "EVENT", "OUTCOME", "STATUS", "MS", "ERROR"],
               [[_when(t.at), t.endpoint_id, t.event_id, t.outcome, str(t.status_code or "-"),
                 str(int(t.duration * 1000)), "".join(c if c.isprintable() else "?" for c in (t.error or ""))[:60]]
                for t in attempts])
    return EXIT_OK


def _parse_since(ctx, text: str) -> float | None:
    import re
    now = ctx.now()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if match:
        return now - int(match.group(1)) * units[match.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        _refuse(ctx, f"--since: {text!r} is not a date; write 2026-11-01, an ISO 8601 time or 2d")
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


# --- hooking into ymds/cli.py ----------------------------------------------------------------

# name -> (coroutine function, needs Redis, needs the ledger), like ymds.cli.COMMANDS
COMMANDS = {
    "api-key": (cmd_api_key, False, True),
    "webhook": (cmd_webhook, False, True),
}


def add_parsers(sub, parser_class) -> None:
    """Add the ``api-key`` and ``webhook`` subcommands to ymds's argparse subparsers."""
    p = sub.add_parser("api-key", help="keys of the integration REST API (/api/v1)")
    keys = p.add_subparsers(dest="api_key_command", metavar="ACTION", parser_class=parser_class)
    keys.required = True
    create = keys.add_parser("create", help="make a key (printed once, on the last line)")
    create.add_argument("--scopes", required=True,
                        help="comma separated: invoices:write, invoices:read, payments:read, subscriptions:read, or all")
    create.add_argument("--name", default="", help="a note for yourself, e.g. the shop it is for")
    listing = keys.add_parser("list", help="keys with their scopes (never the keys themselves)")
    listing.add_argument("--json", action="store_true")
    revoke = keys.add_parser("revoke", help="stop a key working")
    revoke.add_argument("key_id", help="the key's id, as api-key list shows it (key_...)")

    p = sub.add_parser("webhook", help="outgoing webhook endpoints, deliveries and their log")
    hooks = p.add_subparsers(dest="webhook_command", metavar="ACTION", parser_class=parser_class)
    hooks.required = True
    add = hooks.add_parser("add", help="register an endpoint; prints its id and signing secret")
    add.add_argument("url")
    add.add_argument("--events", required=True, help=f"comma separated: {', '.join(EVENT_TYPES)}; or all")
    listing = hooks.add_parser("list", help="endpoints with pending and failed deliveries")
    listing.add_argument("--all", action="store_true", help="include removed endpoints")
    listing.add_argument("--json", action="store_true")
    remove = hooks.add_parser("remove", help="stop delivering to an endpoint")
    remove.add_argument("endpoint_id")
    redeliver = hooks.add_parser("redeliver", help="send events again (same id and body, a fresh signature)")
    redeliver.add_argument("event_id", nargs="?", help="one event (evt_...)")
    redeliver.add_argument("--endpoint", help="every event of this endpoint created since --since")
    redeliver.add_argument("--since", help="2026-11-01, an ISO 8601 time, or 2d/12h back")
    log = hooks.add_parser("log", help="the delivery log: every attempt with its status, error and duration")
    log.add_argument("--endpoint")
    log.add_argument("--event")
    log.add_argument("--limit", type=int, default=100)
    log.add_argument("--json", action="store_true")
