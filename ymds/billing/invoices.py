"""Billing's invoice tasks: the plans' invoices for a chat, donations, the REST API's
invoices (optionally at most once per Idempotency-Key) and an invoice's status."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from ymds.billing.jobs import (
    CreatedDonation, CreatedInvoice, CreateDonation, CreateInvoice, CreateInvoices, IdempotencyKeyReused,
    InvoiceOffer, InvoiceOffers, InvoiceQuery, InvoiceView,
)
from ymds.billing.donation_cap import create_capped_donation
from ymds.billing.ledger import IdempotencyConflict, Invoice
from ymds.billing.selling import SellingTasks  # issue 19: trials and promo prices
from ymds.jobwire import InvalidTaskArgs
from ymds.links import pay_url


def iso(ts: float | None) -> str | None:
    """Unix seconds as ISO 8601 UTC (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()


def invoice_view(invoice: Invoice) -> InvoiceView:
    meta = invoice.metadata or {}
    promo, full = meta.get("promo"), meta.get("full_price")  # issue 19: a promo-discounted invoice
    return InvoiceView(
        label=invoice.label, kind=invoice.kind, plan=invoice.plan, chat_id=invoice.chat_id, amount=invoice.amount,
        status=invoice.status, description=invoice.description, expires_at=iso(invoice.expires_at),
        paid_at=iso(invoice.paid_at), full_price=Decimal(full) if isinstance(full, str) else None,
        promo=promo if isinstance(promo, str) else None)


class InvoiceTasks:
    """``create_invoices``, ``create_donation``, ``create_invoice``, ``invoice_status``."""

    def __init__(self, config: Any, ledger: Any, clock: Any):
        self.config = config
        self.ledger = ledger
        self.clock = clock

    def link(self, invoice: Invoice) -> str:
        """The signed pay link of an invoice (valid until it expires)."""
        return pay_url(self.config.server.public_url, self.config.links.secret, invoice.label, int(invoice.expires_at))

    async def create_invoices(self, job: CreateInvoices) -> InvoiceOffers:
        """One open invoice per plan (the same ones while open: ``reuse_open``)."""
        if any(plan.trial_days for plan in self.config.plans) or await self.ledger.promo.applied(job.chat_id):
            return await SellingTasks(self.config, self.ledger, self.clock, self.link).offers(job)
        now = self.clock.seconds()
        offers = []
        for plan in self.config.plans:
            inv = await self.ledger.invoices.create_invoice(
                "subscription", plan.price, now, self.config.links.ttl, plan=plan.id, days=plan.days,
                chat_id=job.chat_id, user_id=job.user_id, description=plan.title, reuse_open=True)
            offers.append(InvoiceOffer(plan=plan.id, title=plan.title, amount=inv.amount, label=inv.label,
                                       url=self.link(inv), expires_at=iso(inv.expires_at)))
        return InvoiceOffers(tuple(offers))

    async def create_donation(self, job: CreateDonation) -> CreatedDonation:
        donations = self.config.donations
        if not donations.enabled:
            raise InvalidTaskArgs("donations are disabled")
        if not donations.min <= job.amount <= donations.max:
            raise InvalidTaskArgs(f"amount must be between {donations.min} and {donations.max}")
        # the public form: counted against donations.max_open in the insert's transaction (issue 14)
        inv = await create_capped_donation(self.ledger, job.amount, self.clock.seconds(), self.config.links.ttl,
                                           {"name": job.name, "message": job.message}, donations.max_open)
        return CreatedDonation(label=inv.label, url=self.link(inv), expires_at=iso(inv.expires_at))

    async def create_invoice(self, job: CreateInvoice) -> CreatedInvoice:
        ttl = self.config.links.ttl if job.ttl is None else job.ttl
        now = self.clock.seconds()
        metadata = dict(job.metadata)
        if job.plan is not None:
            plan = self.config.plan(job.plan)
            if plan is None:
                raise InvalidTaskArgs(f"unknown plan {job.plan[:40]!r}")
            inv, replayed = await self._create_once(
                job, "subscription", plan.price, now, ttl, plan=plan.id, days=plan.days, chat_id=job.chat_id,
                description=job.description or plan.title, metadata=metadata)
        else:
            assert job.amount is not None  # CreateInvoice.from_wire: a plan or an amount
            inv, replayed = await self._create_once(job, "donation", job.amount, now, ttl, chat_id=job.chat_id,
                                                    description=job.description, metadata=metadata)
        if replayed:  # the first answer again: the invoice as it was created
            inv = replace(inv, status="open", paid_at=None, operation_id=None)
        return CreatedInvoice(**vars(invoice_view(inv)), url=self.link(inv), metadata=dict(inv.metadata or {}),
                              created_at=iso(inv.created_at), replayed=replayed)

    async def _create_once(self, job: CreateInvoice, kind: str, amount: Decimal, now: float, ttl: int,
                           **options: Any) -> tuple[Invoice, bool]:
        """create_invoice, or with an Idempotency-Key at most once per key: (Invoice, replayed)."""
        idem = job.idempotency
        if idem is None:
            return await self.ledger.invoices.create_invoice(kind, amount, now, ttl, **options), False
        try:
            created: tuple[Invoice, bool] = await self.ledger.api_keys.create_invoice_once(
                idem.key_id, idem.key, idem.request_hash, now, kind, amount, ttl, **options)
            return created
        except IdempotencyConflict as e:
            raise IdempotencyKeyReused(str(e)) from None

    async def invoice_status(self, job: InvoiceQuery) -> InvoiceView | None:
        if job.label is None:
            return None  # not one of ours: no such invoice
        inv = await self.ledger.invoices.get_invoice(job.label)
        return None if inv is None else invoice_view(inv)
