"""Issue 20, the first set-up: a dry run that cannot reach the real YooMoney, the config
search order, one-line errors for list keys and channel ids, the demo's config file, the
sandbox's operations across a restart, and payments shown with purpose, chat and paid time."""

from __future__ import annotations

import io
import json
import os
from decimal import Decimal

from twisted.internet import reactor, task
from twisted.internet.defer import Deferred
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.support.queues import RecordingQueue, run_task
from ymds.billing.open import open_ledger
from ymds.billing.tasks import BillingTasks
from ymds.billing.timers import BillingTimers
from ymds.cli.config_search import SYSTEM_CONFIG, find_config
from ymds.config import ConfigError, load_config
from ymds.sandbox.resource import QuickpayForm, SandboxResource
from ymds.sandbox.store import PersistentOperationStore, store_directory
from ymds.yoomoney.wallet_api import WalletAPI

WALLET = "4100117000000000"
SECRET = "sandbox-test-secret-0123456789"
TOKEN = "sandbox-api-token-4100117000000000.ABCDEF"
T0 = 1_780_000_000.0

LIVE_URLS = {"quickpay_url": "https://yoomoney.ru/quickpay/confirm", "api_url": "https://yoomoney.ru"}


def sandbox_document(**yoomoney):
    return {"server": {"public_url": "https://localhost:8443"},
            "yoomoney": {"wallet": WALLET, "notification_secret": SECRET, "sandbox": True, **yoomoney},
            "links": {"secret": "0123456789abcdef0123456789abcdef"},
            "plans": [{"id": "month", "title": "1 month", "price": "199.00", "days": 30}]}


class DryRunURLs(unittest.TestCase):
    def test_sandbox_replaces_the_real_yoomoney_urls_of_the_example(self):
        config = load_config(raw=sandbox_document(**LIVE_URLS), env={})
        self.assertEqual(config.yoomoney.quickpay_url, "https://localhost:8443/sandbox/quickpay/confirm")
        self.assertEqual(config.yoomoney.api_url, "https://localhost:8443/sandbox")
        # from the environment too
        config = load_config(raw=sandbox_document(), env={"YMDS_YOOMONEY_QUICKPAY_URL": LIVE_URLS["quickpay_url"]})
        self.assertNotIn("yoomoney.ru", config.yoomoney.quickpay_url)

    def test_a_sandbox_elsewhere_on_this_machine_is_kept(self):
        config = load_config(raw=sandbox_document(api_url="http://127.0.0.1:9999/sandbox"), env={})
        self.assertEqual(config.yoomoney.api_url, "http://127.0.0.1:9999/sandbox")

    def test_live_keeps_the_configured_urls(self):
        doc = sandbox_document(**LIVE_URLS)
        doc["yoomoney"]["sandbox"] = False
        doc["server"]["public_url"] = "https://pay.example.org"
        config = load_config(raw=doc, env={})
        self.assertEqual(config.yoomoney.quickpay_url, LIVE_URLS["quickpay_url"])

    def test_check_says_sandbox(self):
        from ymds.check import run_check
        lines: list[str] = []
        config = load_config(raw=sandbox_document(**LIVE_URLS), env={}, overrides={"redis.url": "redis://127.0.0.1:1/0"})
        run_check(config, {"web"}, lines.append)
        sandbox = [line for line in lines if line.startswith("SANDBOX")]
        self.assertEqual(len(sandbox), 1, lines)
        self.assertIn("https://localhost:8443/sandbox/quickpay/confirm", sandbox[0])
        lines.clear()
        live = load_config(raw={**sandbox_document(), "yoomoney": {"wallet": WALLET}, "server": {
            "public_url": "https://pay.example.org"}}, env={}, overrides={"redis.url": "redis://127.0.0.1:1/0"})
        run_check(live, {"web"}, lines.append)
        self.assertFalse(any("SANDBOX" in line for line in lines))
        self.assertTrue(any(line.startswith("yoomoney: LIVE") for line in lines), lines)


class ConfigErrors(unittest.TestCase):
    def error(self, **kw) -> str:
        with self.assertRaises(ConfigError) as caught:
            load_config(**kw)
        text = str(caught.exception)
        self.assertNotIn("\n", text)
        return text

    def test_set_a_plan_key(self):
        config = load_config(raw=sandbox_document(), env={}, overrides={"plans.0.price": "249"})
        self.assertEqual(config.plans[0].price, Decimal("249.00"))
        for key in ("plans.1.price", "plans.price", "plans.x.price", "plans.0"):
            text = self.error(raw=sandbox_document(), env={}, overrides={key: "199"})
            self.assertIn(f"configuration error: {key}:", text)
            self.assertIn("plans.0.price=199", text)

    def test_set_into_a_value_that_is_not_a_table(self):
        text = self.error(raw={"telegram": "x"}, env={}, overrides={"telegram.token": "1"})
        self.assertIn("telegram", text)

    def test_channel_id_username_and_positive(self):
        for value, words in (("@mychannel", "is a username"), (1001234567890, "is positive"),
                             ("1001234567890", "is positive"), ("channel", "is not a chat id")):
            text = self.error(raw={"telegram": {"channel_id": value}}, env={})
            self.assertIn("telegram.channel_id", text)
            self.assertIn(words, text)
            self.assertIn("-1001234567890", text)
        self.assertEqual(load_config(raw={"telegram": {"channel_id": "-1001234567890"}}, env={}).telegram.channel_id,
                         -1001234567890)

    def test_shop_section(self):
        config = load_config(raw={"shop": {"name": "  Клуб   Анны ", "contact": "@anna_owner"}}, env={})
        self.assertEqual((config.shop.name, config.shop.contact), ("Клуб Анны", "@anna_owner"))
        self.assertEqual(load_config(raw={"shop": {"contact": "anna@example.org"}}, env={}).shop.contact,
                         "anna@example.org")
        self.assertIn("shop.contact", self.error(raw={"shop": {"contact": "call me"}}, env={}))
        self.assertIn("shop.name", self.error(raw={"shop": {"name": "x" * 65}}, env={}))
        self.assertIn("shop.colour", self.error(raw={"shop": {"colour": "red"}}, env={}))
        self.assertTrue(load_config(raw={"telegram": {"sale_alerts": "true"}}, env={}).telegram.sale_alerts)


class ConfigSearch(unittest.TestCase):
    def test_order(self):
        cwd = "/srv/shop"
        present: set[str] = set()
        exists = present.__contains__
        self.assertEqual(find_config("a.toml", {"YMDS_CONFIG": "b.toml"}, cwd, exists), ("a.toml", "--config"))
        self.assertEqual(find_config(None, {"YMDS_CONFIG": "b.toml"}, cwd, exists), ("b.toml", "$YMDS_CONFIG"))
        path, where = find_config(None, {}, cwd, exists)
        self.assertIsNone(path)
        self.assertIn("/etc/ymds/ymds.toml", where)
        present.add("/srv/shop/ymds.toml")
        self.assertEqual(find_config(None, {}, cwd, exists), ("/srv/shop/ymds.toml", "the current directory"))
        present.add(SYSTEM_CONFIG)
        self.assertEqual(find_config(None, {}, cwd, exists), (SYSTEM_CONFIG, "the system default"))

    async def test_the_command_uses_and_names_the_local_file(self):
        from ymds.cli import run
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        with open(os.path.join(directory, "ymds.toml"), "w") as f:
            f.write(f'[server]\npublic_url = "https://pay.example.org"\n[yoomoney]\nwallet = "{WALLET}"\n'
                    '[ledger]\nurl = "sqlite:///ledger.sqlite3"\n')
        if os.path.exists(SYSTEM_CONFIG):
            raise unittest.SkipTest(f"{SYSTEM_CONFIG} exists on this machine and would be used first")
        before = os.getcwd()
        os.chdir(directory)
        self.addCleanup(os.chdir, before)
        out, err = io.StringIO(), io.StringIO()
        status = await run(reactor, ["payments", "--json"], env={}, out=out, err=err)
        self.assertEqual((status, json.loads(out.getvalue())), (0, []))
        self.assertEqual(err.getvalue(), f"ymds: configuration {directory}/ymds.toml (from the current directory)\n")


class SetOnTheCommandLine(unittest.TestCase):
    async def test_a_wrong_plan_key_is_one_line_and_status_1(self):
        from ymds.cli import run
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        path = os.path.join(directory, "ymds.toml")
        with open(path, "w") as f:
            f.write(f'[server]\npublic_url = "https://pay.example.org"\n[yoomoney]\nwallet = "{WALLET}"\n'
                    '[ledger]\nurl = "sqlite:///ledger.sqlite3"\n'
                    '[[plans]]\nid = "month"\ntitle = "1 month"\nprice = "199.00"\ndays = 30\n')
        for key, status in (("plans.0.price=249", 0), ("plans.3.price=249", 1), ("plans.0.price=abc", 1)):
            out, err = io.StringIO(), io.StringIO()
            code = await run(reactor, ["-c", path, "--set", key, "payments"], env={}, out=out, err=err)
            self.assertEqual(code, status, err.getvalue())
            if status:
                self.assertEqual(err.getvalue().count("\n"), 1, err.getvalue())
                self.assertTrue(err.getvalue().startswith("ymds: configuration error: plans"), err.getvalue())
                self.assertNotIn("Traceback", err.getvalue())


class DemoConfigFile(unittest.TestCase):
    def test_the_demo_writes_its_effective_configuration(self):
        from ymds import demo
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        document = demo.demo_document(directory, 8443, 'unix:///x/redis.sock?db=0&password=p"w\\', "ymds")
        path = demo.write_config_file(directory, document, {"plans.0.price": "249"})
        self.assertEqual(path, os.path.join(directory, "ymds.toml"))
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        from_file = load_config(path=path, env={})
        self.assertEqual(from_file, load_config(raw=document, env={}, overrides={"plans.0.price": "249"}))
        self.assertTrue(from_file.yoomoney.sandbox)
        self.assertEqual(from_file.plans[0].price, Decimal("249.00"))
        self.assertEqual(demo.admin_command(path), f"ymds -c {os.path.relpath(path)} payments")


class SandboxAcrossRestart(unittest.TestCase):
    """A payment whose notification was lost is still in operation-history after the sandbox
    restarts, and reconciliation records it with the time it was paid."""

    def setUp(self):
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        doc = sandbox_document(api_token=TOKEN)
        doc["server"]["public_url"] = "http://127.0.0.1:1"
        doc["ledger"] = {"url": "sqlite:///" + os.path.join(self.dir, "ledger.sqlite3")}
        self.config = load_config(raw=doc, env={})
        self.clock = task.Clock()
        self.clock.advance(T0)

    def start_sandbox(self) -> tuple[SandboxResource, str]:
        operations = PersistentOperationStore(store_directory(self.config, "/nonexistent"))
        resource = SandboxResource(reactor, self.config, clock=self.clock, operations=operations,
                                   notify_url="http://127.0.0.1:1/yoomoney/notify", delivery_timeout=1.0)
        self.addCleanup(lambda: Deferred.fromCoroutine(resource.stop()))
        root = Resource()
        root.putChild(b"sandbox", resource)
        port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return resource, f"http://127.0.0.1:{port.getHost().port}/sandbox"

    async def test_reconcile_after_restart(self):
        ledger = open_ledger(self.config.ledger.url, reactor)
        self.addCleanup(ledger.close)
        await ledger.migrate()
        queue = RecordingQueue()
        tasks = BillingTasks(self.config, ledger, queue, self.clock)
        label = (await run_task(tasks, "create_invoices", {"chat_id": 42}))["invoices"][0]["label"]
        first, _ = self.start_sandbox()
        self.assertEqual(store_directory(self.config, "/nonexistent"), self.dir)
        operation, delivery = await first.sandbox.pay(QuickpayForm(WALLET, "AC", Decimal("199.00"), label, ""))
        paid_at = self.clock.seconds()
        await first.stop()  # the notification is never delivered; the sandbox stops
        self.clock.advance(3 * 3600)
        second, api_url = self.start_sandbox()  # a new process: it reads the file back
        self.assertIsNotNone(second.sandbox.store.get(operation.operation_id))
        api = WalletAPI(reactor, api_url, TOKEN, timeout=5.0)
        self.addCleanup(lambda: Deferred.fromCoroutine(api.close()))
        timers = BillingTimers(self.config, ledger, queue, self.clock, tasks, wallet_api=api)
        from datetime import datetime, timezone
        ops = [op async for op in api.iter_history(type="deposition", from_=datetime.fromtimestamp(T0 - 60, timezone.utc),
                                                   records=100, details=True)]
        self.assertEqual([op.operation_id for op in ops], [operation.operation_id])
        kind, _ = await timers.reconcile_operation(ops[0], self.clock.seconds())
        self.assertEqual(kind, "applied")
        from ymds.cli.payments import payment_record
        payment = await ledger.payments.get_payment(operation.operation_id)
        record = payment_record(payment, await ledger.invoices.get_invoice(label))
        from ymds.cli.output import iso
        self.assertEqual(record["paid_at"], iso(paid_at))
        self.assertEqual(record["received_at"], iso(paid_at))  # recorded when paid, not when found
        self.assertEqual(record["accepted_at"], iso(paid_at + 3 * 3600))
        self.assertEqual((record["purpose"], record["chat_id"]), ("plan month", 42))

    def test_a_torn_last_line_is_skipped(self):
        store = PersistentOperationStore(self.dir)
        from ymds.sandbox.operations import SandboxOperation
        store.add(SandboxOperation("1001", T0, "x", "AC", "card-incoming", Decimal("193.03"), Decimal("199.00"), "",
                                   "lbl", False, False, False, {"a": "b"}))
        with open(store.path, "a") as f:
            f.write('{"operation_id": "100')
        again = PersistentOperationStore(self.dir)
        self.assertEqual([op.operation_id for op in again.newest_first()], ["1001"])
        self.assertEqual(again.get("1001").amount, Decimal("193.03"))
