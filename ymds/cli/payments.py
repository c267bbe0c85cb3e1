"""``ymds``: the owner's admin command.  Reads the same configuration as ``twistd ymds``.

    ymds --config ymds.toml payments [--since 2026-11-01] [--status paid] [--json]
    ymds --config ymds.toml export --format csv --output payments.csv
    ymds --config ymds.toml quarantine [--resolve ID]
    ymds --config ymds.toml reverify
    ymds --config ymds.toml dead-letters [--queue billing|bot]
    ymds --config ymds.toml replay [--queue billing|bot] (ID | --all)
    ymds --config ymds.toml reconcile --since 2026-11-01
    ymds --config ymds.toml link --plan month --chat 123456789
    ymds --config ymds.toml test-notification [--url URL]
    ymds --config ymds.toml stats
    ymds --config ymds.toml check
    ymds --config ymds.toml api-key create|list|revoke ...      (ymds/cli_integration.py)
    ymds --config ymds.toml webhook add|list|remove|redeliver|log ...

Exit status (scripts rely on it; docs/OPERATIONS.md repeats it):

    0  done, nothing needs attention
    1  usage or configuration error (the line says which key or option, and the fix)
    2  a dependency is unreachable: Redis, the ledger database, the wallet API, the URL
    3  done, but something needs attention: unresolved quarantine, dead letters, items
       reverify could not resolve, a test notification not answered 200, an unknown id
    4  internal error (a bug: the traceback is printed; please report it)

This is a program of its own: ``main()`` imports the global reactor and hands it down.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections import deque
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, AsyncIterator, Callable

from ymds import cli_integration
from ymds.config import Config, ConfigError, load_config, parse_duration

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_UNREACHABLE = 2
EXIT_ATTENTION = 3
EXIT_INTERNAL = 4

QUEUES = ("billing", "bot")
PAGE_SIZE = 1000


class CommandError(Exception):
    """Stops the command with one line on stderr and an exit status."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def unreachable(message: str) -> CommandError:
    return CommandError(message, EXIT_UNREACHABLE)


def usage(message: str) -> CommandError:
    return CommandError(message, EXIT_USAGE)


# --- small formatting helpers -----------------------------------------------------------


def iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def short_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M")


def printable(text: Any, limit: int = 60) -> str:
    """One terminal-safe line: values may come from hostile notification bodies."""
    s = "".join(c if c.isprintable() else "?" for c in str(text))
    return s if len(s) <= limit else s[: limit - 1] + "…"


def table(rows: list[list[str]], header: list[str], right: set[int] = frozenset()) -> list[str]:
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells):
        out = [(c.rjust(widths[i]) if i in right else c.ljust(widths[i])) for i, c in enumerate(cells)]
        return "  ".join(out).rstrip()

    return [line(header)] + [line(r) for r in rows]


def parse_when(text: str, now: float, option: str) -> float:
    """``2026-11-01`` (UTC midnight), an ISO 8601 time (UTC unless it says otherwise), or a
    duration back from now (``7d``, ``12h``, ``30m``)."""
    text = text.strip()
    if text and text[-1] in "smhd" and text[:-1].replace(".", "", 1).isdigit():
        try:
            return now - parse_duration(option, text)
        except ConfigError:
            pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise usage(f"{option}: {text!r} is not a date; write 2026-11-01, 2026-11-01T12:00:00+03:00 or 7d") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def money(value: Decimal) -> str:
    return f"{value:.2f}"


class JSONOut(json.JSONEncoder):
    def default(self, o):
        if isinstance(o, Decimal):
            return f"{o:f}"
        return super().default(o)


def dumps(obj) -> str:
    return json.dumps(obj, cls=JSONOut, ensure_ascii=False, sort_keys=True)


# --- payments as records ----------------------------------------------------------------

EXPORT_FIELDS = (
    "operation_id", "received_at", "datetime", "status", "withdraw_amount", "amount", "label",
    "invoice_label", "chat_id", "notification_type", "sender", "held", "source", "accepted_at",
    "granted_until", "notified",
)


def payment_record(p) -> dict:
    """What an export holds of a payment: no raw fields (they may carry personal data)."""
    return {
        "operation_id": p.operation_id,
        "received_at": iso(p.received_at),
        "datetime": p.datetime_raw,
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
    }


def csv_safe(value: Any) -> str:
    """Spreadsheets run cells that start with = + - @ as formulas: labels come from payers."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    s = str(value)
    if s and s[0] in "=+-@\t\r" and not _is_number(s):
        return "'" + s
    return s


def _is_number(s: str) -> bool:
    try:
        Decimal(s)
        return True
    except Exception:
        return False


async def iter_payments(ledger, filters: dict, page_size: int = PAGE_SIZE) -> AsyncIterator:
    """Every matching payment in arrival order, one ledger page in memory at a time."""
    cursor = None
    while True:
        page = await ledger.list_payments(after_cursor=cursor, limit=page_size, **filters)
        for payment in page.payments:
            yield payment
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


# --- the context a command runs in -------------------------------------------------------


class Context:
    """The reactor, the config, the output streams and lazily opened collaborators."""

    def __init__(self, reactor, config: Config, args, out, err):
        self.reactor = reactor
        self.config = config
        self.args = args
        self.out = out
        self.err = err
        self._ledger = None
        self._queue = None
        self._wallet_api = None

    def say(self, line: str = "") -> None:
        self.out.write(line + "\n")

    def note(self, line: str) -> None:
        self.err.write(line + "\n")
        self.err.flush()

    def now(self) -> float:
        return self.reactor.seconds()

    async def ledger(self):
        if self._ledger is None:
            self._ledger = await open_ledger_checked(self.reactor, self.config.ledger.url)
        return self._ledger

    def queue(self):
        if self._queue is None:
            from ymds.queue.client import RedisJobQueue
            self._queue = RedisJobQueue(self.reactor, self.config.redis)
        return self._queue

    def wallet_api(self, required: bool):
        if self._wallet_api is None and self.config.yoomoney.api_token:
            from ymds.yoomoney.wallet_api import WalletAPI
            self._wallet_api = WalletAPI(self.reactor, self.config.yoomoney.api_url, self.config.yoomoney.api_token)
        if self._wallet_api is None and required:
            raise usage("yoomoney.api_token is not set: this command needs the wallet API; put an OAuth token "
                        "with operation-history and operation-details in yoomoney.api_token_file "
                        "(docs/OWNER-GUIDE.md, step 4)")
        return self._wallet_api

    async def close(self) -> None:
        from twisted.internet.defer import Deferred
        if self._wallet_api is not None:
            await self._wallet_api.close()
        if self._queue is not None:
            await Deferred.fromCoroutine(self._queue.close())
        if self._ledger is not None:
            await self._ledger.close()


async def open_ledger_checked(reactor, url: str):
    """Open and migrate the ledger, turning driver failures into one clear line."""
    from ymds.billing.ledger import LedgerError, SchemaTooNew, open_ledger
    try:
        ledger = open_ledger(url, reactor)
    except LedgerError as e:
        raise unreachable(f"ledger unavailable: {e}") from None
    try:
        await ledger.migrate()
    except SchemaTooNew as e:
        await ledger.close()
        raise usage(f"ledger: {e}") from None
    except Exception as e:  # the driver's own errors: sqlite3 / psycopg OperationalError ...
        await ledger.close()
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise unreachable(f"ledger unreachable ({describe_ledger(url)}): {first}") from None
    return ledger


def describe_ledger(url: str) -> str:
    """The ledger URL without a password."""
    if url.startswith(("postgresql:", "postgres:")):
        from urllib.parse import urlsplit
        parts = urlsplit(url)
        return f"postgresql://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}{parts.path}"
    return url


def describe_redis(url: str) -> str:
    try:
        from ymds.queue.redis import parse_redis_url
        return parse_redis_url(url).describe()
    except Exception:
        return "redis.url"


# --- commands ---------------------------------------------------------------------------


def _filters(ctx: Context) -> dict:
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
    kept = deque(maxlen=None if a.all else a.limit)
    total = 0
    paid_sum = Decimal("0.00")
    credited_sum = Decimal("0.00")
    async for p in iter_payments(ledger, _filters(ctx)):
        total += 1
        if p.status != "held":
            paid_sum += p.withdraw_amount
            credited_sum += p.amount
        kept.append(p)
    if a.json:
        ctx.say(dumps([payment_record(p) for p in kept]))
        return EXIT_OK
    rows = [[short_time(p.received_at), printable(p.operation_id, 40), p.status, money(p.withdraw_amount),
             money(p.amount), printable(p.label or "-", 24), str(p.chat_id) if p.chat_id is not None else "-",
             p.source] for p in kept]
    if rows:
        for line in table(rows, ["received (UTC)", "operation", "status", "paid", "credited", "label", "chat", "source"],
                          right={3, 4}):
            ctx.say(line)
    shown = f"last {len(kept)} of " if len(kept) < total else ""
    ctx.say(f"{shown}{total} payment{'s' if total != 1 else ''}; paid {money(paid_sum)} RUB, "
            f"credited {money(credited_sum)} RUB (held payments not counted)")
    return EXIT_OK


async def cmd_export(ctx: Context) -> int:
    from ymds.progress import Progress
    a = ctx.args
    ledger = await ctx.ledger()
    filters = _filters(ctx)
    target = a.output
    if target and target != "-":
        partial = target + ".part"
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as e:
            raise usage(f"--output: cannot write {partial}: {e.strerror}") from None
        stream = io.open(fd, "w", encoding="utf-8", newline="")
    else:
        partial = None
        stream = ctx.out
    progress = Progress("export", ctx.note, ctx.reactor, every=a.progress_every, unit="payments")
    try:
        if a.format == "csv":
            writer = csv.writer(stream, lineterminator="\r\n")
            writer.writerow(EXPORT_FIELDS)
            async for p in iter_payments(ledger, filters):
                record = payment_record(p)
                writer.writerow([csv_safe(record[f]) for f in EXPORT_FIELDS])
                progress.add()
        elif a.format == "jsonl":
            async for p in iter_payments(ledger, filters):
                stream.write(dumps(payment_record(p)) + "\n")
                progress.add()
        else:  # one JSON array, written element by element
            stream.write("[")
            first = True
            async for p in iter_payments(ledger, filters):
                stream.write(("\n" if first else ",\n") + dumps(payment_record(p)))
                first = False
                progress.add()
            stream.write("\n]\n" if not first else "]\n")
        stream.flush()
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


def _quarantine_summary(q) -> dict:
    from ymds.yoomoney.notification import NotificationError, parse_form
    info = {"operation_id": "", "label": "", "amount": ""}
    try:
        fields = parse_form(q.body.encode("utf-8"))
        info = {"operation_id": fields.get("operation_id", ""), "label": fields.get("label", ""),
                "amount": fields.get("withdraw_amount") or fields.get("amount", "")}
    except (NotificationError, UnicodeError, ValueError):
        pass
    return info


async def cmd_quarantine(ctx: Context) -> int:
    ledger = await ctx.ledger()
    a = ctx.args
    if a.resolve is not None:
        how = "manual" + (f": {a.note[:180]}" if a.note else "")
        if await ledger.quarantine_resolve(a.resolve, how, ctx.now()):
            ctx.say(f"quarantine #{a.resolve} resolved ({printable(how, 200)})")
            return EXIT_OK
        ctx.note(f"ymds: quarantine #{a.resolve} is unknown or already resolved (see: ymds quarantine --all)")
        return EXIT_ATTENTION
    rows = await ledger.quarantine_list(unresolved_only=not a.all, limit=a.limit)
    unresolved = sum(1 for q in rows if q.resolved_at is None)
    if a.json:
        ctx.say(dumps([{
            "id": q.id, "received_at": iso(q.received_at), "last_seen": iso(q.last_seen), "count": q.count,
            "reason": q.reason, "remote": q.remote, "size": q.size, "body": q.body,
            "resolved_at": iso(q.resolved_at) or None, "resolution": q.resolution, **_quarantine_summary(q),
        } for q in rows]))
    elif rows:
        out = []
        for q in rows:
            s = _quarantine_summary(q)
            out.append([str(q.id), short_time(q.received_at), str(q.count), printable(q.reason, 40),
                        printable(q.remote or "-", 40), printable(s["operation_id"] or "-", 32),
                        printable(s["amount"] or "-", 12), printable(s["label"] or "-", 24),
                        printable(q.resolution, 30) if q.resolved_at else "open"])
        for line in table(out, ["id", "received (UTC)", "seen", "reason", "from", "operation", "amount", "label", "state"],
                          right={0, 2}):
            ctx.say(line)
    if not a.json:
        if unresolved:
            ctx.say(f"{unresolved} unresolved: `ymds reverify` credits those that now verify or that the wallet API "
                    "confirms; `ymds quarantine --resolve ID` closes one by hand")
        else:
            ctx.say("quarantine is empty" if not rows else "nothing unresolved")
    return EXIT_ATTENTION if unresolved else EXIT_OK


async def cmd_reverify(ctx: Context) -> int:
    from ymds.billing.reverify import reverify
    from ymds.billing.tasks import BillingTasks
    ledger = await ctx.ledger()
    wallet_api = ctx.wallet_api(required=False)
    if wallet_api is None:
        ctx.note("ymds: no yoomoney.api_token: re-checking signatures with the current secret only "
                 "(with a token, operation-details can confirm payments whatever their signature)")
    queue = ctx.queue()
    tasks = BillingTasks(ctx.config, ledger, queue, ctx.reactor, wallet_api=wallet_api)
    counts = await reverify(ledger, ctx.config, wallet_api=wallet_api, clock=ctx.reactor, tasks=tasks)
    if ctx.args.json:
        ctx.say(dumps(counts))
    else:
        ctx.say(f"checked {counts['checked']}: applied {counts['applied']} (signature now verifies), "
                f"{counts['api_confirmed']} confirmed by the wallet API, {counts['still_quarantined']} still "
                f"quarantined, {counts['unparseable']} unparseable")
    left = counts["still_quarantined"] + counts["unparseable"]
    if left:
        ctx.note(f"ymds: {left} notification(s) stay in quarantine: see `ymds quarantine`; resolve forgeries "
                 "with `ymds quarantine --resolve ID --note forged`")
        return EXIT_ATTENTION
    return EXIT_OK


async def _queue_admin(ctx: Context):
    from ymds.queue.admin import QueueAdmin
    return QueueAdmin(ctx.reactor, ctx.config.redis)


async def cmd_dead_letters(ctx: Context) -> int:
    from ymds.queue.keys import QueueKeys
    a = ctx.args
    admin = await _queue_admin(ctx)
    try:
        queues = [a.queue] if a.queue else list(QUEUES)
        everything = []
        totals = {}
        for q in queues:
            totals[q] = int(await admin.pool.execute("XLEN", QueueKeys(admin.prefix, q).dead))
            for letter in await admin.list_dead(q, limit=a.limit):
                everything.append(dict(letter, queue=q))
    finally:
        await admin.close()
    if a.json:
        ctx.say(dumps(everything))
    else:
        if everything:
            rows = [[d["queue"], d["id"], short_time(d["failed_at"]), printable(d["task"], 24), str(d["attempts"]),
                     printable(d["reason"] or "-", 20), printable(d["error"] or "-", 60)] for d in everything]
            for line in table(rows, ["queue", "id", "failed (UTC)", "task", "tries", "reason", "error"], right={4}):
                ctx.say(line)
        ctx.say(", ".join(f"{q}: {n} dead letter{'s' if n != 1 else ''}" for q, n in totals.items()))
        if any(totals.values()):
            ctx.say("after fixing the cause: `ymds replay --queue QUEUE ID` or `ymds replay --queue QUEUE --all`")
    return EXIT_ATTENTION if any(totals.values()) else EXIT_OK


async def cmd_replay(ctx: Context) -> int:
    from ymds.queue.keys import QueueKeys
    a = ctx.args
    admin = await _queue_admin(ctx)
    try:
        queues = [a.queue] if a.queue else list(QUEUES)
        total = 0
        for q in queues:
            if a.all:
                waiting = int(await admin.pool.execute("XLEN", QueueKeys(admin.prefix, q).dead))
                if waiting:
                    ctx.note(f"replay: {q}: {waiting} dead letter{'s' if waiting != 1 else ''} to put back")
            try:
                n = await admin.replay(q, None if a.all else a.id)
            except ValueError as e:
                raise usage(str(e)) from None
            if n or a.all:
                ctx.note(f"replay: {q}: {n} job{'s' if n != 1 else ''} back in the queue")
            total += n
            if n and not a.all:
                break
    finally:
        await admin.close()
    if not a.all and total == 0:
        ctx.note(f"ymds: no dead letter {a.id} in {' or '.join(queues)} (see: ymds dead-letters)")
        return EXIT_ATTENTION
    ctx.say(f"replayed {total} job{'s' if total != 1 else ''}")
    return EXIT_OK


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
    applied = []
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
                applied.append((op, result.outcome))
    except (InvalidToken, InsufficientScope) as e:
        raise usage(f"wallet API: {e}; issue a new token with operation-history and operation-details") from None
    except WalletAPIError as e:
        raise unreachable(f"wallet API unreachable or failing ({ctx.config.yoomoney.api_url}): {e}") from None
    progress.done(", done")
    for op, outcome in applied:
        ctx.say(f"applied {printable(op.operation_id, 40)} {money(op.amount)} RUB label "
                f"{printable(op.label or '-', 40)}: {outcome}")
    ctx.say(f"seen {counts['seen']} incoming operations since {iso(since)}: {counts['known']} already in the ledger, "
            f"{counts['applied']} applied now, {counts['released']} released from hold, {counts['skipped']} skipped "
            "(refused or outgoing)")
    return EXIT_OK


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
    invoice = await ledger.create_invoice(
        "subscription", plan.price, ctx.now(), ctx.config.links.ttl, plan=plan.id, days=plan.days,
        chat_id=a.chat, description=plan.title, reuse_open=True)
    url = pay_url(ctx.config.server.public_url, ctx.config.links.secret, invoice.label, int(invoice.expires_at))
    _print_link(ctx, plan, url, invoice.label, invoice.amount, iso(invoice.expires_at))
    return EXIT_OK


async def _link_via_billing(ctx: Context, plan) -> int:
    """The split layout's web host has no ledger: ask a running billing worker (the same
    ``create_invoices`` call the bot makes) and pick this plan's invoice."""
    from ymds.queue.errors import JobTimeout, RemoteJobError
    a = ctx.args
    try:
        answer = await ctx.queue().call("billing", "create_invoices", {"chat_id": a.chat, "user_id": None},
                                        timeout=a.timeout)
    except JobTimeout:
        raise unreachable(f"no billing worker answered within {a.timeout:g}s: is a billing role running "
                          "(systemctl status ymds / ymds-billing@1)?") from None
    except RemoteJobError as e:
        raise CommandError(f"billing refused: {e}", EXIT_ATTENTION) from None
    for invoice in (answer or {}).get("invoices", []):
        if invoice.get("plan") == plan.id:
            _print_link(ctx, plan, invoice["url"], invoice["label"], Decimal(str(invoice["amount"])),
                        invoice.get("expires_at") or "")
            return EXIT_OK
    raise CommandError(f"billing did not return an invoice for plan {plan.id!r}: do both hosts have the same "
                       "[[plans]]?", EXIT_ATTENTION)


def _print_link(ctx: Context, plan, url: str, label: str, amount: Decimal, expires_at: str) -> None:
    if ctx.args.json:
        ctx.say(dumps({"url": url, "label": label, "plan": plan.id, "amount": amount, "chat_id": ctx.args.chat,
                       "expires_at": expires_at}))
    else:
        ctx.say(url)
        ctx.note(f"invoice {label}: {plan.title} ({plan.id}), {money(amount)} RUB, chat {ctx.args.chat}, "
                 f"valid until {expires_at}")


async def cmd_test_notification(ctx: Context) -> int:
    from ymds.yoomoney.test_notification import SCHEME_FOR_POLICY, send_test_notification
    a = ctx.args
    secret = ctx.config.yoomoney.notification_secret
    if not secret:
        raise usage(str(ConfigError("yoomoney.notification_secret", "is not set",
                                    "copy the secret from YooMoney's HTTP notifications page into "
                                    "yoomoney.notification_secret_file")))
    url = a.url or ctx.config.server.public_url.rstrip("/") + "/yoomoney/notify"
    trust = None
    if a.cafile:
        try:
            with open(a.cafile, "rb") as f:
                trust = f.read()
        except OSError as e:
            raise usage(f"--cafile: cannot read {a.cafile}: {e.strerror}") from None
    scheme = SCHEME_FOR_POLICY[ctx.config.yoomoney.signature]
    try:
        status, body = await send_test_notification(ctx.reactor, url, secret, scheme, trust_pem=trust,
                                                    insecure_local_tls=a.insecure, timeout=a.timeout)
    except Exception as e:
        from twisted.internet.defer import TimeoutError as DeferredTimeout
        why = f"no answer within {a.timeout:g}s" if isinstance(e, DeferredTimeout) else printable(
            getattr(e, "reasons", None) and e.reasons[0].getErrorMessage() or str(e) or type(e).__name__, 200)
        raise unreachable(f"test notification: cannot reach {url}: {why}") from None
    answer = printable(body.decode("utf-8", "replace").strip() or "(empty)", 80)
    ctx.say(f"POST {url}: HTTP {status} {answer}")
    if status == 200:
        ctx.say("ok: the server verified the signed test notification and changed nothing "
                "(its log shows: notification test 200 operation_id=test-notification)")
        return EXIT_OK
    hints = {
        403: "the server refused the signature: yoomoney.notification_secret here differs from the server's, "
             "or its yoomoney.signature excludes the scheme sent",
        400: "the server could not parse the notification: is this URL ymds's /yoomoney/notify?",
        404: "nothing at this URL: the notification URL is <public_url>/yoomoney/notify",
        503: "the server could not reach Redis: YooMoney would retry after 10 minutes and 1 hour",
        429: "the server rate-limits this address after too many refusals: wait a minute",
    }
    ctx.note("ymds: " + hints.get(status, "unexpected answer: YooMoney counts only 200 as delivered"))
    return EXIT_ATTENTION


async def cmd_stats(ctx: Context) -> int:
    ledger = await ctx.ledger()
    stats = await ledger.stats(ctx.now())
    queue = ctx.queue()
    queues = {}
    for name in QUEUES:
        queues[name] = await queue.snapshot(name)
    if ctx.args.json:
        ctx.say(dumps({"payments_today": stats.payments_today, "sum_today": stats.sum_today,
                       "payments_month": stats.payments_month, "sum_month": stats.sum_month,
                       "active_subscribers": stats.active_subscribers, "quarantined": stats.quarantined,
                       "queues": queues}))
        return EXIT_OK
    ctx.say(f"payments today (UTC):  {stats.payments_today}  {money(stats.sum_today)} RUB credited")
    ctx.say(f"payments this month:   {stats.payments_month}  {money(stats.sum_month)} RUB credited")
    ctx.say(f"active subscribers:    {stats.active_subscribers}")
    ctx.say(f"quarantined:           {stats.quarantined}")
    for name, s in queues.items():
        ctx.say(f"queue {name + ':':9}{s['depth']} in stream, {s['pending']} in progress, {s['delayed']} waiting to "
                f"retry, {s['dead']} dead, oldest {s['oldest_pending_age']:.0f}s")
    return EXIT_OK


def run_check_command(config: Config, args, out) -> int:
    from ymds.check import run_check
    from ymds.config import require_secrets
    if args.roles:
        roles = {r.strip() for r in args.roles.split(",") if r.strip()}
        if not roles or roles - {"web", "billing", "bot"}:
            raise usage(f"--roles takes any of web,billing,bot (got {args.roles!r})")
    else:
        roles = {"web", "billing"} | ({"bot"} if config.telegram.token else set())
    try:
        require_secrets(config, roles)
    except ConfigError as e:
        raise usage(str(e)) from None
    status = run_check(config, roles, lambda line: out.write(line + "\n"))
    return EXIT_OK if status == 0 else EXIT_UNREACHABLE


# name -> (coroutine function, needs Redis, needs the ledger)
COMMANDS: dict[str, tuple[Callable, bool, bool]] = {
    "payments": (cmd_payments, False, True),
    "export": (cmd_export, False, True),
    "quarantine": (cmd_quarantine, False, True),
    "reverify": (cmd_reverify, True, True),
    "dead-letters": (cmd_dead_letters, True, False),
    "replay": (cmd_replay, True, False),
    "reconcile": (cmd_reconcile, True, True),
    "link": (cmd_link, False, True),
    "test-notification": (cmd_test_notification, False, False),
    "stats": (cmd_stats, True, True),
}
COMMANDS.update(cli_integration.COMMANDS)  # api-key, webhook


# --- argument parsing ------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """Usage errors are one line and exit status 1, like configuration errors."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"ymds: {message} (ymds --help)\n")


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def _add_filters(p) -> None:
    p.add_argument("--since", help="from this time: 2026-11-01, an ISO 8601 time (UTC unless it says), or 7d/12h back")
    p.add_argument("--until", help="before this time (same forms)")
    p.add_argument("--status", choices=("paid", "overpaid", "underpaid", "late", "unmatched", "held"))
    p.add_argument("--label", help="the invoice label (or a foreign label) of the payment")
    p.add_argument("--chat", type=int, help="the Telegram chat id the invoice was for")


def build_parser() -> Parser:
    parser = Parser(prog="ymds", description="Admin command of ymds (reads the same configuration as twistd ymds).",
                    epilog="Exit status: 0 ok, 1 usage or configuration error, 2 Redis/ledger/API unreachable, "
                           "3 done but something needs attention, 4 internal error. See docs/OPERATIONS.md.")
    parser.add_argument("-c", "--config", help="path of ymds.toml (default: $YMDS_CONFIG)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one configuration key (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show ymds's log lines on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    p = sub.add_parser("payments", help="list payments (newest last)")
    _add_filters(p)
    p.add_argument("--limit", type=positive, default=50, help="show the last N matching payments (default 50)")
    p.add_argument("--all", action="store_true", help="show every matching payment")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")

    p = sub.add_parser("export", help="export payments as CSV or JSON, streaming page by page")
    p.add_argument("--format", choices=("csv", "json", "jsonl"), default="csv")
    p.add_argument("--output", "-o", help="write to FILE (atomically: FILE.part, then renamed); default stdout")
    p.add_argument("--progress-every", type=positive, default=10000, metavar="N", help="a progress line on stderr every N rows")
    _add_filters(p)

    p = sub.add_parser("quarantine", help="notifications that failed verification; --resolve ID closes one")
    p.add_argument("--resolve", type=int, metavar="ID", help="mark quarantined notification ID resolved")
    p.add_argument("--note", default="", help="with --resolve: why (kept in the ledger's event log)")
    p.add_argument("--all", action="store_true", help="include resolved ones")
    p.add_argument("--limit", type=positive, default=100)
    p.add_argument("--json", action="store_true", help="JSON, including the raw bodies")

    p = sub.add_parser("reverify", help="re-check quarantined notifications; credit those that verify now "
                                        "or that the wallet API confirms")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("dead-letters", help="jobs that failed every attempt")
    p.add_argument("--queue", choices=QUEUES, help="one queue (default: both)")
    p.add_argument("--limit", type=positive, default=50, help="newest N per queue")
    p.add_argument("--json", action="store_true", help="JSON, including the jobs' arguments")

    p = sub.add_parser("replay", help="put dead letters back in their queue")
    p.add_argument("--queue", choices=QUEUES, help="one queue (default: look in both)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", help="the dead letter's id, as `ymds dead-letters` shows it")
    which.add_argument("--all", action="store_true", help="every dead letter")

    p = sub.add_parser("reconcile", help="apply payments from the wallet's operation history whose "
                                         "notifications never arrived (needs yoomoney.api_token)")
    p.add_argument("--since", required=True, help="from this time: 2026-11-01, an ISO 8601 time, or 7d back")
    p.add_argument("--until", help="up to this time (default: now)")
    p.add_argument("--progress-every", type=positive, default=100, metavar="N", help="a progress line every N operations")

    p = sub.add_parser("link", help="create (or reuse) an invoice and print its signed pay link")
    p.add_argument("--plan", required=True, help="a plan id from [[plans]]")
    p.add_argument("--chat", required=True, type=int, help="the Telegram chat id that gets access when paid")
    p.add_argument("--via-queue", action="store_true",
                   help="ask a running billing worker through Redis instead of opening the ledger (web hosts)")
    p.add_argument("--timeout", type=float, default=10.0, help="with --via-queue: seconds to wait for billing")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("test-notification", help="send a signed test notification, like YooMoney's test button")
    p.add_argument("--url", help="default: <server.public_url>/yoomoney/notify")
    p.add_argument("--cafile", help="trust this PEM certificate (a self-signed server)")
    p.add_argument("--insecure", action="store_true", help="do not check the certificate of localhost/127.0.0.1")
    p.add_argument("--timeout", type=float, default=30.0)

    p = sub.add_parser("stats", help="payments today and this month, subscribers, quarantine, queues")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("check", help="validate the configuration and reach Redis and the ledger (like twistd ymds --check)")
    p.add_argument("--roles", help="the roles to check for (default: web,billing and bot with a token)")
    cli_integration.add_parsers(sub, Parser)
    return parser


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or "." not in key:
            raise usage(f"--set takes section.key=value, e.g. --set redis.url=redis://10.0.0.5:6379/0 (got {pair!r})")
        out[key.strip()] = value
    return out


def load(args, env) -> Config:
    path = args.config or env.get("YMDS_CONFIG")
    if not path:
        raise usage("no configuration: give --config /etc/ymds/ymds.toml or set YMDS_CONFIG "
                    "(an example: contrib/ymds.example.toml)")
    try:
        return load_config(path=path, env=env, overrides=_overrides(args.set))
    except ConfigError as e:
        raise usage(str(e)) from None


def preflight(config: Config, needs_redis: bool, needs_ledger: bool) -> None:
    """Fail fast with one line before the reactor starts (the drivers would retry for a while)."""
    from ymds.check import check_ledger, check_redis
    # ymds.check's blocking probe knows no private CA (rediss://...?ca_file=): leave those to
    # the queue's own connection, whose failure is reported the same way.
    if needs_redis and not any(k in config.redis.url for k in ("ca_file=", "ssl_ca_certs=")):
        ok, detail = check_redis(config.redis.url, timeout=3.0)
        if not ok:
            raise unreachable(f"redis unreachable ({describe_redis(config.redis.url)}): {detail}; "
                              "is redis-server running and redis.url right?")
    if needs_ledger:
        ok, detail = check_ledger(config.ledger.url)
        if not ok:
            raise unreachable(f"ledger unreachable ({describe_ledger(config.ledger.url)}): {detail}")


async def run_command(reactor, config: Config, args, out=None, err=None) -> int:
    """Run one reactor command; returns the exit status (CommandError is turned into one)."""
    from ymds.queue.errors import RedisUnavailable
    from ymds.queue.redis import ConnectionLost
    out = out or sys.stdout
    err = err or sys.stderr
    ctx = Context(reactor, config, args, out, err)
    function = COMMANDS[args.command][0]
    try:
        try:
            status = await function(ctx)
            out.flush()
            return status
        finally:
            await ctx.close()
    except CommandError as e:
        err.write(f"ymds: {e}\n")
        return e.status
    except (RedisUnavailable, ConnectionLost) as e:
        err.write(f"ymds: redis unreachable ({describe_redis(config.redis.url)}): {e}\n")
        return EXIT_UNREACHABLE
    except BrokenPipeError:
        # the reader went away (ymds export | head): not an error of ours
        _silence_stdout()
        return EXIT_OK
    except Exception as e:
        if type(e).__name__ in ("OperationalError", "InterfaceError") and type(e).__module__.split(".")[0] in (
                "sqlite3", "psycopg"):
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            err.write(f"ymds: ledger unreachable ({describe_ledger(config.ledger.url)}): {first}\n")
            return EXIT_UNREACHABLE
        raise


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _start_logging(verbose: bool) -> None:
    from twisted.logger import (FilteringLogObserver, LogLevel, LogLevelFilterPredicate, globalLogBeginner,
                                textFileLogObserver)
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info if verbose else LogLevel.critical)
    observer = FilteringLogObserver(textFileLogObserver(sys.stderr), [predicate])
    globalLogBeginner.beginLoggingTo([observer], discardBuffer=True, redirectStandardIO=False)


def main(argv: list[str] | None = None, env=None) -> None:
    args = build_parser().parse_args(argv)
    env = os.environ if env is None else env
    try:
        config = load(args, env)
        if args.command == "check":
            raise SystemExit(run_check_command(config, args, sys.stdout))
        _, needs_redis, needs_ledger = COMMANDS[args.command]
        if args.command == "link" and args.via_queue:
            needs_redis, needs_ledger = True, False
        preflight(config, needs_redis, needs_ledger)
    except CommandError as e:
        sys.stderr.write(f"ymds: {e}\n")
        raise SystemExit(e.status) from None
    _start_logging(args.verbose)

    from twisted.internet import reactor, task
    from twisted.internet.defer import Deferred

    def start(reactor):
        d = Deferred.fromCoroutine(run_command(reactor, config, args))

        def done(status):
            sys.stdout.flush()
            raise SystemExit(status)

        def crashed(failure):
            if failure.check(SystemExit):
                return failure
            sys.stderr.write("ymds: internal error (please report it):\n")
            failure.printTraceback(file=sys.stderr)
            raise SystemExit(EXIT_INTERNAL)

        return d.addCallback(done).addErrback(crashed)

    task.react(start, (), _reactor=reactor)


if __name__ == "__main__":
    main()
