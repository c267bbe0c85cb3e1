"""The billing role as one service: the ``billing`` queue's Worker plus the timers."""

from __future__ import annotations

from twisted.application.service import MultiService

from ymds.services import SequentialMultiService
from ymds.util.services import CloseOnStop

from ymds.billing.tasks import BillingTasks
from ymds.billing.timers import BillingTimers



def make_billing_service(reactor, config, queue, ledger, *, wallet_api=None, clock=None, stats=None,
                         timers_options=None, worker_options=None, webhook_sender=None,
                         webhook_options=None) -> MultiService:
    """``queue`` (IJobQueue, e.g. the started RedisJobQueue) sends bot jobs; ``ledger`` is an
    already migrated ILedger (``await ledger.migrate()`` before starting, so a schema
    problem stops start-up with its one-line error).  ``wallet_api`` (IWalletAPI) turns on
    reconciliation and, with yoomoney.confirm_with_api, confirmation of notifications.
    Outgoing webhooks are delivered by this role too: ``webhook_sender`` (IWebhookSender,
    default a TreqSender with its own pool) and ``webhook_options`` (WebhookDeliverer's).
    """
    from ymds.queue.registry import TaskRegistry
    from ymds.queue.worker import Worker

    clock = clock or reactor
    top = SequentialMultiService()  # timers and worker finish before the ledger closes
    top.setName("billing")
    from ymds.api.tasks import ApiTasks
    from ymds.billing.subscribers import SubscriberTasks
    from ymds.webhooks.delivery import TreqSender, WebhookDeliverer

    own_sender = webhook_sender is None
    sender = TreqSender(reactor) if own_sender else webhook_sender
    webhooks = WebhookDeliverer(ledger, queue, clock, sender, reactor, **(webhook_options or {}))
    tasks = BillingTasks(config, ledger, queue, clock, wallet_api=wallet_api, webhooks=webhooks)
    registry = TaskRegistry()
    tasks.register(registry)
    webhooks.register(registry)
    ApiTasks(config, ledger, clock).register(registry)
    from ymds.billing.admin import AdminTasks, RedisDeadLetters, ledger_reverify
    AdminTasks(config, ledger, queue, clock, RedisDeadLetters(reactor, config.redis, queue),  # issue 16: the dashboard
               ledger_reverify(config, ledger, clock, tasks, wallet_api)).register(registry)
    SubscriberTasks(config, ledger, queue, clock).register(registry)
    CloseOnStop(ledger.close, name="ledger").setServiceParent(top)  # closed last: stops run in reverse
    if own_sender:
        CloseOnStop(sender.close, name="webhook-sender").setServiceParent(top)
    worker = Worker(reactor, config.redis, config.queue, "billing", registry, clock=clock, stats=stats,
                    **(worker_options or {}))
    worker.setServiceParent(top)
    timers = BillingTimers(config, ledger, queue, clock, tasks, wallet_api=wallet_api, webhooks=webhooks,
                           **(timers_options or {}))
    timers.setServiceParent(top)
    from ymds.billing.admin import ReportFolder
    ReportFolder(ledger, clock).setServiceParent(top)  # issue 16: the dashboard's figures, one row per half hour
    from ymds.billing.overlay import make_publisher
    overlay = tasks.payments.overlay = make_publisher(reactor, config, ledger, queue, clock)
    if overlay is not None:  # issue 17: the overlay outbox to Redis
        overlay.setServiceParent(top)
    top.tasks = tasks
    top.timers = timers
    top.worker = worker
    top.webhooks = webhooks
    return top


__all__ = ["make_billing_service"]
