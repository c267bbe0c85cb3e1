"""/metrics: valid Prometheus text (prometheus_client's parser), and counts that move as
payments flow through a real twistd process."""
import os
import time
from decimal import Decimal

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial import unittest

from tests.support import webflow
from tests.support.processes import Child, TWISTD, start_demo, write_config
from tests.support.redis_server import RedisServer, free_port
from prometheus_client.core import GaugeMetricFamily
from twisted.internet import defer

from tests.test_web_support import LiveSite, make_config
from ymds.metrics import Registry
from ymds.observability import InstrumentedLedger, queue_collector
from ymds.queue.stats import QueueStats


def samples(text: str) -> dict:
    """{(sample name, frozenset(labels)): value} parsed by prometheus_client."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(parsed: dict, name: str, **labels) -> float:
    return parsed.get((name, frozenset(labels.items())), 0.0)


class RegistryTests(unittest.TestCase):
    def test_render_parses(self):
        r = Registry()
        r.counter("ymds_things", "Things", ["kind"]).inc(2, kind='we"ird\nlabel')
        r.gauge("ymds_level", "Level").set(3.5)
        h = r.histogram("ymds_wait_seconds", "Waits", ["task"], buckets=(0.1, 1.0))
        h.observe(0.05, task="a")
        h.observe(5, task="a")
        r.add_collector(lambda: [GaugeMetricFamily("ymds_extra", "Extra", value=7.0)])
        parsed = samples(r.render())
        self.assertEqual(value(parsed, "ymds_things_total", kind='we"ird\nlabel'), 2)
        self.assertEqual(value(parsed, "ymds_level"), 3.5)
        self.assertEqual(value(parsed, "ymds_wait_seconds_bucket", task="a", le="0.1"), 1)
        self.assertEqual(value(parsed, "ymds_wait_seconds_bucket", task="a", le="+Inf"), 2)
        self.assertEqual(value(parsed, "ymds_wait_seconds_count", task="a"), 2)
        self.assertEqual(value(parsed, "ymds_extra"), 7)

    def test_store_calls_are_timed_and_payments_counted(self):
        """The billing role calls the ledger's stores (ledger.payments.apply_payment): those
        calls are timed under the method's name and the payment is counted."""
        r = Registry()

        class Applied:
            outcome, payment = "paid", None

        class Payments:
            def apply_payment(self, fields, source, now, held=None):
                return Applied()

        class Subscriptions:
            def is_blocked(self, chat_id):
                return False

        class Ledger:
            payments, subscriptions = Payments(), Subscriptions()

        instrumented = InstrumentedLedger(Ledger(), r)
        instrumented.payments.apply_payment({}, "reconcile", 0.0)
        instrumented.subscriptions.is_blocked(1)
        parsed = samples(r.render())
        self.assertEqual(value(parsed, "ymds_payments_total", outcome="paid", source="reconcile"), 1)
        self.assertEqual(value(parsed, "ymds_ledger_call_seconds_count", method="apply_payment"), 1)
        self.assertEqual(value(parsed, "ymds_ledger_call_seconds_count", method="is_blocked"), 1)

    async def test_transaction_helpers_of_a_store_are_not_wrapped(self):
        """A store's txn-level helpers (invoices.insert(txn, ...), called inside another
        transaction) stay plain: wrapped, they returned a Deferred and the capped public
        donation failed with "'Deferred' object has no attribute 'label'" in the billing role."""
        from twisted.internet import reactor
        from ymds.billing.donation_cap import create_capped_donation
        from ymds.billing.open import open_ledger
        ledger = open_ledger("sqlite:///" + self.mktemp() + ".sqlite3", reactor)
        self.addCleanup(ledger.close)
        await ledger.migrate()
        instrumented = InstrumentedLedger(ledger, Registry())
        invoice = await create_capped_donation(instrumented, Decimal("100.00"), 1000.0, 600, {}, 10)
        self.assertEqual((await instrumented.invoices.get_invoice(invoice.label)).amount, Decimal("100.00"))

    def test_types_parse_as_declared(self):
        """Counter families are named without _total and parse as counters (they parsed as
        'unknown' when the TYPE line named the family and the samples ended in _total)."""
        r = Registry()

        class Applied:
            outcome, payment = "paid", None

        class Ledger:  # only the call InstrumentedLedger counts
            def apply_payment(self, notification, source="notification"):
                return Applied()

        InstrumentedLedger(Ledger(), r).apply_payment(object())
        stats = QueueStats()
        r.add_collector(queue_collector(stats))
        types = {f.name: f.type for f in text_string_to_metric_families(r.render())}
        self.assertEqual(types["ymds_payments"], "counter")
        self.assertEqual(types["ymds_payments_rubles"], "counter")
        self.assertEqual(types["ymds_queue_jobs"], "counter")
        self.assertEqual(types["ymds_job_duration_seconds"], "histogram")
        self.assertEqual(types["ymds_ledger_call_seconds"], "histogram")
        self.assertNotIn("unknown", types.values())
        parsed = samples(r.render())
        self.assertEqual(value(parsed, "ymds_payments_total", outcome="paid", source="notification"), 1)

    def test_process_metrics_included(self):
        names = {f.name for f in text_string_to_metric_families(Registry().render())}
        self.assertIn("process_resident_memory_bytes", names)
        self.assertIn("process_cpu_seconds", names)

    def test_same_name_different_shape_refused(self):
        r = Registry()
        r.counter("ymds_x", "x", ["a"])
        self.assertRaises(ValueError, r.gauge, "ymds_x", "x", ["a"])
        self.assertRaises(ValueError, r.counter("ymds_y", "y", ["a"]).inc, 1, b="no")


class PublicListenerTests(unittest.TestCase):
    """The public listener does not show the owner's revenue unless told to."""

    def get(self, live, path):
        return defer.Deferred.fromCoroutine(live.client.request("GET", path))

    @defer.inlineCallbacks
    def test_metrics_hidden_on_public_listener_by_default(self):
        live = LiveSite(self)
        live.metrics.counter("ymds_payments", "p", ["outcome"]).inc(outcome="paid")
        for path in ("/metrics", "/metrics/", "/metrics/anything", "/metrics/..%2fmetrics", "/Metrics"):
            response, body = yield self.get(live, path)
            self.assertEqual(response.code, 404, path)
            self.assertNotIn(b"ymds_payments", body, path)

    @defer.inlineCallbacks
    def test_metrics_public_opt_in(self):
        from tests.support.redis_server import free_port
        port = free_port()
        live = LiveSite(self, config=make_config(port, server={"metrics_public": True}))
        live.metrics.counter("ymds_payments", "p", ["outcome"]).inc(outcome="paid")
        response, body = yield self.get(live, "/metrics")
        self.assertEqual(response.code, 200)
        self.assertEqual(value(samples(body.decode()), "ymds_payments_total", outcome="paid"), 1)
        response, _ = yield self.get(live, "/metrics/anything")
        self.assertEqual(response.code, 404)


class LiveMetricsTests(unittest.TestCase):
    def test_counts_move_as_a_payment_flows(self):
        metrics_port = free_port()
        child, base, _ = start_demo(self, "--set", f"server.metrics_endpoint=tcp:{metrics_port}:interface=127.0.0.1",
                                    name="metrics")
        child.wait_for("billing role started", timeout=60)
        for path in ("/metrics", "/metrics/x"):  # the public listener keeps the revenue to itself
            self.assertEqual(webflow.request(base + path)[0], 404)

        def scrape():
            status, headers, body = webflow.request(f"http://127.0.0.1:{metrics_port}/metrics")
            self.assertEqual(status, 200)
            self.assertTrue(headers["Content-Type"].startswith("text/plain"))
            return samples(body)

        before = scrape()
        pay_url = webflow.donate(base, "150", "Ann", "hi")
        webflow.pay_in_sandbox(pay_url, "AC")
        webflow.wait_for_status(pay_url, "paid")
        deadline = time.monotonic() + 20
        while True:  # the queue gauges refresh every 5 s
            after = scrape()
            if value(after, "ymds_queue_depth", queue="billing") == 0 and ("ymds_queue_depth", frozenset({("queue", "billing")})) in after:
                break
            self.assertLess(time.monotonic(), deadline, "queue gauges never appeared")
            time.sleep(0.2)
        self.assertEqual(value(after, "ymds_payments_total", outcome="paid", source="notification")
                         - value(before, "ymds_payments_total", outcome="paid", source="notification"), 1)
        self.assertEqual(value(after, "ymds_payments_rubles_total", outcome="paid"), 150.0)
        self.assertEqual(value(after, "ymds_web_notifications_total", result="ok")
                         - value(before, "ymds_web_notifications_total", result="ok"), 1)
        self.assertGreaterEqual(value(after, "ymds_ledger_call_seconds_count", method="apply_payment"), 1)
        self.assertGreaterEqual(value(after, "ymds_job_duration_seconds_count", task="apply_payment"), 1)
        self.assertGreaterEqual(value(after, "ymds_queue_jobs_total", queue="billing", event="acked"), 2)
        self.assertEqual(value(after, "ymds_queue_dead_letters", queue="billing"), 0)

    def test_metrics_endpoint_on_a_billing_only_process(self):
        redis = RedisServer(appendonly=False).start()
        self.addCleanup(redis.cleanup)
        port = free_port()
        path = write_config(os.path.abspath(self.mktemp()), redis.url,
                            f'metrics_endpoint = "tcp:{port}:interface=127.0.0.1"')
        child = Child(TWISTD + ["-n", "ymds", "--config", path, "--roles", "billing"], name="billing-metrics")
        self.addCleanup(child.close)
        child.start()
        child.wait_for("billing role started", timeout=60)
        import urllib.request
        deadline = time.monotonic() + 20
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                parsed = samples(r.read().decode())
            if value(parsed, "ymds_ledger_call_seconds_count", method="get_cursor") >= 1:
                break  # the ledger heartbeat's reads are timed
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.2)
        self.assertIn(("ymds_ledger_call_seconds_count", frozenset({("method", "migrate")})), parsed)
