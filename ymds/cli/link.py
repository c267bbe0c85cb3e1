"""``ymds link``: create (or reuse) an invoice for a plan and a chat and print its signed pay
link; with ``--via-queue`` a running billing worker makes it (a web host without the ledger).

    ymds link --plan month --chat 123456789 [--via-queue] [--json]
"""

from __future__ import annotations

import argparse
from decimal import Decimal
from typing import Any

from ymds.cli.command import Command
from ymds.cli.context import Context
from ymds.cli.errors import EXIT_ATTENTION, EXIT_OK, CommandError, unreachable, usage
from ymds.cli.output import dumps, iso, money
from ymds.config import ConfigError


async def cmd_link(ctx: Context) -> int:
    from ymds.links import pay_url
    a = ctx.args
    plan = ctx.config.plan(a.plan)
    if plan is None:
        known = ", ".join(p.id for p in ctx.config.plans) or "none configured"
        raise usage(f"--plan: {a.plan!r} is not a plan; use one of: {known} ([[plans]] in the configuration)")
    if len(ctx.config.links.secret) < 16:
        raise usage(str(ConfigError("links.secret", "is missing or shorter than 16 bytes",
                                    "put a long random string in links.secret_file (e.g. openssl rand -hex 32)")))
    if a.via_queue:
        return await _link_via_billing(ctx, plan)
    ledger = await ctx.ledger()
    invoice = await ledger.invoices.create_invoice(
        "subscription", plan.price, ctx.now(), ctx.config.links.ttl, plan=plan.id, days=plan.days,
        chat_id=a.chat, description=plan.title, reuse_open=True)
    url = pay_url(ctx.config.server.public_url, ctx.config.links.secret, invoice.label, int(invoice.expires_at))
    _print_link(ctx, plan, url, invoice.label, invoice.amount, iso(invoice.expires_at))
    return EXIT_OK


async def _link_via_billing(ctx: Context, plan: Any) -> int:
    """The split layout's web host has no ledger: ask a running billing worker (the same
    ``create_invoices`` call the bot makes) and pick this plan's invoice."""
    from ymds.queue.errors import JobTimeout, RemoteJobError
    a = ctx.args
    try:
        from ymds.billing.jobs import BillingClient
        answer = await BillingClient(ctx.queue()).create_invoices(a.chat, None, timeout=a.timeout)
    except JobTimeout:
        raise unreachable(f"no billing worker answered within {a.timeout:g}s: is a billing role running "
                          "(systemctl status ymds / ymds-billing@1)?") from None
    except RemoteJobError as e:
        raise CommandError(f"billing refused: {e}", EXIT_ATTENTION) from None
    for invoice in answer.invoices:
        if invoice.plan == plan.id:
            _print_link(ctx, plan, invoice.url, invoice.label, Decimal(str(invoice.amount)), invoice.expires_at or "")
            return EXIT_OK
    raise CommandError(f"billing did not return an invoice for plan {plan.id!r}: do both hosts have the same "
                       "[[plans]]?", EXIT_ATTENTION)


def _print_link(ctx: Context, plan: Any, url: str, label: str, amount: Decimal, expires_at: str) -> None:
    if ctx.args.json:
        ctx.say(dumps({"url": url, "label": label, "plan": plan.id, "amount": amount, "chat_id": ctx.args.chat,
                       "expires_at": expires_at}))
    else:
        ctx.say(url)
        ctx.note(f"invoice {label}: {plan.title} ({plan.id}), {money(amount)} RUB, chat {ctx.args.chat}, "
                 f"valid until {expires_at}")


def _link_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plan", required=True, help="a plan id from [[plans]]")
    p.add_argument("--chat", required=True, type=int, help="the Telegram chat id that gets access when paid")
    p.add_argument("--via-queue", action="store_true",
                   help="ask a running billing worker through Redis instead of opening the ledger (web hosts)")
    p.add_argument("--timeout", type=float, default=10.0, help="with --via-queue: seconds to wait for billing")
    p.add_argument("--json", action="store_true", help="the link and its invoice as JSON")


def _link_needs(args: argparse.Namespace) -> tuple[bool, bool]:
    """Through the queue: Redis and no ledger; otherwise the ledger only."""
    return (True, False) if args.via_queue else (False, True)


COMMANDS = (
    Command("link", "create (or reuse) an invoice and print its signed pay link", _link_arguments, cmd_link,
            needs=_link_needs),
)
