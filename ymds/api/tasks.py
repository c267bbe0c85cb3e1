"""Billing-side handlers of the REST API (they run in the billing role, the only one that
touches the ledger): ``api_authenticate``, ``api_invoice``, ``list_payments``.  Creating an
invoice is billing's ``create_invoice``; a subscription is ``subscription_status``."""

from __future__ import annotations

from typing import Any

from ymds.billing import jobs
from ymds.billing.jobs import ApiAuthenticate, ApiDocument, ApiKeyAuth, InvoiceQuery, ListPayments, PaymentPage
from ymds.jobwire import typed_handler
from ymds.links import pay_url
from ymds.webhooks.events import invoice_data, payment_data

MAX_PAGE = jobs.MAX_PAGE


class ApiTasks:
    def __init__(self, config: Any, ledger: Any, clock: Any):
        self.config = config
        self.ledger = ledger
        self.clock = clock

    def register(self, registry: Any) -> None:
        registry.register(jobs.API_AUTHENTICATE, typed_handler(ApiAuthenticate.from_wire, self.api_authenticate))
        registry.register(jobs.API_INVOICE, typed_handler(InvoiceQuery.from_wire, self.api_invoice))
        registry.register(jobs.LIST_PAYMENTS, typed_handler(ListPayments.from_wire, self.list_payments))

    async def api_authenticate(self, job: ApiAuthenticate) -> ApiKeyAuth | None:
        """The key id and scopes of an active key, else None."""
        if job.key_hash is None:
            return None
        key = await self.ledger.api_keys.api_key_lookup(job.key_hash)
        if key is None or key.revoked_at is not None:
            return None
        return ApiKeyAuth(key_id=key.id, scopes=tuple(key.scopes))

    async def api_invoice(self, job: InvoiceQuery) -> ApiDocument | None:
        if job.label is None:
            return None
        invoice = await self.ledger.invoices.get_invoice(job.label)
        if invoice is None:
            return None
        url = pay_url(self.config.server.public_url, self.config.links.secret, invoice.label, int(invoice.expires_at))
        return ApiDocument({**invoice_data(invoice), "pay_url": url})

    async def list_payments(self, job: ListPayments) -> PaymentPage:
        """A page of payments, oldest first, and the cursor of the next page."""
        page = await self.ledger.payments.list_payments(after_cursor=job.cursor, limit=job.limit, **job.filters())
        # issue 19: the promo code fixed into each payment's invoice (null when none)
        codes = await self.ledger.promo.codes_for(p.invoice_label for p in page.payments if p.invoice_label)
        return PaymentPage(tuple({**payment_data(p), "promo_code": codes.get(p.invoice_label or "")}
                                 for p in page.payments), page.next_cursor)
