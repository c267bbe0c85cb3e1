"""The ``ymds`` admin command, run as a real subprocess against a private redis-server and a
real SQLite (and PostgreSQL) ledger: output and exit statuses.

Exit statuses under test: 0 ok, 1 usage/configuration error, 2 dependency unreachable,
3 something needs attention.
"""
from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import sys
import time
from decimal import Decimal
from types import SimpleNamespace

from twisted.internet import defer, reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from tests.support.redis_server import RedisServer, free_port
from ymds.links import new_label, verify_token

WALLET = "4100100000000000"
SECRET = "cli-test-notification-secret"
LINK_SECRET = "cli-test-link-secret-0123456789abcdef"
API_TOKEN = "4100100000000000.CLITESTTOKEN0123456789"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def child_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YMDS_")}
    env.update(extra)
    return env


class CLITestCase(unittest.TestCase):
    timeout = 120

    def setUp(self):
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.redis = RedisServer(appendonly=False).start()
        self.addCleanup(self.redis.cleanup)
        self.prefix = "cli" + os.urandom(4).hex()
        self.ledger_path = os.path.join(self.dir, "ledger.sqlite3")
        self.config_path = self.write_config()

    def write_config(self, redis_url=None, ledger_url=None, extra: str = "") -> str:
        path = os.path.join(self.dir, "ymds.toml")
        with open(path, "w") as f:
            f.write(f"""
[server]
public_url = "https://pay.example.org"
endpoint = "tcp:8443:interface=127.0.0.1"
[yoomoney]
wallet = "{WALLET}"
notification_secret = "{SECRET}"
[links]
secret = "{LINK_SECRET}"
[redis]
url = "{redis_url or self.redis.url}"
prefix = "{self.prefix}"
[ledger]
url = "{ledger_url or 'sqlite:///ledger.sqlite3'}"
[[plans]]
id = "month"
title = "1 month"
price = "199.00"
days = 30
{extra}
""")
        return path

    def ymds(self, *args, config=True, env=None, wrapper=None):
        """Run ``python -m ymds.cli``; fires with (stdout, stderr, exit status)."""
        argv = list(wrapper or ["-m", "ymds.cli"])
        if config:
            argv += ["--config", self.config_path]
        argv += list(args)
        d = getProcessOutputAndValue(sys.executable, argv, env=env or child_env(), path=REPO, reactor=reactor)
        return d.addCallback(lambda r: (r[0].decode(), r[1].decode(), r[2]))

    async def ledger(self):
        from ymds.billing.open import open_ledger
        ledger = open_ledger("sqlite:///" + self.ledger_path, reactor)
        await ledger.migrate()
        closed = []
        close = ledger.close

        def close_once():
            if not closed:
                closed.append(True)
                return close()

        ledger.close = close_once
        self.addCleanup(close_once)
        return ledger

    async def pay(self, ledger, chat_id=None, amount="199.00", label=None, now=None, **extra):
        """An invoice (for a chat) and its payment through the ledger API."""
        now = time.time() if now is None else now
        if label is None:
            invoice = await ledger.invoices.create_invoice("subscription", Decimal("199.00"), now, 86400, plan="month", days=30,
                                                  chat_id=chat_id if chat_id is not None else 1000)
            label = invoice.label
        fields = {"notification_type": "card-incoming", "operation_id": "op" + os.urandom(6).hex(),
                  "amount": f"{Decimal(amount) * Decimal('0.97'):.2f}", "withdraw_amount": amount,
                  "currency": "643", "datetime": "2026-11-26T10:00:00Z", "sender": "", "codepro": "false",
                  "label": label, "unaccepted": "false", "email": "payer@example.org", **extra}
        return await ledger.payments.apply_payment(fields, "notification", now)


class ConfigurationAndReachability(CLITestCase):

    async def test_no_configuration(self):
        out, err, code = await self.ymds("stats", config=False)
        self.assertEqual(code, 1)
        self.assertIn("no configuration: give --config", err)
        self.assertEqual(err.count("\n"), 1)

    async def test_config_from_environment_variable(self):
        out, err, code = await self.ymds("payments", config=False, env=child_env(YMDS_CONFIG=self.config_path))
        self.assertEqual((code, err), (0, f"ymds: configuration {self.config_path} (from $YMDS_CONFIG)\n"))
        self.assertIn("0 payments", out)

    async def test_bad_value_is_one_line_naming_the_key(self):
        self.write_config(extra="[donations]\nmin = 12.5\n")
        out, err, code = await self.ymds("payments")
        self.assertEqual(code, 1)
        self.assertTrue(err.startswith("ymds: configuration error: donations.min:"), err)
        self.assertEqual(err.count("\n"), 1)
        self.assertNotIn("Traceback", err)

    async def test_missing_config_file(self):
        out, err, code = await self.ymds("--config", os.path.join(self.dir, "nope.toml"), "stats", config=False)
        self.assertEqual(code, 1)
        self.assertIn("does not exist", err)

    async def test_usage_errors_exit_1(self):
        for args in (["bogus"], ["replay"], ["replay", "1-0", "--all"], ["payments", "--since", "yesterday"],
                     ["link", "--plan", "nope", "--chat", "5"], ["--set", "novalue", "stats"],
                     ["check", "--roles", "bot"], ["payments", "--limit", "0"],
                     ["export", "--output", os.path.join(self.dir, "no", "such", "dir.csv")]):
            out, err, code = await self.ymds(*args)
            self.assertEqual(code, 1, (args, err))
            self.assertTrue(err.startswith("ymds: "), (args, err))
            self.assertNotIn("Traceback", err)

    async def test_redis_unreachable(self):
        self.write_config(redis_url=f"redis://:hunter2pass@127.0.0.1:{free_port()}/0")
        for command in (["stats"], ["dead-letters"], ["replay", "--all"], ["reverify"]):
            out, err, code = await self.ymds(*command)
            self.assertEqual(code, 2, (command, err))
            self.assertIn("redis unreachable", err)
            self.assertNotIn("hunter2pass", err)
            self.assertEqual(err.count("\n"), 1, err)

    async def test_sqlite_ledger_unreachable(self):
        self.write_config(ledger_url="sqlite:///no/such/dir/ledger.sqlite3")
        for command in (["payments"], ["export"], ["quarantine"], ["link", "--plan", "month", "--chat", "1"]):
            out, err, code = await self.ymds(*command)
            self.assertEqual(code, 2, (command, err))
            self.assertIn("ledger unreachable", err)

    async def test_postgres_ledger_unreachable_hides_password(self):
        self.write_config(ledger_url=f"postgresql://ymds:s3cretpw@127.0.0.1:{free_port()}/ymds")
        out, err, code = await self.ymds("payments")
        self.assertEqual(code, 2, err)
        self.assertIn("ledger unreachable", err)
        self.assertNotIn("s3cretpw", err)

    async def test_check(self):
        out, err, code = await self.ymds("check")
        self.assertEqual(code, 0, out + err)
        self.assertIn("redis: ok", out)
        self.assertIn("check: ok", out)
        self.write_config(redis_url=f"redis://127.0.0.1:{free_port()}/0")
        out, err, code = await self.ymds("check")
        self.assertEqual(code, 2, out + err)
        self.assertIn("redis: FAILED", out)


class Payments(CLITestCase):

    async def test_table_json_and_filters(self):
        ledger = await self.ledger()
        await self.pay(ledger, chat_id=111)
        await self.pay(ledger, chat_id=222, amount="150.00")  # underpaid
        await self.pay(ledger, label="foreign-label-xyz", amount="42.00")  # unmatched
        await ledger.close()

        out, err, code = await self.ymds("payments")
        self.assertEqual((code, err), (0, ""))
        self.assertIn("3 payments", out)
        for status in ("paid", "underpaid", "unmatched"):
            self.assertIn(status, out)
        self.assertIn("391.00 RUB", out)  # 199 + 150 + 42 paid

        out, err, code = await self.ymds("payments", "--status", "paid", "--json")
        rows = json.loads(out)
        self.assertEqual([r["status"] for r in rows], ["paid"])
        self.assertEqual(rows[0]["withdraw_amount"], "199.00")
        self.assertEqual(rows[0]["chat_id"], 111)
        self.assertNotIn("payer@example.org", out)  # personal fields stay in the ledger

        out, _, _ = await self.ymds("payments", "--chat", "222", "--json")
        self.assertEqual([r["status"] for r in json.loads(out)], ["underpaid"])
        out, _, _ = await self.ymds("payments", "--label", "foreign-label-xyz", "--json")
        self.assertEqual([r["withdraw_amount"] for r in json.loads(out)], ["42.00"])
        out, _, _ = await self.ymds("payments", "--since", "2099-01-01", "--json")
        self.assertEqual(json.loads(out), [])
        out, _, _ = await self.ymds("payments", "--since", "1h", "--json")
        self.assertEqual(len(json.loads(out)), 3)
        out, _, _ = await self.ymds("payments", "--limit", "1")
        self.assertIn("last 1 of 3 payments", out)

    async def test_stats(self):
        ledger = await self.ledger()
        await self.pay(ledger, chat_id=7)
        await ledger.close()
        out, err, code = await self.ymds("stats", "--json")
        self.assertEqual((code, err), (0, ""))
        stats = json.loads(out)
        self.assertEqual(stats["payments_today"], 1)
        self.assertEqual(stats["sum_today"], "193.03")  # credited
        self.assertEqual(stats["active_subscribers"], 1)
        self.assertEqual(stats["queues"]["billing"]["dead"], 0)
        out, err, code = await self.ymds("stats")
        self.assertIn("active subscribers:    1", out)
        self.assertIn("queue billing:", out)


class Export(CLITestCase):

    def bulk(self, n: int) -> None:
        """n payments straight into the payments table (fast), with personal raw fields."""
        conn = sqlite3.connect(self.ledger_path)
        base = 1.7e9
        raw = json.dumps({"email": "payer@example.org", "phone": "+70000000000"})
        rows = ((f"bulk{i:07d}", f"label{i:07d}", None, "97.00", "100.00", "card-incoming",
                 "2026-11-26T10:00:00Z", "", 0, "unmatched", "notification", base + i, base + i, None, None, 1, raw)
                for i in range(n))
        with conn:
            conn.executemany(
                "INSERT INTO payments (operation_id, label, invoice_label, amount, withdraw_amount, notification_type,"
                " datetime_raw, sender, held, status, source, received_at, accepted_at, chat_id, granted_until,"
                " notified, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.close()

    async def test_csv_and_json(self):
        ledger = await self.ledger()
        await self.pay(ledger, chat_id=5)
        await self.pay(ledger, label="=HYPERLINK(\"http://evil\")", amount="10.00")
        await ledger.close()
        target = os.path.join(self.dir, "out.csv")
        out, err, code = await self.ymds("export", "--format", "csv", "--output", target)
        self.assertEqual(code, 0, err)
        self.assertIn("export: 2 payments", err)
        self.assertFalse(os.path.exists(target + ".part"))
        self.assertEqual(os.stat(target).st_mode & 0o777, 0o600)
        with open(target, newline="") as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([r["status"] for r in rows], ["paid", "unmatched"])
        self.assertEqual(rows[0]["withdraw_amount"], "199.00")
        self.assertEqual(rows[1]["label"], "'=HYPERLINK(\"http://evil\")")  # no formula in a spreadsheet
        self.assertNotIn("payer@example.org", open(target).read())

        out, err, code = await self.ymds("export", "--format", "json", "--status", "paid")
        self.assertEqual(code, 0, err)
        rows = json.loads(out)
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["chat_id"], 5)
        out, err, code = await self.ymds("export", "--format", "jsonl")
        self.assertEqual([json.loads(line)["status"] for line in out.splitlines()], ["paid", "unmatched"])

    async def test_empty_json_export_is_valid(self):
        out, err, code = await self.ymds("export", "--format", "json")
        self.assertEqual((code, json.loads(out)), (0, []))

    async def peak_rss_kib(self, target: str, fmt: str) -> int:
        rss_file = os.path.join(self.dir, "rss")
        wrapper = ["-c", "import atexit, resource, sys\n"
                   "path = sys.argv[1]\n"
                   "atexit.register(lambda: open(path, 'w').write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)))\n"
                   "sys.argv = ['ymds'] + sys.argv[2:]\n"
                   "from ymds.cli import main\n"
                   "main()\n", rss_file]
        out, err, code = await self.ymds("export", "--format", fmt, "--output", target, "--progress-every", "10000",
                                          wrapper=wrapper)
        self.assertEqual(code, 0, err)
        with open(rss_file) as f:
            return int(f.read())

    async def test_memory_stays_flat(self):
        await (await self.ledger()).close()
        self.bulk(10_000)
        small = await self.peak_rss_kib(os.path.join(self.dir, "small.csv"), "csv")
        self.bulk_more(90_000)
        big_target = os.path.join(self.dir, "big.csv")
        big = await self.peak_rss_kib(big_target, "csv")
        with open(big_target) as f:
            lines = sum(1 for _ in f)
        self.assertEqual(lines, 100_001)  # header + every payment
        # ten times the rows, (almost) the same memory: one page is in memory at a time
        self.assertLess(big - small, 8 * 1024, f"peak RSS {small} KiB for 10k rows, {big} KiB for 100k rows")
        big_json = await self.peak_rss_kib(os.path.join(self.dir, "big.json"), "json")
        self.assertLess(big_json - small, 8 * 1024, f"json export peak RSS {big_json} KiB vs {small} KiB")
        with open(os.path.join(self.dir, "big.json")) as f:
            self.assertEqual(len(json.load(f)), 100_000)

    def bulk_more(self, n: int) -> None:
        conn = sqlite3.connect(self.ledger_path)
        start = conn.execute("SELECT COUNT(*) FROM payments").fetchone()[0]
        conn.close()
        conn = sqlite3.connect(self.ledger_path)
        rows = ((f"more{i:07d}", "", None, "9.70", "10.00", "p2p-incoming", "2026-11-26T10:00:00Z", "41001",
                 0, "unmatched", "reconcile", 1.8e9 + i, 1.8e9 + i, None, None, 1, "{}") for i in range(start, start + n))
        with conn:
            conn.executemany(
                "INSERT INTO payments (operation_id, label, invoice_label, amount, withdraw_amount, notification_type,"
                " datetime_raw, sender, held, status, source, received_at, accepted_at, chat_id, granted_until,"
                " notified, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.close()

    async def test_postgres_export(self):
        from tests.support.postgres import create_database, drop_database
        from ymds.billing.open import open_ledger
        url = create_database()
        self.addCleanup(drop_database, url)
        ledger = open_ledger(url, reactor)
        await ledger.migrate()
        try:
            for _ in range(3):
                await self.pay(ledger, chat_id=9)
        finally:
            await ledger.close()
        self.write_config(ledger_url=url)
        out, err, code = await self.ymds("export", "--format", "csv", "--progress-every", "2")
        self.assertEqual(code, 0, err)
        rows = list(csv.DictReader(io.StringIO(out)))
        self.assertEqual(len(rows), 3)
        self.assertEqual({r["status"] for r in rows}, {"paid"})
        self.assertIn("export: 2 payments", err)


class Quarantine(CLITestCase):

    def signed_body(self, secret=SECRET, label="", amount="100.00", operation_id=None) -> str:
        from ymds.yoomoney.notification import encode_form
        from ymds.yoomoney.signature import add_signatures
        fields = {"notification_type": "p2p-incoming", "operation_id": operation_id or "q" + os.urandom(5).hex(),
                  "amount": f"{Decimal(amount) * Decimal('0.99'):.2f}", "withdraw_amount": amount, "currency": "643",
                  "datetime": "2026-11-26T10:00:00Z", "sender": "41001000040", "codepro": "false",
                  "label": label, "unaccepted": "false"}
        return encode_form(add_signatures(fields, secret, "both")).decode()

    async def test_list_and_resolve(self):
        ledger = await self.ledger()
        first = await ledger.quarantine.quarantine_add(self.signed_body(secret="old-secret"), "signature: mismatch",
                                            "203.0.113.5", time.time())
        await ledger.quarantine.quarantine_add("garbage\x1b[31m=", "malformed", "198.51.100.7", time.time())
        await ledger.close()
        out, err, code = await self.ymds("quarantine")
        self.assertEqual(code, 3, err)  # something needs attention
        self.assertIn("2 unresolved", out)
        self.assertIn("203.0.113.5", out)
        self.assertNotIn("\x1b", out)  # hostile bytes never reach the terminal
        out, err, code = await self.ymds("quarantine", "--json")
        rows = json.loads(out)
        self.assertEqual(rows[0]["id"], first.id)
        self.assertTrue(rows[0]["operation_id"].startswith("q"))

        out, err, code = await self.ymds("quarantine", "--resolve", str(first.id), "--note", "old secret, checked by hand")
        self.assertEqual(code, 0, err)
        self.assertIn(f"quarantine #{first.id} resolved", out)
        out, err, code = await self.ymds("quarantine", "--resolve", str(first.id))
        self.assertEqual(code, 3)
        self.assertIn("unknown or already resolved", err)
        out, err, code = await self.ymds("quarantine", "--all", "--json")
        self.assertEqual(len(json.loads(out)), 2)

    async def test_reverify(self):
        ledger = await self.ledger()
        invoice = await ledger.invoices.create_invoice("subscription", Decimal("199.00"), time.time(), 86400, plan="month",
                                              days=30, chat_id=4242)
        # signed with the secret now configured (it was quarantined under an older one)
        good = self.signed_body(label=invoice.label, amount="199.00")
        await ledger.quarantine.quarantine_add(good, "signature: mismatch", "203.0.113.5", time.time())
        out, err, code = await self.ymds("reverify")
        self.assertEqual(code, 0, err)
        self.assertIn("applied 1", out)
        self.assertEqual((await ledger.invoices.get_invoice(invoice.label)).status, "paid")
        # the buyer hears about it: a bot job went to the bot queue
        self.assertGreaterEqual(int(self.redis.command("XLEN", f"{self.prefix}:q:bot")), 1)

        await ledger.quarantine.quarantine_add(self.signed_body(secret="forger"), "signature: mismatch", "198.51.100.1", time.time())
        out, err, code = await self.ymds("reverify", "--json")
        self.assertEqual(code, 3, err)
        self.assertEqual(json.loads(out)["still_quarantined"], 1)
        self.assertIn("stay in quarantine", err)


class DeadLetters(CLITestCase):

    async def make_dead_letters(self, n: int):
        from ymds.config import load_config
        from ymds.queue.client import RedisJobQueue
        from ymds.queue.errors import PermanentJobError
        from ymds.queue.registry import TaskRegistry
        from ymds.queue.worker import Worker
        config = load_config(path=self.config_path, env={})
        registry = TaskRegistry()

        async def broken(args):
            raise PermanentJobError(f"cannot do {args['n']}")

        registry.register("broken", broken)
        died = []
        all_dead = defer.Deferred()

        def on_dead(queue, info):
            died.append(info)
            if len(died) == n and not all_dead.called:
                all_dead.callback(None)

        worker = Worker(reactor, config.redis, config.queue, "billing", registry, on_dead=on_dead, block=0.2)
        worker.startService()
        queue = RedisJobQueue(reactor, config.redis)
        for i in range(n):
            await queue.enqueue("billing", "broken", {"n": i})
        await all_dead.addTimeout(30, reactor)
        await worker.stopService()
        await defer.Deferred.fromCoroutine(queue.close())

    def xlen(self, key: str) -> int:
        return int(self.redis.command("XLEN", key))

    async def test_list_and_replay(self):
        await self.make_dead_letters(3)
        out, err, code = await self.ymds("dead-letters")
        self.assertEqual(code, 3, err)
        self.assertIn("billing: 3 dead letters", out)
        self.assertIn("cannot do", out)
        out, err, code = await self.ymds("dead-letters", "--queue", "billing", "--json")
        letters = json.loads(out)
        self.assertEqual(sorted(d["args"]["n"] for d in letters), [0, 1, 2])
        self.assertEqual({d["task"] for d in letters}, {"broken"})

        stream = f"{self.prefix}:q:billing"
        before = self.xlen(stream)
        out, err, code = await self.ymds("replay", letters[0]["id"])
        self.assertEqual(code, 0, err)
        self.assertIn("replayed 1 job", out)
        self.assertEqual(self.xlen(stream), before + 1)
        self.assertEqual(self.xlen(stream + ":dead"), 2)
        out, err, code = await self.ymds("replay", letters[0]["id"])
        self.assertEqual(code, 3)
        self.assertIn("no dead letter", err)
        out, err, code = await self.ymds("replay", "--queue", "billing", "--all")
        self.assertEqual(code, 0, err)
        self.assertIn("replayed 2 jobs", out)
        self.assertEqual(self.xlen(stream + ":dead"), 0)
        out, err, code = await self.ymds("dead-letters")
        self.assertEqual(code, 0)
        self.assertIn("billing: 0 dead letters, bot: 0 dead letters", out)

    async def test_replay_bad_id(self):
        out, err, code = await self.ymds("replay", "--queue", "bot", "not-an-id")
        self.assertEqual(code, 1)
        self.assertIn("not a stream entry id", err)


class Links(CLITestCase):

    async def test_link_is_signed_and_reused(self):
        out, err, code = await self.ymds("link", "--plan", "month", "--chat", "-1001234")
        self.assertEqual(code, 0, err)
        url = out.strip()
        self.assertTrue(url.startswith("https://pay.example.org/pay/"), url)
        label = verify_token(LINK_SECRET.encode(), url.rsplit("/", 1)[1], time.time())
        ledger = await self.ledger()
        invoice = await ledger.invoices.get_invoice(label)
        self.assertEqual((invoice.plan, invoice.chat_id, invoice.amount, invoice.status),
                         ("month", -1001234, Decimal("199.00"), "open"))
        out2, err, code = await self.ymds("link", "--plan", "month", "--chat", "-1001234", "--json")
        self.assertEqual(json.loads(out2)["label"], label)  # the open invoice is reused

    async def test_link_via_a_running_billing_worker(self):
        from ymds.billing.service import make_billing_service
        from ymds.config import load_config
        from ymds.queue.client import RedisJobQueue
        out, err, code = await self.ymds("link", "--plan", "month", "--chat", "31337", "--via-queue", "--timeout", "1")
        self.assertEqual(code, 2, err)  # no billing worker yet
        self.assertIn("no billing worker answered", err)

        config = load_config(path=self.config_path, env={})
        queue = RedisJobQueue(reactor, config.redis)
        queue.startService()
        self.addCleanup(queue.stopService)
        ledger = await self.ledger()
        billing = make_billing_service(reactor, config, queue, ledger)
        billing.startService()
        self.addCleanup(billing.stopService)
        # the configured ledger URL is never opened by the command: give it one that cannot work
        out, err, code = await self.ymds("--set", "ledger.url=sqlite:///no/such/dir/x.sqlite3",
                                         "link", "--plan", "month", "--chat", "31337", "--via-queue", "--json")
        self.assertEqual(code, 0, err)
        answer = json.loads(out)
        label = verify_token(LINK_SECRET.encode(), answer["url"].rsplit("/", 1)[1], time.time())
        self.assertEqual(answer["label"], label)
        self.assertEqual(answer["amount"], "199.00")
        self.assertEqual((await ledger.invoices.get_invoice(label)).chat_id, 31337)

    async def test_link_needs_link_secret(self):
        with open(self.config_path) as f:
            text = f.read().replace(f'secret = "{LINK_SECRET}"', 'secret = "short"')
        with open(self.config_path, "w") as f:
            f.write(text)
        out, err, code = await self.ymds("link", "--plan", "month", "--chat", "1")
        self.assertEqual(code, 1)
        self.assertIn("links.secret", err)


class TestNotification(CLITestCase):
    """Against the real web role (make_site) with a real RedisJobQueue, in this process."""

    async def start_web(self):
        from ymds.config import load_config
        from ymds.metrics import Registry
        from ymds.queue.client import RedisJobQueue
        from ymds.web.site import make_site
        config = load_config(path=self.config_path, env={})
        queue = RedisJobQueue(reactor, config.redis)
        queue.startService()
        self.addCleanup(queue.stopService)
        self.metrics = Registry()
        site = make_site(reactor, config, queue, self.metrics, {})
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return f"http://127.0.0.1:{port.getHost().port}/yoomoney/notify"

    def decisions(self, result):
        return self.metrics.counter("ymds_web_notifications", "", ("result",)).value(result=result)

    async def test_accepted_and_refused(self):
        url = await self.start_web()
        out, err, code = await self.ymds("test-notification", "--url", url)
        self.assertEqual(code, 0, out + err)
        self.assertIn("HTTP 200", out)
        self.assertEqual(self.decisions("test"), 1)

        out, err, code = await self.ymds("--set", "yoomoney.notification_secret=some-other-secret",
                                         "test-notification", "--url", url)
        self.assertEqual(code, 3, out + err)
        self.assertIn("HTTP 403", out)
        self.assertIn("notification_secret", err)
        self.assertEqual(self.decisions("forged"), 1)

    async def test_unreachable_url(self):
        out, err, code = await self.ymds("test-notification", "--url", f"http://127.0.0.1:{free_port()}/yoomoney/notify",
                                         "--timeout", "5")
        self.assertEqual(code, 2, err)
        self.assertIn("cannot reach", err)


class Reconcile(CLITestCase):
    """Payments whose notifications never arrived, found in the sandbox's operation history."""

    def start_sandbox(self):
        """The sandbox wallet's API on loopback; its notifications go nowhere (all three fail)."""
        from ymds.config import load_config
        from ymds.sandbox.resource import SandboxResource
        from twisted.web.resource import Resource
        from twisted.web.server import Site
        api_port = free_port()
        with open(self.config_path) as f:
            text = f.read().replace("[yoomoney]\n", f'[yoomoney]\napi_token = "{API_TOKEN}"\n'
                                    f'api_url = "http://127.0.0.1:{api_port}/sandbox"\n')
        with open(self.config_path, "w") as f:
            f.write(text)
        config = load_config(path=self.config_path, env={})
        sandbox = SandboxResource(reactor, config, notify_url=f"http://127.0.0.1:{free_port()}/yoomoney/notify")
        self.addCleanup(lambda: defer.Deferred.fromCoroutine(sandbox.stop()))
        root = Resource()
        root.putChild(b"sandbox", sandbox)
        port = reactor.listenTCP(api_port, Site(root), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return sandbox.sandbox

    async def test_reverify_credits_what_the_api_confirms(self):
        """A real payment whose signature we could not verify (the scheme changed under us):
        operation-details confirms it, so reverify credits it; a forgery stays."""
        from ymds.sandbox.resource import QuickpayForm
        from ymds.yoomoney.notification import encode_form
        sandbox = self.start_sandbox()
        ledger = await self.ledger()
        invoice = await ledger.invoices.create_invoice("subscription", Decimal("199.00"), time.time(), 86400, plan="month",
                                              days=30, chat_id=555)
        operation, _ = await sandbox.pay(QuickpayForm(WALLET, "AC", Decimal("199.00"), invoice.label, ""))
        genuine = dict(operation.fields, sign="0" * 64, sha1_hash="0" * 40)  # as if signed some new way
        forged = dict(genuine, operation_id="999999999999", sign="1" * 64)
        for fields in (genuine, forged):
            await ledger.quarantine.quarantine_add(encode_form(fields).decode(), "signature: mismatch", "203.0.113.9", time.time())
        out, err, code = await self.ymds("reverify", "--json")
        self.assertEqual(code, 3, out + err)  # the forgery stays
        counts = json.loads(out)
        self.assertEqual((counts["api_confirmed"], counts["still_quarantined"]), (1, 1))
        self.assertEqual((await ledger.invoices.get_invoice(invoice.label)).status, "paid")
        left = await ledger.quarantine.quarantine_list()
        self.assertEqual([q.body for q in left], [encode_form(forged).decode()])

    async def test_reconcile_applies_missing_payments(self):
        from ymds.sandbox.resource import QuickpayForm
        sandbox = SimpleNamespace(sandbox=self.start_sandbox())
        ledger = await self.ledger()
        invoice = await ledger.invoices.create_invoice("subscription", Decimal("199.00"), time.time(), 86400, plan="month",
                                              days=30, chat_id=777)
        await sandbox.sandbox.pay(QuickpayForm(WALLET, "AC", Decimal("199.00"), invoice.label, ""))
        await sandbox.sandbox.pay(QuickpayForm(WALLET, "PC", Decimal("50.00"), new_label(), ""))

        out, err, code = await self.ymds("reconcile", "--since", "1d", "--progress-every", "1")
        self.assertEqual(code, 0, out + err)
        self.assertIn("seen 2 incoming operations", out)
        self.assertIn("2 applied now", out)
        self.assertIn("reconcile: 2 operations", err)
        self.assertEqual((await ledger.invoices.get_invoice(invoice.label)).status, "paid")

        out, err, code = await self.ymds("reconcile", "--since", "1d")
        self.assertEqual(code, 0, out + err)
        self.assertIn("2 already in the ledger, 0 applied now", out)

    async def test_reconcile_needs_a_token(self):
        out, err, code = await self.ymds("reconcile", "--since", "1d")
        self.assertEqual(code, 1)
        self.assertIn("yoomoney.api_token is not set", err)


class ExampleConfig(unittest.TestCase):
    """contrib/ymds.example.toml documents every key of docs/CONFIGURATION.md and loads."""

    def test_every_documented_key_is_in_the_example(self):
        import re
        with open(os.path.join(REPO, "docs", "CONFIGURATION.md")) as f:
            doc = f.read()
        with open(os.path.join(REPO, "contrib", "ymds.example.toml")) as f:
            example = f.read()
        section = None
        documented = []
        for line in doc.splitlines():
            heading = re.match(r"^## (\[\w+\]|\[\[\w+\]\])$", line)  # [section] or [[plans]]
            if heading:
                section = heading.group(1)
            row = re.match(r"^\| `(\w+)`(?: / `(\w+)`)?", line)
            if row and section:
                documented += [(section, k) for k in row.groups() if k]
        self.assertGreater(len(documented), 30)
        for section, key in documented:
            if key == "_file":
                continue
            body = example.split(f"\n{section}\n", 1)[1].split("\n[", 1)[0]
            self.assertRegex(body, rf"(?m)^#? ?{key}(_file)? =", f"{section}.{key} is missing from the example")

    def test_example_loads(self):
        from ymds.config import load_config
        import tomllib
        with open(os.path.join(REPO, "contrib", "ymds.example.toml"), "rb") as f:
            doc = tomllib.load(f)
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        for section, key in (("yoomoney", "notification_secret_file"), ("links", "secret_file"),
                             ("telegram", "token_file")):
            path = os.path.join(directory, key)
            with open(path, "w") as f:
                f.write("123456:" + "A" * 35 if section == "telegram" else "x" * 32)
            doc[section][key] = path
        config = load_config(raw=doc, env={})
        self.assertEqual([p.id for p in config.plans], ["month", "year"])
        self.assertEqual(config.server.endpoint, "tls:/etc/ymds/tls:port=443")


def walk_parsers(parser, path=("ymds",)):
    """(path, parser) for the parser and every subparser under it, depth first.

    argparse has no public way to list a parser's actions: ``_actions`` and the subparsers
    action's ``choices`` are what its own help formatter reads."""
    import argparse
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from walk_parsers(child, path + (name,))


class Parser(unittest.TestCase):
    """The command line itself, in process: no Redis, no ledger."""

    def parser(self):
        from ymds.cli import registry
        from ymds.cli.parser import build_parser
        return build_parser(registry.commands())

    def parse(self, *argv):
        from ymds.cli.parser import parse_arguments
        return parse_arguments(self.parser(), list(argv))

    def test_every_subcommand_and_option_has_help(self):
        import argparse
        seen = []
        for path, parser in walk_parsers(self.parser()):
            for action in parser._actions:
                seen.append((path, action.dest))
                self.assertTrue(action.help and action.help != argparse.SUPPRESS, (path, action.option_strings,
                                                                                   action.dest))
                if isinstance(action, argparse._SubParsersAction):
                    helped = {choice.dest for choice in action._choices_actions}
                    self.assertEqual(helped, set(action.choices), path)  # every subcommand listed with a help line
        paths = {path for path, _ in seen}
        for expected in [("ymds", "payments"), ("ymds", "webhook", "redeliver"), ("ymds", "api-key", "create"),
                         ("ymds", "check")]:
            self.assertIn(expected, paths)

    def test_config_before_or_after_the_command(self):
        self.assertEqual(self.parse("-c", "a.toml", "payments").config, "a.toml")
        self.assertEqual(self.parse("payments", "-c", "b.toml").config, "b.toml")
        self.assertEqual(self.parse("--config", "a.toml", "webhook", "list", "--config", "c.toml").config, "c.toml")
        self.assertEqual(self.parse("api-key", "create", "--scopes", "all", "--config", "d.toml").config, "d.toml")
        self.assertIsNone(self.parse("payments").config)
        self.assertEqual(self.parse("-c", "a.toml", "stats", "--json").config, "a.toml")  # not reset by the command

    def test_set_before_and_after_the_command_add_up(self):
        args = self.parse("--set", "redis.prefix=a", "payments", "--set", "links.ttl=1h", "--set", "redis.prefix=b")
        self.assertEqual(args.set, ["redis.prefix=a", "links.ttl=1h", "redis.prefix=b"])
        from ymds.cli.common_options import parse_overrides
        self.assertEqual(parse_overrides(args.set), {"redis.prefix": "b", "links.ttl": "1h"})
        self.assertEqual(self.parse("stats").set, [])
        self.assertTrue(self.parse("stats", "-v").verbose)
        self.assertFalse(self.parse("stats").verbose)

    def test_registry_names_each_command_once(self):
        from ymds.cli import registry
        commands = registry.commands()
        self.assertEqual(set(commands), {"payments", "export", "quarantine", "reverify", "dead-letters", "replay",
                                         "reconcile", "link", "test-notification", "stats", "check", "api-key",
                                         "webhook", "overlay-url", "overlay", "promo", "codes",
                                         "subscribers", "broadcast", "members", "admin-link"})
        subcommands = {path[1] for path, _ in walk_parsers(self.parser()) if len(path) == 2}
        self.assertEqual(subcommands, set(commands))
        self.patch(registry, "GROUPS", registry.GROUPS + (registry.GROUPS[0],))
        self.assertRaises(RuntimeError, registry.commands)

    def test_twistd_and_ymds_share_config_roles_and_set(self):
        from ymds.cli import common_options
        from ymds.tap import Options
        options = Options()
        cli_help = {action.dest: action.help for action in self.parser()._actions}
        [check] = [p for path, p in walk_parsers(self.parser()) if path == ("ymds", "check")]
        cli_help.update({action.dest: action.help for action in check._actions if action.dest == "roles"})
        for option in (common_options.CONFIG, common_options.ROLES_OPTION, common_options.SET):
            self.assertEqual(cli_help[option.name], option.help)
            self.assertEqual(options.docs[option.name], option.help)
        options.parseOptions(["-c", "x.toml", "--roles", "web,bot", "--set", "redis.prefix=p", "--set", "a.b=c=d"])
        self.assertEqual((options["config"], options["roles"], options["set"]),
                         ("x.toml", {"web", "bot"}, {"redis.prefix": "p", "a.b": "c=d"}))
        from twisted.python.usage import UsageError
        for argv, message in ((["--roles", "web,cashier"], "--roles takes any of web,billing,bot"),
                              (["--set", "novalue"], "--set takes section.key=value")):
            with self.assertRaises(UsageError) as caught:
                Options().parseOptions(argv)
            self.assertIn(message, str(caught.exception))
        self.assertEqual(common_options.parse_roles(" web , billing "), {"web", "billing"})
        self.assertRaises(ValueError, common_options.parse_roles, ",")
        self.assertRaises(ValueError, common_options.parse_override, "nodot=1")


    def test_console_script_is_main(self):
        import configparser
        import importlib
        import ymds.cli
        setup = configparser.ConfigParser()
        setup.read(os.path.join(REPO, "setup.cfg"))
        scripts = dict(line.replace(" ", "").split("=", 1)
                       for line in setup["options.entry_points"]["console_scripts"].strip().splitlines())
        module, _, function = scripts["ymds"].partition(":")
        self.assertIs(getattr(importlib.import_module(module), function), ymds.cli.main)


class InProcess(unittest.TestCase):
    """``run(reactor, argv, ...)``: the whole command on a given reactor, without a subprocess."""

    def setUp(self):
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.config_path = os.path.join(self.dir, "ymds.toml")
        with open(self.config_path, "w") as f:
            f.write(f'[server]\npublic_url = "https://pay.example.org"\n[yoomoney]\nwallet = "{WALLET}"\n'
                    f'[ledger]\nurl = "sqlite:///ledger.sqlite3"\n')

    async def run_ymds(self, *argv, env=None):
        from ymds.cli import run
        out, err = io.StringIO(), io.StringIO()
        status = await run(reactor, list(argv), env={} if env is None else env, out=out, err=err)
        return out.getvalue(), err.getvalue(), status

    async def test_config_after_the_command(self):
        out, err, status = await self.run_ymds("payments", "-c", self.config_path)
        self.assertEqual((status, err), (0, ""))
        self.assertIn("0 payments", out)
        self.assertTrue(os.path.exists(os.path.join(self.dir, "ledger.sqlite3")))

    async def test_config_from_the_environment(self):
        out, err, status = await self.run_ymds("payments", "--json", env={"YMDS_CONFIG": self.config_path})
        self.assertEqual((status, json.loads(out)), (0, []))

    async def test_errors_are_one_line_and_a_status(self):
        out, err, status = await self.run_ymds("stats")
        self.assertEqual(status, 1)
        self.assertEqual(err.splitlines(), ["ymds: no configuration: give --config /etc/ymds/ymds.toml or set "
                                            "YMDS_CONFIG (looked at $YMDS_CONFIG, /etc/ymds/ymds.toml, ./ymds.toml; "
                                            "an example: contrib/ymds.example.toml)"])
        out, err, status = await self.run_ymds("payments", "-c", self.config_path, "--set",
                                               "ledger.url=sqlite:///no/such/dir/x.sqlite3")
        self.assertEqual(status, 2, err)
        self.assertIn("ledger unreachable", err)

    async def test_unknown_command_is_status_1(self):
        self.patch(sys, "stderr", io.StringIO())
        out, err, status = await self.run_ymds("bogus")
        self.assertEqual(status, 1)
        self.assertIn("invalid choice: 'bogus'", sys.stderr.getvalue())


    async def test_a_new_command_group_is_one_registry_entry_and_a_bug_is_status_4(self):
        from ymds.cli import registry
        from ymds.cli.command import Command

        async def divide(ctx):
            ctx.say(f"config {os.path.basename(ctx.args.config)}")
            return 1 // ctx.args.by

        def arguments(p):
            p.add_argument("--by", type=int, default=1, help="the divisor")

        group = SimpleNamespace(COMMANDS=(Command("divide", "divide one by --by", arguments, divide),))
        self.patch(registry, "GROUPS", registry.GROUPS + (group,))
        out, err, status = await self.run_ymds("divide", "-c", self.config_path, "--by", "1")
        self.assertEqual((out, err, status), ("config ymds.toml\n", "", 1))
        out, err, status = await self.run_ymds("divide", "-c", self.config_path, "--by", "0")
        self.assertEqual(status, 4)
        self.assertTrue(err.startswith("ymds: internal error (please report it):\nTraceback"), err)
        self.assertIn("ZeroDivisionError", err)


class Version(CLITestCase):

    async def test_version_is_the_package_version(self):
        from ymds import __version__
        out, err, code = await self.ymds("--version", config=False)
        self.assertEqual((out, err, code), (f"ymds {__version__}\n", "", 0))
