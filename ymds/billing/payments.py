"""Billing's ``apply_payment`` task and the bot jobs a payment causes.

Every bot job carries an idempotency key derived from its cause, and a payment's follow-up
jobs are re-derived from the ledger when a billing job is delivered again before it was
marked notified, so a crash between the ledger commit and the enqueue loses no message and
a redelivery sends none twice.
"""

from __future__ import annotations

import json
from typing import Any, Union

from twisted.logger import Logger

from ymds.billing.invoices import iso
from ymds.billing.jobs import MAX_MESSAGE, MAX_NAME, ApplyPayment, PaymentOutcome, Quarantine
from ymds.billing.ledger import GRANTING, ApplyResult, BadPaymentFields, Invoice, Payment, PaymentFields
from ymds.billing.quarantine import QuarantineTasks
from ymds.billing.signatures import DOWNGRADE_REASON, SignatureRules, job_scheme
from ymds.bot.jobs import BotClient, GrantAccess, Notify, NotifyAdmins

log = Logger()

BotJob = Union[Notify, NotifyAdmins, GrantAccess]


def payment_outcome(result: ApplyResult) -> PaymentOutcome:
    p = result.payment
    return PaymentOutcome(
        outcome=result.outcome, operation_id=p.operation_id if p else None, label=p.label if p else None,
        payment_status=p.status if p else None, invoice_status=result.invoice.status if result.invoice else None,
        ends_at=iso(p.granted_until) if p else None, is_new=result.is_new, released=result.released)


def is_renewal(payment: Payment, invoice: Invoice) -> bool:
    """Whether this payment extended a subscription that was still running: it then ends
    later than its own days counted from when it was accepted."""
    accepted = payment.accepted_at if payment.accepted_at is not None else payment.received_at
    if payment.granted_until is None or not invoice.days:
        return False
    return payment.granted_until > accepted + invoice.days * 86400 + 1


class PaymentTasks:
    """``apply_payment`` and :meth:`follow_up` (also used by reconciliation and reverify)."""

    def __init__(self, config: Any, ledger: Any, bot: BotClient, clock: Any, quarantine: QuarantineTasks,
                 webhooks: Any, wallet_api: Any = None):
        self.config = config
        self.ledger = ledger
        self.bot = bot
        self.clock = clock
        self.quarantine = quarantine
        self.webhooks = webhooks
        self.wallet_api = wallet_api
        self.overlay: Any = None  # issue 17: the OverlayPublisher (set by make_billing_service)
        self.selling: Any = None  # issue 19: SellingTasks (set by BillingTasks): gift codes
        self.signatures = SignatureRules(config, ledger)

    async def apply_payment(self, job: ApplyPayment) -> PaymentOutcome:
        fields = job.fields
        try:
            pf = PaymentFields.from_fields(fields)  # it refuses what is not a mapping of text
        except BadPaymentFields as e:
            # The web role checked them already; keep whatever this is rather than drop it.
            body = json.dumps(fields, default=str, ensure_ascii=False)[:65536] if fields is not None else ""
            q = await self.quarantine.quarantine(Quarantine(body, f"billing refused fields: {e}", "billing"))
            log.warn("apply_payment refused fields ({error}); quarantined as {id}", error=str(e), id=q.id)
            return PaymentOutcome("quarantined", reason=str(e), quarantine_id=q.id)
        if pf.is_test:
            log.info("test notification acknowledged {operation_id}", operation_id=pf.operation_id)
            return PaymentOutcome("test", operation_id=pf.operation_id)
        held = None
        alert = False
        scheme = job_scheme(fields, job.source, job.scheme, self.config)
        confirm = self.config.yoomoney.confirm_with_api and job.source == "notification"
        if scheme == "sha1":  # only what sha1_hash covers counts (ymds.billing.signatures)
            terms = await self.signatures.sha1_terms(pf, self.wallet_api is not None)
            if terms.verdict == "downgrade":
                return await self._quarantine_mismatch(pf, DOWNGRADE_REASON)
            pf, held, alert = terms.fields, terms.held, terms.alert_owner
            confirm = terms.verdict == "confirm"
        if confirm and self.wallet_api is not None:
            verdict = await self._confirm(pf)
            if verdict == "mismatch":
                return await self._quarantine_mismatch(pf, "operation-details disagrees with the notification")
            held = verdict == "held"
        if scheme is not None:
            await self.signatures.record(pf.operation_id, scheme, self.clock.seconds())
        result = await self.ledger.payments.apply_payment(pf, job.source, self.clock.seconds(), held=held)
        await self.follow_up(result)
        if alert and result.payment is not None and result.payment.status == "held":
            await self.bot.notify_admins(NotifyAdmins("unconfirmed", {
                "amount": result.payment.amount, "operation_id": pf.operation_id, "label": pf.label[:64]},
                f"admins:{pf.operation_id}:unconfirmed"))
        log.info("payment applied {operation_id} {outcome} source={source}", operation_id=pf.operation_id,
                 outcome=result.outcome, source=job.source)
        return payment_outcome(result)

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

    async def _quarantine_mismatch(self, pf: PaymentFields, reason: str) -> PaymentOutcome:
        from urllib.parse import urlencode
        q = await self.quarantine.quarantine(Quarantine(urlencode(dict(pf.raw)), reason, "billing"))
        log.warn("payment {operation_id} quarantined: {reason}", operation_id=pf.operation_id, reason=reason)
        return PaymentOutcome("quarantined", reason=reason, quarantine_id=q.id, operation_id=pf.operation_id)

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
        from ymds.billing.overlay import record_donation  # outbox row, published without holding us up
        if await record_donation(self.ledger, payment, result.invoice, self.clock.seconds()) and self.overlay:
            self.overlay.kick(payment.operation_id)
        jobs = await self.bot_jobs(payment, result.invoice, blocked=result.chat_blocked)
        for job in jobs:
            if isinstance(job, Notify):
                await self.bot.notify(job)
            elif isinstance(job, NotifyAdmins):
                await self.bot.notify_admins(job)
            else:
                await self.bot.grant_access(job)
        await self.ledger.payments.mark_notified(payment.operation_id)
        return jobs

    async def bot_jobs(self, payment: Payment, invoice: Invoice | None, blocked: bool | None = None) -> list[BotJob]:
        """The messages a payment's state causes, each keyed by operation and state."""
        op = payment.operation_id
        status = payment.status
        chat = invoice.chat_id if invoice is not None else None
        if chat is not None and blocked is None:
            blocked = await self.ledger.subscriptions.is_blocked(chat)
        if chat is not None and blocked:
            chat = None  # the user blocked the bot: owner alerts only
        money = {"amount": payment.withdraw_amount, "received": payment.amount}
        about = {"operation_id": op, "label": payment.label[:64]}
        jobs: list[BotJob] = []

        def user(message: str, params: dict[str, Any], key: str) -> None:
            if chat is not None:
                jobs.append(Notify(chat, message, params, key))

        def admins(message: str, params: dict[str, Any], key: str) -> None:
            jobs.append(NotifyAdmins(message, params, key))

        plan_params: dict[str, Any] = {}
        if invoice is not None and invoice.kind == "subscription":
            plan = self.config.plan(invoice.plan) if invoice.plan else None
            plan_params = {"plan": invoice.plan, "plan_title": plan.title if plan else invoice.description,
                           "price": invoice.amount}
        if status == "held":
            user("payment_held", {**money, **plan_params, **about}, f"notify:{op}:held")
        elif status in GRANTING and invoice is not None:
            if invoice.kind == "subscription":
                ends_at = iso(payment.granted_until)
                renewal = is_renewal(payment, invoice)
                user("payment_confirmed", {**money, **plan_params, **about, "ends_at": ends_at, "renewal": renewal},
                     f"notify:{op}")
                # a renewal extends a member: no new invitation (/status still gives one)
                if self.config.telegram.channel_id and chat is not None and payment.granted_until and not renewal:
                    jobs.append(GrantAccess(chat, ends_at, f"grant:{op}"))
                if self.config.telegram.sale_alerts:
                    admins("sale", {**money, **about, **plan_params, "chat_id": invoice.chat_id}, f"admins:{op}:sale")
            elif self.selling is not None and self.selling.is_gift(invoice):  # issue 19: the payer gets a code
                gift = await self.selling.gift_notice(invoice, chat, op)
                if gift is not None:
                    jobs.append(gift)
                if self.config.telegram.sale_alerts:  # a gift is a sale: "gift: <plan title>"
                    admins("sale", {**money, **about, "plan_title": invoice.description, "chat_id": invoice.chat_id},
                           f"admins:{op}:sale")
            else:
                meta = invoice.metadata or {}
                admins("donation", {**money, **about, "name": str(meta.get("name", ""))[:MAX_NAME],
                                    "message": str(meta.get("message", ""))[:MAX_MESSAGE],
                                    "description": invoice.description}, f"admins:{op}")
            if status == "overpaid":
                admins("overpaid", {**money, **about, **plan_params, "price": invoice.amount, "chat_id": invoice.chat_id},
                       f"admins:{op}:overpaid")
        elif status == "underpaid" and invoice is not None:
            user("payment_underpaid", {**money, **plan_params, **about, "price": invoice.amount}, f"notify:{op}")
            admins("underpaid", {**money, **about, **plan_params, "price": invoice.amount, "chat_id": invoice.chat_id},
                   f"admins:{op}")
        elif status == "unmatched":
            admins("unmatched", {**money, **about}, f"admins:{op}")
        return jobs
