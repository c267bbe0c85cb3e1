"""The billing queue's task handlers (COMMON task contract) and the bot jobs they cause.

Every bot job carries an idempotency key derived from its cause, and a payment's follow-up
jobs are re-derived from the ledger when a billing job is delivered again before it was
marked notified, so a crash between the ledger commit and the enqueue loses no message and
a redelivery sends none twice.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_DOWN, Decimal
from typing import Mapping

from twisted.logger import Logger

from ymds.billing.ledger import (
    GRANTING, SOURCES, ApplyResult, BadPaymentFields, IdempotencyConflict, ILedger, Invoice, Payment, PaymentFields,
)
from ymds.links import is_our_label, pay_url
from ymds.queue.errors import PermanentJobError

log = Logger()

CENT = Decimal("0.01")
MAX_NAME = 100
MAX_MESSAGE = 1000
MAX_DESCRIPTION = 500
MAX_METADATA = 4096
MAX_AMOUNT = Decimal("1000000.00")
QUARANTINE_ALERT_EVERY = 600  # seconds: at most one quarantine alert per window


class InvalidTaskArgs(PermanentJobError, ValueError):
    """The job's arguments are wrong; retrying cannot help."""


class IdempotencyKeyReused(PermanentJobError):
    """create_invoice: the Idempotency-Key was used before with another request (HTTP 409)."""


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()


def _int(args: Mapping, name: str, optional: bool = False) -> int | None:
    value = args.get(name)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not -2**63 <= value < 2**63:
        raise InvalidTaskArgs(f"{name} must be an integer")
    return value


def _text(args: Mapping, name: str, limit: int, default: str = "") -> str:
    value = args.get(name, default)
    if value is None:
        value = default
    if not isinstance(value, str):
        raise InvalidTaskArgs(f"{name} must be text")
    if len(value) > limit:
        raise InvalidTaskArgs(f"{name} is longer than {limit} characters")
    return value


def _money(args: Mapping, name: str) -> Decimal:
    value = args.get(name)
    if isinstance(value, str) and re.fullmatch(r"\d{1,10}(\.\d{1,2})?", value.strip()):
        value = Decimal(value.strip())
    if not isinstance(value, Decimal) or not value.is_finite() or abs(value) >= Decimal("1e10"):
        raise InvalidTaskArgs(f"{name} must be an amount (Decimal) below 10^10")
    if value != value.quantize(CENT, rounding=ROUND_DOWN):
        raise InvalidTaskArgs(f"{name} {value} has more than two decimal places")
    return value.quantize(CENT)


def _object_args(handler):
    """Jobs come off the network: arguments that are not an object are refused outright."""
    async def checked(args):
        if not isinstance(args, dict):
            raise InvalidTaskArgs("the job's arguments must be an object")
        return await handler(args)
    checked.__name__ = getattr(handler, "__name__", "handler")
    return checked


@dataclass(frozen=True)
class BotJob:
    queue: str
    task: str
    args: dict
    key: str


class BillingTasks:
    """``BillingTasks(config, ledger, queue, clock, wallet_api=None, webhooks=None)``;
    ``register(registry)`` adds the handlers.  ``queue`` provides IJobQueue; ``wallet_api``
    (IWalletAPI) is used when ``yoomoney.confirm_with_api`` is on; ``webhooks`` (a
    ymds.webhooks.delivery.WebhookDeliverer; by default one that only writes the outbox)
    gets the outgoing webhook events of payments."""

    def __init__(self, config, ledger, queue, clock, wallet_api=None, webhooks=None):
        if not ILedger.providedBy(ledger):
            raise TypeError("ledger must provide ILedger")
        self.config = config
        self.ledger = ledger
        self.queue = queue
        self.clock = clock
        self.wallet_api = wallet_api
        if webhooks is None:  # still write the outbox (e.g. ymds reverify): a billing worker delivers
            from ymds.webhooks.delivery import WebhookDeliverer
            webhooks = WebhookDeliverer(ledger, queue, clock)
        self.webhooks = webhooks
        if config.yoomoney.confirm_with_api and wallet_api is None:
            log.warn("yoomoney.confirm_with_api is on but no wallet API was given: notifications are credited "
                     "on their signature alone")

    def handlers(self) -> dict:
        return {
            "create_invoices": self.create_invoices,
            "create_donation": self.create_donation,
            "create_invoice": self.create_invoice,
            "invoice_status": self.invoice_status,
            "apply_payment": self.apply_payment,
            "quarantine": self.quarantine,
            "subscription_status": self.subscription_status,
            "mark_blocked": self.mark_blocked,
            "stats": self.stats,
        }

    def register(self, registry) -> None:
        for name, handler in self.handlers().items():
            registry.register(name, _object_args(handler))

    def _now(self) -> float:
        return self.clock.seconds()

    # --- invoices ---------------------------------------------------------------------

    def _link(self, invoice: Invoice) -> str:
        return pay_url(self.config.server.public_url, self.config.links.secret, invoice.label, int(invoice.expires_at))

    def invoice_dict(self, invoice: Invoice) -> dict:
        return {
            "label": invoice.label, "kind": invoice.kind, "plan": invoice.plan, "chat_id": invoice.chat_id,
            "amount": invoice.amount, "status": invoice.status, "description": invoice.description,
            "expires_at": iso(invoice.expires_at), "paid_at": iso(invoice.paid_at),
        }

    async def create_invoices(self, args: dict) -> dict:
        chat_id = _int(args, "chat_id")
        user_id = _int(args, "user_id", optional=True)
        now = self._now()
        invoices = []
        for plan in self.config.plans:
            inv = await self.ledger.create_invoice(
                "subscription", plan.price, now, self.config.links.ttl, plan=plan.id, days=plan.days,
                chat_id=chat_id, user_id=user_id, description=plan.title, reuse_open=True)
            invoices.append({"plan": plan.id, "title": plan.title, "amount": inv.amount, "label": inv.label,
                             "url": self._link(inv), "expires_at": iso(inv.expires_at)})
        return {"invoices": invoices}

    async def create_donation(self, args: dict) -> dict:
        donations = self.config.donations
        if not donations.enabled:
            raise InvalidTaskArgs("donations are disabled")
        amount = _money(args, "amount")
        if not donations.min <= amount <= donations.max:
            raise InvalidTaskArgs(f"amount must be between {donations.min} and {donations.max}")
        name = _text(args, "name", MAX_NAME).strip()
        message = _text(args, "message", MAX_MESSAGE).strip()
        inv = await self.ledger.create_invoice("donation", amount, self._now(), self.config.links.ttl,
                                               description="donation", metadata={"name": name, "message": message})
        return {"label": inv.label, "url": self._link(inv), "expires_at": iso(inv.expires_at)}

    async def create_invoice(self, args: dict) -> dict:
        plan_id = args.get("plan")
        description = _text(args, "description", MAX_DESCRIPTION)
        chat_id = _int(args, "chat_id", optional=True)
        metadata = args.get("metadata") or {}
        if not isinstance(metadata, dict) or len(json.dumps(metadata, default=str)) > MAX_METADATA:
            raise InvalidTaskArgs(f"metadata must be an object of at most {MAX_METADATA} bytes of JSON")
        ttl = args.get("ttl")
        if ttl is None:
            ttl = self.config.links.ttl
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 60 <= ttl <= 30 * 86400:
            raise InvalidTaskArgs("ttl must be whole seconds between 60 and 2592000")
        now = self._now()
        if plan_id is not None:
            plan = self.config.plan(plan_id) if isinstance(plan_id, str) else None
            if plan is None:
                raise InvalidTaskArgs(f"unknown plan {str(plan_id)[:40]!r}")
            if chat_id is None:
                raise InvalidTaskArgs("a plan invoice needs a chat_id")
            inv, replayed = await self._create_once(
                args, "subscription", plan.price, now, ttl, plan=plan.id, days=plan.days, chat_id=chat_id,
                description=description or plan.title, metadata=metadata)
        else:
            amount = _money(args, "amount")
            if not CENT <= amount <= MAX_AMOUNT:
                raise InvalidTaskArgs(f"amount must be between 0.01 and {MAX_AMOUNT}")
            inv, replayed = await self._create_once(args, "donation", amount, now, ttl, chat_id=chat_id,
                                                    description=description, metadata=metadata)
        if replayed:  # the first answer again: the invoice as it was created
            from dataclasses import replace
            inv = replace(inv, status="open", paid_at=None, operation_id=None)
        return {**self.invoice_dict(inv), "url": self._link(inv), "metadata": dict(inv.metadata or {}),
                "created_at": iso(inv.created_at), "replayed": replayed}

    async def _create_once(self, args: dict, kind: str, amount: Decimal, now: float, ttl: int, **options):
        """create_invoice, or with ``idempotency`` ({key_id, key, request_hash}: the REST API's
        Idempotency-Key) at most once per key: (Invoice, replayed)."""
        idem = args.get("idempotency")
        if idem is None:
            return await self.ledger.create_invoice(kind, amount, now, ttl, **options), False
        if not isinstance(idem, dict) or not all(isinstance(idem.get(k), str) and 0 < len(idem[k]) <= 255
                                                 for k in ("key_id", "key", "request_hash")):
            raise InvalidTaskArgs("idempotency must hold key_id, key and request_hash (text up to 255 characters)")
        try:
            return await self.ledger.create_invoice_once(idem["key_id"], idem["key"], idem["request_hash"], now, kind,
                                                         amount, ttl, **options)
        except IdempotencyConflict as e:
            raise IdempotencyKeyReused(str(e)) from None

    async def invoice_status(self, args: dict) -> dict | None:
        label = args.get("label")
        if not isinstance(label, str) or not is_our_label(label):
            return None  # not one of ours: no such invoice
        inv = await self.ledger.get_invoice(label)
        return None if inv is None else self.invoice_dict(inv)

    # --- payments ---------------------------------------------------------------------

    async def apply_payment(self, args: dict) -> dict:
        fields = args.get("fields")
        source = args.get("source", "notification")
        if source not in SOURCES:
            raise InvalidTaskArgs(f"source must be one of {SOURCES}")
        try:
            pf = PaymentFields.from_fields(fields if isinstance(fields, Mapping) else None)
        except BadPaymentFields as e:
            # The web role checked them already; keep whatever this is rather than drop it.
            body = json.dumps(fields, default=str, ensure_ascii=False)[:65536] if fields is not None else ""
            q = await self.quarantine({"body": body, "reason": f"billing refused fields: {e}", "remote": "billing"})
            log.warn("apply_payment refused fields ({error}); quarantined as {id}", error=str(e), id=q["id"])
            return {"outcome": "quarantined", "reason": str(e), "quarantine_id": q["id"]}
        if pf.is_test:
            log.info("test notification acknowledged {operation_id}", operation_id=pf.operation_id)
            return {"outcome": "test", "operation_id": pf.operation_id}
        held = None
        if self.config.yoomoney.confirm_with_api and source == "notification" and self.wallet_api is not None:
            verdict = await self._confirm(pf)
            if verdict == "mismatch":
                return await self._quarantine_mismatch(pf, "operation-details disagrees with the notification")
            held = verdict == "held"
        result = await self.ledger.apply_payment(pf, source, self._now(), held=held)
        await self.follow_up(result)
        log.info("payment applied {operation_id} {outcome} source={source}", operation_id=pf.operation_id,
                 outcome=result.outcome, source=source)
        return self.apply_result_dict(result)

    async def _confirm(self, pf: PaymentFields) -> str:
        """With confirm_with_api: "ok", "held" (not yet accepted, or the API could not be
        asked: reconciliation releases it later) or "mismatch"."""
        from ymds.yoomoney.wallet_api import IllegalParam, WalletAPIError
        try:
            op = await self.wallet_api.operation_details(pf.operation_id)
        except IllegalParam as e:
            if e.code == "illegal_param_operation_id":
                return "mismatch"  # YooMoney does not know this operation
            raise
        except WalletAPIError as e:
            # Not proof of anything: keep it held, reconciliation releases it once the API answers.
            log.warn("operation-details unavailable for {operation_id} ({error}); recording as held",
                     operation_id=pf.operation_id, error=e.code)
            return "held"
        if op.operation_id != pf.operation_id or op.amount != pf.amount or (op.label or "") != pf.label:
            return "mismatch"
        if op.direction and op.direction != "in":
            return "mismatch"
        if op.status == "success":
            return "ok"
        if op.status == "in_progress":
            return "held"
        return "mismatch"  # refused

    async def _quarantine_mismatch(self, pf: PaymentFields, reason: str) -> dict:
        from urllib.parse import urlencode
        body = urlencode(dict(pf.raw))
        q = await self.quarantine({"body": body, "reason": reason, "remote": "billing"})
        log.warn("payment {operation_id} quarantined: {reason}", operation_id=pf.operation_id, reason=reason)
        return {"outcome": "quarantined", "reason": reason, "quarantine_id": q["id"], "operation_id": pf.operation_id}

    def apply_result_dict(self, result: ApplyResult) -> dict:
        p = result.payment
        return {
            "outcome": result.outcome,
            "operation_id": p.operation_id if p else None,
            "label": p.label if p else None,
            "payment_status": p.status if p else None,
            "invoice_status": result.invoice.status if result.invoice else None,
            "ends_at": iso(p.granted_until) if p else None,
            "is_new": result.is_new,
            "released": result.released,
        }

    async def follow_up(self, result: ApplyResult) -> list[BotJob]:
        """Enqueue the bot jobs a payment causes (once: see the module docstring)."""
        payment = result.payment
        if payment is None or result.outcome == "test":
            return []
        if result.outcome == "duplicate" and payment.notified:
            return []
        # outbox rows keyed by cause: re-deriving them after a crash adds nothing twice
        from ymds.webhooks.events import payment_events
        await self.webhooks.emit(payment_events(payment, result.invoice))
        jobs = await self.bot_jobs(payment, result.invoice, blocked=result.chat_blocked)
        for job in jobs:
            # the key travels in the arguments too: the bot dedups its own sends by it
            await self.queue.enqueue(job.queue, job.task, {**job.args, "key": job.key}, key=job.key)
        await self.ledger.mark_notified(payment.operation_id)
        return jobs

    async def bot_jobs(self, payment: Payment, invoice: Invoice | None, blocked: bool | None = None) -> list[BotJob]:
        op = payment.operation_id
        status = payment.status
        chat = invoice.chat_id if invoice is not None else None
        if chat is not None and blocked is None:
            blocked = await self.ledger.is_blocked(chat)
        if chat is not None and blocked:
            chat = None  # the user blocked the bot: owner alerts only
        money = {"amount": payment.withdraw_amount, "received": payment.amount}
        about = {"operation_id": op, "label": payment.label[:64]}
        jobs: list[BotJob] = []

        def user(message, params, key):
            if chat is not None:
                jobs.append(BotJob("bot", "notify", {"chat_id": chat, "message": message, "params": params}, key))

        def admins(message, params, key):
            jobs.append(BotJob("bot", "notify_admins", {"message": message, "params": params}, key))

        plan_params = {}
        if invoice is not None and invoice.kind == "subscription":
            plan = self.config.plan(invoice.plan) if invoice.plan else None
            plan_params = {"plan": invoice.plan, "plan_title": plan.title if plan else invoice.description,
                           "price": invoice.amount}
        if status == "held":
            user("payment_held", {**money, **plan_params, **about}, f"notify:{op}:held")
        elif status in GRANTING and invoice is not None:
            if invoice.kind == "subscription":
                ends_at = iso(payment.granted_until)
                user("payment_confirmed", {**money, **plan_params, **about, "ends_at": ends_at}, f"notify:{op}")
                if self.config.telegram.channel_id and chat is not None and payment.granted_until:
                    jobs.append(BotJob("bot", "grant_access", {"chat_id": chat, "ends_at": ends_at}, f"grant:{op}"))
            else:
                meta = invoice.metadata or {}
                admins("donation", {**money, **about, "name": str(meta.get("name", ""))[:MAX_NAME],
                                    "message": str(meta.get("message", ""))[:MAX_MESSAGE],
                                    "description": invoice.description}, f"admins:{op}")
            if status == "overpaid":
                admins("overpaid", {**money, **about, "price": invoice.amount, "chat_id": invoice.chat_id},
                       f"admins:{op}:overpaid")
        elif status == "underpaid" and invoice is not None:
            user("payment_underpaid", {**money, **plan_params, **about, "price": invoice.amount}, f"notify:{op}")
            admins("underpaid", {**money, **about, "price": invoice.amount, "chat_id": invoice.chat_id},
                   f"admins:{op}")
        elif status == "unmatched":
            admins("unmatched", {**money, **about}, f"admins:{op}")
        return jobs

    # --- the rest of the contract -----------------------------------------------------

    async def quarantine(self, args: dict) -> dict:
        body = _text(args, "body", 1 << 20)
        reason = _text(args, "reason", 1000) or "unspecified"
        remote = _text(args, "remote", 1000)
        now = self._now()
        q = await self.ledger.quarantine_add(body, reason, remote, now)
        if q.action == "stored":
            key = f"admins:quarantine:{int(now // QUARANTINE_ALERT_EVERY)}"
            await self.queue.enqueue("bot", "notify_admins", {"message": "quarantine", "key": key, "params": {
                "id": q.id, "reason": reason[:200], "unresolved": q.unresolved}}, key=key)
        return {"id": q.id, "action": q.action, "unresolved": q.unresolved}

    async def subscription_status(self, args: dict) -> dict | None:
        sub = await self.ledger.subscription(_int(args, "chat_id"))
        if sub is None:
            return None
        return {"plan": sub.plan, "ends_at": iso(sub.ends_at), "active": sub.active(self._now())}

    async def mark_blocked(self, args: dict) -> dict:
        newly = await self.ledger.mark_blocked(_int(args, "chat_id"), self._now())
        return {"blocked": True, "new": newly}

    async def stats(self, args: dict) -> dict:
        s = await self.ledger.stats(self._now())
        return {"payments_today": s.payments_today, "sum_today": s.sum_today, "payments_month": s.payments_month,
                "sum_month": s.sum_month, "active_subscribers": s.active_subscribers, "quarantined": s.quarantined}
