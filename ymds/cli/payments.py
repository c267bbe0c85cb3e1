"""``ymds payments`` and ``ymds export``: the ledger's payments as a table, JSON, JSONL or CSV,
read page by page so that memory stays flat however many there are.

    ymds payments [--since 2026-11-01] [--status paid] [--limit N | --all] [--json]
    ymds export --format csv|json|jsonl [--output payments.csv]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
from collections import deque
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import IO, Any

from ymds.cli.command import Command, positive
from ymds.cli.context import Context
from ymds.cli.errors import EXIT_OK, usage
from ymds.cli.output import (csv_safe, dumps, iso, money, operation_time, operation_timestamp, parse_when, printable,
                             short_time, table)

PAGE_SIZE = 1000
STATUSES = ("paid", "overpaid", "underpaid", "late", "unmatched", "held")

EXPORT_FIELDS = (
    "operation_id", "paid_at", "received_at", "datetime", "purpose", "status", "withdraw_amount", "amount", "label",
    "invoice_label", "chat_id", "notification_type", "sender", "held", "source", "accepted_at",
    "granted_until", "notified", "promo_code",
)


def purpose(invoice: Any) -> str:
    """What a payment was for: ``plan <id>``, ``donation``, or ``unmatched`` (no invoice of ours)."""
    if invoice is None:
        return "unmatched"
    if invoice.kind == "subscription":
        return f"plan {invoice.plan}" if invoice.plan else "subscription"
    return str(invoice.kind)


def payment_record(p: Any, invoice: Any = None) -> dict[str, Any]:
    """What an export holds of a payment: no raw fields (they may carry personal data).

    ``paid_at`` is the operation's own time (when the buyer paid, also for a payment found by
    reconciliation later); ``received_at`` when ymds recorded it; ``chat_id`` the payer's chat."""
    return {
        "operation_id": p.operation_id,
        "paid_at": operation_time(p.datetime_raw) or iso(p.received_at),
        "received_at": iso(p.received_at),
        "datetime": p.datetime_raw,
        "purpose": purpose(invoice),
        "status": p.status,
        "withdraw_amount": money(p.withdraw_amount),
        "amount": money(p.amount),
        "label": p.label,
        "invoice_label": p.invoice_label or "",
        "chat_id": p.chat_id,
        "notification_type": p.notification_type,
        "sender": p.sender,
        "held": bool(p.held),
        "source": p.source,
        "accepted_at": iso(p.accepted_at),
        "granted_until": iso(p.granted_until),
        "notified": bool(p.notified),
        "promo_code": promo_code(invoice),
    }


def promo_code(invoice: Any) -> str:
    """The promo code fixed into the payment's invoice when it was made (issue 19), or ""."""
    code = (invoice.metadata or {}).get("promo") if invoice is not None else None
    return code if isinstance(code, str) else ""


async def iter_payments(ledger: Any, filters: dict[str, Any], page_size: int = PAGE_SIZE) -> AsyncIterator[Any]:
    """Every matching payment in arrival order, one ledger page in memory at a time."""
    cursor = None
    while True:
        page = await ledger.payments.list_payments(after_cursor=cursor, limit=page_size, **filters)
        for payment in page.payments:
            yield payment
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


async def with_invoices(ledger: Any, payments: AsyncIterator[Any]) -> AsyncIterator[tuple[Any, Any]]:
    """Each payment with its invoice (None for a payment without one of ours)."""
    async for payment in payments:
        invoice = await ledger.invoices.get_invoice(payment.invoice_label) if payment.invoice_label else None
        yield payment, invoice


def _filters(ctx: Context) -> dict[str, Any]:
    a = ctx.args
    now = ctx.now()
    filters: dict[str, Any] = {}
    if a.since:
        filters["since"] = parse_when(a.since, now, "--since")
    if a.until:
        filters["until"] = parse_when(a.until, now, "--until")
    if a.status:
        filters["status"] = a.status
    if a.label:
        filters["label"] = a.label
    if a.chat is not None:
        filters["chat_id"] = a.chat
    return filters


async def cmd_payments(ctx: Context) -> int:
    ledger = await ctx.ledger()
    a = ctx.args
    kept: deque[Any] = deque(maxlen=None if a.all else a.limit)
    total = 0
    paid_sum = Decimal("0.00")
    credited_sum = Decimal("0.00")
    async for p in iter_payments(ledger, _filters(ctx)):
        total += 1
        if p.status != "held":
            paid_sum += p.withdraw_amount
            credited_sum += p.amount
        kept.append(p)
    invoices = {p.invoice_label: await ledger.invoices.get_invoice(p.invoice_label)
                for p in kept if p.invoice_label}
    if a.json:
        ctx.say(dumps([payment_record(p, invoices.get(p.invoice_label)) for p in kept]))
        return EXIT_OK
    rows = [[short_time(operation_timestamp(p.datetime_raw) or p.received_at), printable(p.operation_id, 40), p.status,
             money(p.withdraw_amount), money(p.amount), printable(purpose(invoices.get(p.invoice_label)), 24),
             str(p.chat_id) if p.chat_id is not None else "-", printable(p.label or "-", 24), p.source]
            for p in kept]
    if rows:
        for line in table(rows, ["paid at", "operation", "status", "paid", "credited", "purpose", "payer chat",
                                 "label", "source"], right={3, 4}):
            ctx.say(line)
    shown = f"last {len(kept)} of " if len(kept) < total else ""
    ctx.say(f"{shown}{total} payment{'s' if total != 1 else ''}; paid {money(paid_sum)} RUB, "
            f"credited {money(credited_sum)} RUB (held payments not counted)")
    return EXIT_OK


async def _write_export(stream: IO[str], fmt: str, payments: AsyncIterator[tuple[Any, Any]], progress: Any) -> None:
    """Write ``payments`` to ``stream`` one record at a time (a JSON array element by element)."""
    if fmt == "csv":
        writer = csv.writer(stream, lineterminator="\r\n")
        writer.writerow(EXPORT_FIELDS)
        async for p, invoice in payments:
            record = payment_record(p, invoice)
            writer.writerow([csv_safe(record[f]) for f in EXPORT_FIELDS])
            progress.add()
    elif fmt == "jsonl":
        async for p, invoice in payments:
            stream.write(dumps(payment_record(p, invoice)) + "\n")
            progress.add()
    else:
        stream.write("[")
        first = True
        async for p, invoice in payments:
            stream.write(("\n" if first else ",\n") + dumps(payment_record(p, invoice)))
            first = False
            progress.add()
        stream.write("\n]\n" if not first else "]\n")
    stream.flush()


def _open_partial(target: str) -> tuple[str, IO[str]]:
    """``TARGET.part``, owner-only, renamed to TARGET when the export is complete."""
    partial = target + ".part"
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as e:
        raise usage(f"--output: cannot write {partial}: {e.strerror}") from None
    return partial, io.open(fd, "w", encoding="utf-8", newline="")


async def cmd_export(ctx: Context) -> int:
    from ymds.progress import Progress
    a = ctx.args
    ledger = await ctx.ledger()
    payments = with_invoices(ledger, iter_payments(ledger, _filters(ctx)))
    target = a.output
    partial: str | None = None
    stream = ctx.out
    if target and target != "-":
        partial, stream = _open_partial(target)
    progress = Progress("export", ctx.note, ctx.reactor, every=a.progress_every, unit="payments")
    try:
        await _write_export(stream, a.format, payments, progress)
    except BaseException:
        if partial is not None:
            stream.close()
            os.unlink(partial)
        raise
    if partial is not None:
        os.fsync(stream.fileno())
        stream.close()
        os.replace(partial, target)
    where = f" to {target}" if partial is not None else ""
    progress.done(f", done{where}")
    return EXIT_OK


def add_filters(p: argparse.ArgumentParser) -> None:
    """The options that choose payments, shared by ``payments`` and ``export``."""
    p.add_argument("--since", help="from this time: 2026-11-01, an ISO 8601 time (UTC unless it says), or 7d/12h back")
    p.add_argument("--until", help="before this time (same forms)")
    p.add_argument("--status", choices=STATUSES, help="only payments with this status")
    p.add_argument("--label", help="the invoice label (or a foreign label) of the payment")
    p.add_argument("--chat", type=int, help="the Telegram chat id the invoice was for")


def _payments_arguments(p: argparse.ArgumentParser) -> None:
    add_filters(p)
    p.add_argument("--limit", type=positive, default=50, help="show the last N matching payments (default 50)")
    p.add_argument("--all", action="store_true", help="show every matching payment")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("csv", "json", "jsonl"), default="csv",
                   help="csv (default), one JSON array, or JSON lines")
    p.add_argument("--output", "-o", help="write to FILE (atomically: FILE.part, then renamed); default stdout")
    p.add_argument("--progress-every", type=positive, default=10000, metavar="N",
                   help="a progress line on stderr every N rows")
    add_filters(p)


COMMANDS = (
    Command("payments", "list payments (newest last)", _payments_arguments, cmd_payments, needs_ledger=True),
    Command("export", "export payments as CSV or JSON, streaming page by page", _export_arguments, cmd_export,
            needs_ledger=True),
)
