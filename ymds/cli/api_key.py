"""``ymds api-key``: keys of the integration REST API (/api/v1), kept in the ledger as hashes.

    ymds api-key create --scopes invoices:write,invoices:read [--name shop]   (the key is the last line)
    ymds api-key list [--json]
    ymds api-key revoke KEY_ID
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ymds.cli.command import Command
from ymds.cli.context import Context
from ymds.cli.errors import EXIT_ATTENTION, EXIT_OK, CommandError, usage
from ymds.cli.output import short_time, table


async def cmd_api_key(ctx: Context) -> int:
    a = ctx.args
    ledger = await ctx.ledger()
    if a.api_key_command == "create":
        return await _create(ctx, ledger)
    if a.api_key_command == "list":
        keys = await ledger.api_keys.api_key_list()
        if a.json:
            ctx.say(json.dumps([{"id": k.id, "name": k.name, "scopes": list(k.scopes), "created_at": k.created_at,
                                 "revoked_at": k.revoked_at} for k in keys]))
        else:
            for line in table([[k.id, k.name or "-", ",".join(k.scopes), short_time(k.created_at),
                                short_time(k.revoked_at)] for k in keys],
                              ["ID", "NAME", "SCOPES", "CREATED", "REVOKED"]):
                ctx.say(line)
        return EXIT_OK
    if await ledger.api_keys.api_key_revoke(a.key_id, ctx.now()):
        ctx.say(f"revoked {a.key_id} (a web process may still accept it for up to 5 seconds: its cache)")
        return EXIT_OK
    raise CommandError(f"no active API key {a.key_id!r} (see ymds api-key list)", EXIT_ATTENTION)


async def _create(ctx: Context, ledger: Any) -> int:
    from ymds.api.keys import key_hash, new_key, new_key_id, parse_scopes
    a = ctx.args
    try:
        scopes = parse_scopes(a.scopes)
    except ValueError as e:
        from ymds.billing.ledger import API_SCOPES
        raise usage(f"--scopes: {e}; choose from {', '.join(API_SCOPES)} (comma separated) or all") from None
    key, key_id = new_key(), new_key_id()
    await ledger.api_keys.api_key_create(key_id, key_hash(key), a.name or "", scopes, ctx.now())
    ctx.note(f"created API key {key_id} with scopes {' '.join(scopes)}; only its hash is stored, "
             "so copy the key now (it is the last line of the output):")
    ctx.say(key)
    return EXIT_OK


def _api_key_arguments(p: argparse.ArgumentParser) -> None:
    keys = p.add_subparsers(dest="api_key_command", metavar="ACTION", parser_class=type(p),
                            help="create, list or revoke")
    keys.required = True
    create = keys.add_parser("create", help="make a key (printed once, on the last line)")
    create.add_argument("--scopes", required=True,
                        help="comma separated: invoices:write, invoices:read, payments:read, subscriptions:read, or all")
    create.add_argument("--name", default="", help="a note for yourself, e.g. the shop it is for")
    listing = keys.add_parser("list", help="keys with their scopes (never the keys themselves)")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    revoke = keys.add_parser("revoke", help="stop a key working")
    revoke.add_argument("key_id", help="the key's id, as api-key list shows it (key_...)")


COMMANDS = (
    Command("api-key", "keys of the integration REST API (/api/v1)", _api_key_arguments, cmd_api_key,
            needs_ledger=True),
)
