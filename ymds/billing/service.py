"""The billing role as one service: the ``billing`` queue's Worker plus the timers."""

from __future__ import annotations

from twisted.application.service import MultiService, Service

from ymds.billing.tasks import BillingTasks
from ymds.billing.timers import BillingTimers



class _LedgerLifecycle(Service):
    """Migrates the ledger before the worker starts taking jobs, closes it last."""

    name = "ledger"

    def __init__(self, ledger):
        self.ledger = ledger

    def stopService(self):
        super().stopService()
        return self.ledger.close()


def make_billing_service(reactor, config, queue, ledger, *, wallet_api=None, clock=None, stats=None,
                         timers_options=None, worker_options=None) -> MultiService:
    """``queue`` (IJobQueue, e.g. the started RedisJobQueue) sends bot jobs; ``ledger`` is an
    already migrated ILedger (``await ledger.migrate()`` before starting, so a schema
    problem stops start-up with its one-line error).  ``wallet_api`` (IWalletAPI) turns on
    reconciliation and, with yoomoney.confirm_with_api, confirmation of notifications.
    """
    from ymds.queue.registry import TaskRegistry
    from ymds.queue.worker import Worker

    clock = clock or reactor
    top = MultiService()
    top.setName("billing")
    tasks = BillingTasks(config, ledger, queue, clock, wallet_api=wallet_api)
    registry = TaskRegistry()
    tasks.register(registry)
    _LedgerLifecycle(ledger).setServiceParent(top)
    worker = Worker(reactor, config.redis, config.queue, "billing", registry, clock=clock, stats=stats,
                    **(worker_options or {}))
    worker.setServiceParent(top)
    timers = BillingTimers(config, ledger, queue, clock, tasks, wallet_api=wallet_api, **(timers_options or {}))
    timers.setServiceParent(top)
    top.tasks = tasks
    top.timers = timers
    top.worker = worker
    return top


__all__ = ["make_billing_service"]
