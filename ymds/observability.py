"""Metrics that span components: the queue's counters and depths, the ledger's calls and
the payments it applied, and an optional /metrics listener for processes without the web role.

Every process keeps its own Registry and serves it on ``server.metrics_endpoint`` (keep that
on loopback or a private network; Prometheus scrapes each process, as usual).  The public
web listener answers /metrics only with ``server.metrics_public = true``: the figures are
the owner's revenue.
"""

from __future__ import annotations

import time

from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from zope.interface import directlyProvides, providedBy

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from ymds.billing.interfaces import STORE_INTERFACES, IPaymentStore
from ymds.metrics import Registry, bucket_bound

log = Logger()

QUEUES = ("billing", "bot")


# --- the queue ------------------------------------------------------------------------------


def queue_collector(stats):
    """Metric families for a QueueStats: per-queue event counters and handler durations."""

    def collect() -> list[Metric]:
        detail = stats.detail()
        jobs = CounterMetricFamily("ymds_queue_jobs", "Queue events in this process, by queue and event",
                                   labels=("queue", "event"))
        for queue, counters in sorted(detail["by_queue"].items()):
            for event, value in sorted(counters.items()):
                jobs.add_metric([queue, event], float(value))
        in_flight = GaugeMetricFamily("ymds_queue_in_flight", "Jobs this process is running now, by queue",
                                      labels=("queue",))
        for queue, value in sorted(detail["in_flight"].items()):
            in_flight.add_metric([queue], float(value))
        durations = HistogramMetricFamily("ymds_job_duration_seconds", "Handler run time, by task", labels=("task",))
        for task, d in sorted(detail["durations"].items()):
            buckets = [(bucket_bound(float(bound)), float(count)) for bound, count in d["buckets"].items()]
            durations.add_metric([task], buckets, float(d["sum"]))
        return [jobs, in_flight, durations]

    return collect


class QueueDepthPoller(TimerService):
    """Reads each queue's depth, pending count, oldest pending age and dead letters from
    Redis every ``interval`` seconds, so /metrics can render them without waiting."""

    def __init__(self, queue, metrics: Registry, clock, interval: float = 5.0, queues=QUEUES):
        super().__init__(interval, self._poll)
        self.clock = clock
        self._queue = queue
        self._queues = queues
        self._gauges = {
            "depth": metrics.gauge("ymds_queue_depth", "Entries in the queue's stream (waiting or running)", ["queue"]),
            "pending": metrics.gauge("ymds_queue_pending", "Entries delivered to a worker and not yet acknowledged", ["queue"]),
            "delayed": metrics.gauge("ymds_queue_delayed", "Jobs waiting for a retry or a delay", ["queue"]),
            "dead": metrics.gauge("ymds_queue_dead_letters", "Entries in the queue's dead-letter stream", ["queue"]),
            "oldest_pending_age": metrics.gauge("ymds_queue_oldest_age_seconds", "Age of the oldest entry in the stream", ["queue"]),
        }

    def _poll(self) -> Deferred:
        return Deferred.fromCoroutine(self.poll()).addErrback(
            lambda f: log.debug("queue depth poll failed: {error}", error=f.getErrorMessage()))

    async def poll(self) -> None:
        for name in self._queues:
            snapshot = await self._queue.snapshot(name)
            for key, gauge in self._gauges.items():
                gauge.set(float(snapshot.get(key, 0)), queue=name)


# --- the ledger -----------------------------------------------------------------------------


class InstrumentedLedger:
    """Wraps an ILedger: times every call of its methods and of its stores' methods
    (``ledger.payments.apply_payment``, labelled by the method's name) and counts the
    payments apply_payment decided.

    It provides whatever the wrapped ledger provides; attributes that are neither stores
    nor methods pass straight through.
    """

    # The payment store's method whose results are counted (named from the interface, so a
    # rename there cannot silently stop the count).
    PAYMENT_METHOD = IPaymentStore.apply_payment.__name__

    def __init__(self, ledger, metrics: Registry, now=time.monotonic):
        self._ledger = ledger
        self._now = now
        self._latency = metrics.histogram("ymds_ledger_call_seconds", "Ledger call latency, by method", ["method"])
        self._payments = metrics.counter("ymds_payments", "Payments applied by this process, by outcome and source",
                                         ["outcome", "source"])
        self._rubles = metrics.counter("ymds_payments_rubles", "Sum paid (withdraw_amount, RUB) of new payments, by outcome",
                                       ["outcome"])
        directlyProvides(self, providedBy(ledger))

    def __getattr__(self, name):
        attribute = getattr(self._ledger, name)
        if name in STORE_INTERFACES:  # a store (ledger.payments, ...): time its methods too
            store = self.__dict__[name] = _InstrumentedStore(attribute, self._timed, STORE_INTERFACES[name])
            return store
        if not callable(attribute) or name.startswith("_"):
            return attribute
        return self._timed(name, attribute)

    def _timed(self, name, attribute):
        def timed(*args, **kwargs):
            started = self._now()
            d = maybeDeferred(attribute, *args, **kwargs)

            def observed(result):
                self._latency.observe(self._now() - started, method=name)
                return result

            d.addBoth(observed)
            if name == self.PAYMENT_METHOD:
                source = kwargs.get("source", args[1] if len(args) > 1 else "notification")
                d.addCallback(self._count, str(source))
            return d

        return timed

    def _count(self, result, source: str):
        outcome = getattr(result, "outcome", "unknown")
        self._payments.inc(outcome=outcome, source=source)
        payment = getattr(result, "payment", None)
        if payment is not None and (getattr(result, "is_new", False) or getattr(result, "released", False)):
            # Prometheus numbers are floats: fine for a dashboard, never used for money.
            self._rubles.inc(float(payment.withdraw_amount), outcome=outcome)
        return result


# --- a /metrics listener for processes without the web role -----------------------------------


METRICS_CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


class _InstrumentedStore:
    """One store of an InstrumentedLedger: the methods of its interface timed under their own name.

    Only the interface's methods: a store's transaction-level helpers (``insert(txn, ...)``,
    used inside another transaction) must keep returning plain values, not Deferreds.
    """

    def __init__(self, store, timed, interface):
        self._store = store
        self._timed = timed
        self._timed_names = frozenset(n for n in vars(interface) if not n.startswith("_"))

    def __getattr__(self, name):
        attribute = getattr(self._store, name)
        if not callable(attribute) or name not in self._timed_names:
            return attribute
        return self._timed(name, attribute)


class MetricsOnly(Resource):
    """The whole tree of the ``server.metrics_endpoint`` listener: /metrics, nothing else."""

    isLeaf = True

    def __init__(self, metrics: Registry):
        super().__init__()
        self._metrics = metrics

    def render_GET(self, request):
        if request.postpath not in ([b"metrics"], [b"metrics", b""]):
            request.setResponseCode(404)
            return b"not found\n"
        request.setHeader(b"content-type", METRICS_CONTENT_TYPE)
        return self._metrics.render().encode("utf-8")
