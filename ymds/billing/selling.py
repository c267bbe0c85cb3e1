"""Billing's selling tools (issue 19): the plan offers with trials and promo codes, and the
tasks of ymds.billing.selling_jobs (apply a promo code, start a trial, redeem a code, buy a
gift, the owner's promo codes and access codes).

Limits live in the ledger's stores (ymds.billing.stores.{trials,promo,codes}); this module
only chooses which store call a request needs and turns refusals into one-word answers.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from twisted.logger import Logger

from ymds.billing.jobs import CreateInvoices, InvoiceOffer, InvoiceOffers
from ymds.billing.ledger import Invoice
from ymds.billing.selling_jobs import (
    ChatCode, CodesAdd, CodesMade, GiftInvoices, PromoCodeQuery, PromoList, PromoTerms, PromoView, SellingAnswer,
    StartTrial,
)
from ymds.billing.stores.promo import PromoCode
from ymds.billing.stores.trials import SellingRefused
from ymds.bot.jobs import Notify
from ymds.jobwire import HandlerTable

log = Logger()

#: invoice metadata keys of a gift purchase (a donation-kind invoice: it grants the payer nothing)
GIFT_PLAN = "gift_plan"
GIFT_DAYS = "gift_days"
#: refusals after which the chat's applied code is dropped (it cannot apply to any plan now)
FORGET = ("unknown", "expired", "used_up", "per_user", "first_only")


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat()


def promo_view(p: PromoCode, now: float) -> PromoView:
    return PromoView(code=p.code, percent=p.percent, off=p.off, plans=p.plans, uses=p.uses, per_user=p.per_user,
                     used=p.used, starts_at=iso(p.starts_at), ends_at=iso(p.ends_at), first_only=p.first_only,
                     active=p.window_problem(now) is None)


class SellingTasks:
    """The selling handlers and :meth:`offers` (used by create_invoices).  ``link(invoice)``
    makes an invoice's signed pay link."""

    def __init__(self, config: Any, ledger: Any, clock: Any, link: Callable[[Invoice], str]):
        self.config = config
        self.ledger = ledger
        self.clock = clock
        self.link = link

    # --- the plan offers ------------------------------------------------------------------------

    async def offers(self, job: CreateInvoices) -> InvoiceOffers:
        """One offer per plan: a paid trial's invoice, else a promo-discounted invoice (a
        use reserved), else the plan's price; a free trial the user may take is marked."""
        now = self.clock.seconds()
        ttl = self.config.links.ttl
        user = job.user_id if job.user_id is not None else job.chat_id
        code = await self.ledger.promo.applied(job.chat_id)
        offers = []
        for plan in self.config.plans:
            trial_days, trial_free, refused = None, False, None
            inv: Invoice | None = None
            if plan.trial_days:
                if plan.trial_price is not None:
                    inv = await self.ledger.trials.paid_trial_invoice(user, job.chat_id, plan.id, plan.trial_days,
                                                                      plan.trial_price, now, ttl, plan.title)
                    trial_days = plan.trial_days if inv is not None else None
                elif await self.ledger.trials.eligible(user, job.chat_id, plan.id):
                    trial_days, trial_free = plan.trial_days, True
            if inv is None and code is not None:
                try:
                    inv = await self.ledger.promo.discounted_invoice(code, job.chat_id, job.user_id, plan.id, plan.days,
                                                                     plan.price, now, ttl, plan.title)
                except SellingRefused as e:
                    refused = e.reason
            if inv is None:
                inv = await self.ledger.invoices.create_invoice(
                    "subscription", plan.price, now, ttl, plan=plan.id, days=plan.days, chat_id=job.chat_id,
                    user_id=job.user_id, description=plan.title, reuse_open=True)
            promo = inv.metadata.get("promo") if inv.metadata else None
            offers.append(InvoiceOffer(
                plan=plan.id, title=plan.title, amount=inv.amount, label=inv.label, url=self.link(inv),
                expires_at=iso(inv.expires_at), full_price=plan.price if inv.amount != plan.price else None,
                promo=promo if isinstance(promo, str) else None, promo_refused=refused, trial_days=trial_days,
                trial_free=trial_free))
        if code is not None and any(o.promo_refused in FORGET for o in offers):
            await self.ledger.promo.forget(job.chat_id)  # told once; later links are at the plain price
        return InvoiceOffers(tuple(offers))

    # --- a chat's requests ---------------------------------------------------------------------

    async def apply_promo(self, job: ChatCode) -> SellingAnswer:
        try:
            promo = await self.ledger.promo.apply(job.chat_id, job.code, self.clock.seconds())
        except SellingRefused as e:
            return SellingAnswer(refusal=e.reason, code=job.code.upper()[:32])
        return SellingAnswer(ok=True, code=promo.code, percent=promo.percent, off=promo.off, plans=promo.plans)

    async def start_trial(self, job: StartTrial) -> SellingAnswer:
        plan = self.config.plan(job.plan)
        if plan is None or not plan.trial_days:
            return SellingAnswer(refusal="no_trial", plan=job.plan[:32])
        now = self.clock.seconds()
        if plan.trial_price is not None:
            inv = await self.ledger.trials.paid_trial_invoice(job.user_id, job.chat_id, plan.id, plan.trial_days,
                                                              plan.trial_price, now, self.config.links.ttl, plan.title)
            if inv is None:
                return SellingAnswer(refusal="already", plan=plan.id)
            return SellingAnswer(ok=True, plan=plan.id, days=plan.trial_days, url=self.link(inv), amount=inv.amount)
        try:
            sub = await self.ledger.trials.start_free(job.user_id, job.chat_id, plan.id, plan.trial_days, now)
        except SellingRefused as e:
            return SellingAnswer(refusal=e.reason, plan=plan.id)
        log.info("trial started plan={plan}", plan=plan.id)
        return SellingAnswer(ok=True, plan=plan.id, days=plan.trial_days, ends_at=iso(sub.ends_at))

    async def redeem_code(self, job: ChatCode) -> SellingAnswer:
        try:
            code, sub = await self.ledger.codes.redeem(job.code, job.chat_id, self.clock.seconds())
        except SellingRefused as e:
            return SellingAnswer(refusal=e.reason)
        return SellingAnswer(ok=True, plan=sub.plan, days=code.days, ends_at=iso(sub.ends_at))

    async def gift_invoices(self, job: GiftInvoices) -> InvoiceOffers:
        now = self.clock.seconds()
        offers = []
        for plan in self.config.plans:
            inv = await self.ledger.invoices.create_invoice(
                "donation", plan.price, now, self.config.links.ttl, chat_id=job.chat_id, user_id=job.chat_id,
                description=f"gift: {plan.title}"[:500], metadata={GIFT_PLAN: plan.id, GIFT_DAYS: plan.days})
            offers.append(InvoiceOffer(plan=plan.id, title=plan.title, amount=inv.amount, label=inv.label,
                                       url=self.link(inv), expires_at=iso(inv.expires_at)))
        return InvoiceOffers(tuple(offers))

    @staticmethod
    def is_gift(invoice: Invoice) -> bool:
        """Whether ``invoice`` buys a gift (a donation-kind invoice carrying the gift's plan)."""
        return invoice.kind == "donation" and GIFT_PLAN in (invoice.metadata or {})

    async def gift_notice(self, invoice: Invoice, chat_id: int | None, operation_id: str) -> Notify | None:
        """For a paid gift invoice: make its code (once) and the message giving it to the
        payer (None when the invoice is not a gift or the payer cannot be written to)."""
        meta = invoice.metadata or {}
        plan, days = meta.get(GIFT_PLAN), meta.get(GIFT_DAYS)
        if not isinstance(plan, str) or not isinstance(days, int):
            return None
        code = await self.ledger.codes.gift_code(invoice.label, plan, days, self.clock.seconds())
        if chat_id is None:
            return None
        configured = self.config.plan(plan)
        return Notify(chat_id, "gift_code", {"code": code.code, "plan": plan, "days": days,
                                             "plan_title": configured.title if configured else plan},
                      f"notify:{operation_id}:gift")

    # --- the owner's codes (API; the CLI calls the stores directly) -----------------------------

    async def promo_add(self, job: PromoTerms) -> SellingAnswer:
        unknown = [p for p in job.plans if self.config.plan(p) is None]
        if unknown:
            return SellingAnswer(refusal="invalid", plans=tuple(unknown))
        try:
            p = await self.ledger.promo.add(job.code, self.clock.seconds(), percent=job.percent, off=job.off,
                                            plans=job.plans, uses=job.uses, per_user=job.per_user,
                                            starts_at=job.starts_at, ends_at=job.ends_at, first_only=job.first_only)
        except SellingRefused as e:
            return SellingAnswer(refusal=e.reason, code=job.code[:32])
        return SellingAnswer(ok=True, code=p.code, percent=p.percent, off=p.off, plans=p.plans)

    async def promo_list(self, job: Any) -> PromoList:
        now = self.clock.seconds()
        return PromoList(tuple(promo_view(p, now) for p in await self.ledger.promo.list()))

    async def promo_disable(self, job: PromoCodeQuery) -> SellingAnswer:
        try:
            done = await self.ledger.promo.disable(job.code, self.clock.seconds())
        except SellingRefused as e:
            return SellingAnswer(refusal=e.reason)
        return SellingAnswer(ok=done, refusal=None if done else "unknown", code=job.code.upper()[:32])

    async def codes_add(self, job: CodesAdd) -> CodesMade:
        plan = self.config.plan(job.plan) if job.plan else None
        if job.plan and plan is None:
            return CodesMade(refusal="invalid", plan=job.plan)
        days = job.days or (plan.days if plan else 0)
        try:
            made = await self.ledger.codes.add(self.clock.seconds(), days, plan=job.plan, count=job.count,
                                               uses=job.uses, expires_at=job.expires_at)
        except SellingRefused as e:
            return CodesMade(refusal=e.reason)
        return CodesMade(tuple(c.code for c in made), job.plan, days, job.uses, iso(job.expires_at))

    def handlers(self) -> HandlerTable:
        """Task name -> (from_wire, handler), for BillingTasks to register."""
        from ymds.billing import selling_jobs as sj
        from ymds.billing.jobs import NoArgs
        return {
            sj.APPLY_PROMO: (ChatCode.from_wire, self.apply_promo),
            sj.START_TRIAL: (StartTrial.from_wire, self.start_trial),
            sj.REDEEM_CODE: (ChatCode.from_wire, self.redeem_code),
            sj.GIFT_INVOICES: (GiftInvoices.from_wire, self.gift_invoices),
            sj.PROMO_ADD: (PromoTerms.from_wire, self.promo_add),
            sj.PROMO_LIST: (NoArgs.from_wire, self.promo_list),
            sj.PROMO_DISABLE: (PromoCodeQuery.from_wire, self.promo_disable),
            sj.CODES_ADD: (CodesAdd.from_wire, self.codes_add),
        }


__all__ = ["GIFT_DAYS", "GIFT_PLAN", "SellingTasks", "promo_view"]
