"""The billing queue's task handlers, registered under the names of ymds.billing.jobs.

Each handler takes its argument dataclass (checked once, by its ``from_wire``) and returns
a result dataclass; :meth:`BillingTasks.register` joins them to the wire.  The handlers
live by domain: ymds.billing.invoices, ymds.billing.payments, ymds.billing.quarantine; the
small account queries are here.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from ymds.billing import jobs
from ymds.billing.access import AccessTasks
from ymds.billing.overlay import OverlayTasks
from ymds.billing.invoices import InvoiceTasks, iso
from ymds.billing.jobs import BillingStats, BlockedResult, ChatQuery, IdempotencyKeyReused, NoArgs, SubscriptionView
from ymds.billing.interfaces import ILedger
from ymds.billing.ledger import ApplyResult
from ymds.billing.payments import BotJob, PaymentTasks
from ymds.billing.selling import SellingTasks
from ymds.billing.quarantine import QUARANTINE_ALERT_EVERY, QuarantineTasks
from ymds.bot.jobs import BotClient
from ymds.jobwire import HandlerTable, InvalidTaskArgs, typed_handler

log = Logger()

# kept importable from here: older code and tests use these names
__all__ = ["BillingTasks", "InvalidTaskArgs", "IdempotencyKeyReused", "iso", "BotJob", "QUARANTINE_ALERT_EVERY"]


class BillingTasks:
    """``BillingTasks(config, ledger, queue, clock, wallet_api=None, webhooks=None)``;
    ``register(registry)`` adds the handlers.  ``queue`` provides IJobQueue (the bot jobs
    payments cause go through a BotClient over it); ``wallet_api`` (IWalletAPI) is used when
    ``yoomoney.confirm_with_api`` is on; ``webhooks`` (a ymds.webhooks.delivery.WebhookDeliverer;
    by default one that only writes the outbox) gets the outgoing webhook events of payments."""

    def __init__(self, config: Any, ledger: Any, queue: Any, clock: Any, wallet_api: Any = None,
                 webhooks: Any = None):
        if not isinstance(ledger, ILedger):
            raise TypeError("ledger must provide ILedger")
        self.config = config
        self.ledger = ledger
        self.queue = queue
        self.clock = clock
        if webhooks is None:  # still write the outbox (e.g. ymds reverify): a billing worker delivers
            from ymds.webhooks.delivery import WebhookDeliverer
            webhooks = WebhookDeliverer(ledger, queue, clock)
        self.webhooks = webhooks
        if config.yoomoney.confirm_with_api and wallet_api is None:
            log.warn("yoomoney.confirm_with_api is on but no wallet API was given: notifications are credited "
                     "on their signature alone")
        bot = BotClient(queue)
        self.invoices = InvoiceTasks(config, ledger, clock)
        self.quarantines = QuarantineTasks(ledger, bot, clock)
        self.payments = PaymentTasks(config, ledger, bot, clock, self.quarantines, webhooks, wallet_api)
        self.access = AccessTasks(config, ledger, clock)  # issue 15: access_* (covers, invite links, members)
        self.overlay = OverlayTasks(config, ledger, clock)  # issue 17: overlay_token, donation_board, donation_public
        self.selling = SellingTasks(config, ledger, clock, self.invoices.link)  # issue 19: trials, promo, codes
        self.payments.selling = self.selling  # a paid gift invoice makes its code

    @property
    def wallet_api(self) -> Any:
        """The IWalletAPI that confirms notifications (the payments' own; settable)."""
        return self.payments.wallet_api

    @wallet_api.setter
    def wallet_api(self, api: Any) -> None:
        self.payments.wallet_api = api

    def handlers(self) -> HandlerTable:
        """Task name -> (the argument dataclass's from_wire, the handler taking it)."""
        return {
            jobs.CREATE_INVOICES: (jobs.CreateInvoices.from_wire, self.invoices.create_invoices),
            jobs.CREATE_DONATION: (jobs.CreateDonation.from_wire, self.invoices.create_donation),
            jobs.CREATE_INVOICE: (jobs.CreateInvoice.from_wire, self.invoices.create_invoice),
            jobs.INVOICE_STATUS: (jobs.InvoiceQuery.from_wire, self.invoices.invoice_status),
            jobs.APPLY_PAYMENT: (jobs.ApplyPayment.from_wire, self.payments.apply_payment),
            jobs.QUARANTINE: (jobs.Quarantine.from_wire, self.quarantines.quarantine),
            jobs.SUBSCRIPTION_STATUS: (jobs.ChatQuery.from_wire, self.subscription_status),
            jobs.MARK_BLOCKED: (jobs.ChatQuery.from_wire, self.mark_blocked),
            jobs.STATS: (jobs.NoArgs.from_wire, self.stats),
            **self.access.handlers(),
            **self.overlay.handlers(),
            **self.selling.handlers(),
        }

    def register(self, registry: Any) -> None:
        for name, (from_wire, handler) in self.handlers().items():
            registry.register(name, typed_handler(from_wire, handler))

    async def follow_up(self, result: ApplyResult) -> list[BotJob]:
        """Enqueue the bot jobs a payment causes (see ymds.billing.payments)."""
        return await self.payments.follow_up(result)

    async def subscription_status(self, job: ChatQuery) -> SubscriptionView | None:
        sub = await self.ledger.subscriptions.subscription(job.chat_id)
        if sub is None:
            return None
        return SubscriptionView(plan=sub.plan, ends_at=iso(sub.ends_at), active=sub.active(self.clock.seconds()))

    async def mark_blocked(self, job: ChatQuery) -> BlockedResult:
        newly = await self.ledger.subscriptions.mark_blocked(job.chat_id, self.clock.seconds())
        return BlockedResult(blocked=True, new=newly)

    async def stats(self, job: NoArgs) -> BillingStats:
        s = await self.ledger.audit.stats(self.clock.seconds())
        return BillingStats(payments_today=s.payments_today, sum_today=s.sum_today,
                            payments_month=s.payments_month, sum_month=s.sum_month,
                            active_subscribers=s.active_subscribers, quarantined=s.quarantined)
