"""The typed role boundary: job dataclasses (one check, stable wire form), typed remote
errors, the rolling-upgrade contract over a real Redis (old raw jobs and old raw callers
still work with the new handlers), and task names living only in the jobs modules."""

from __future__ import annotations

import ast
import pathlib
import tempfile
from decimal import Decimal

from twisted.trial import unittest

from tests.test_billing_service import BillingStackCase
from tests.test_billing_tasks import note
from ymds.billing import access_jobs
from ymds.billing import jobs as billing_jobs
from ymds.billing import overlay_jobs
from ymds.billing import admin_jobs
from ymds.billing import selling_jobs
from ymds.billing.jobs import (
    ApplyPayment, BillingClient, ChatQuery, CreateDonation, CreateInvoice, CreateInvoices, IdempotencyKey,
    IdempotencyKeyReused, InvoiceOffers, ListPayments, Quarantine, WebhookDeliver,
)
from ymds.bot import jobs as bot_jobs
from ymds.bot.access import jobs as bot_access_jobs
from ymds.billing import subscribers_jobs
from ymds.bot.jobs import GrantAccess, Notify, NotifyAdmins, RevokeAccess, SendMessage
from ymds.queue.errors import InvalidTaskArgs, PermanentJobError, RemoteJobError, remote_failure

T0 = 1_780_000_000.0
YMDS = pathlib.Path(__file__).resolve().parent.parent / "ymds"


class JobDataclassTests(unittest.TestCase):
    def test_wire_round_trip(self):
        """to_wire then from_wire gives the same job: what a new producer writes, a new worker reads."""
        jobs = [
            CreateInvoices(42, 42), CreateInvoices(42), CreateDonation(Decimal("10.50"), "Ann", "hi"),
            CreateInvoice(plan="month", chat_id=5, description="d", metadata={"o": 1}, ttl=3600,
                          idempotency=IdempotencyKey("k1", "order-1", "ab" * 32)),
            CreateInvoice(amount=Decimal("12.34")), ApplyPayment({"operation_id": "1"}, "reconcile"),
            Quarantine("a=1", "sha1_mismatch", "203.0.113.9"), ChatQuery(7), WebhookDeliver("we_1"),
            ListPayments(since=1.0, status="paid", chat_id=3, cursor=9, limit=50),
            Notify(1, "payment_confirmed", {"amount": Decimal("1.00")}, "notify:op"),
            NotifyAdmins("donation", {"name": "x"}, "admins:op"), GrantAccess(1, "2026-01-01T00:00:00+00:00", "g"),
            RevokeAccess(1, "r"), SendMessage(1, "<b>hi</b>", [[{"text": "a", "url": "https://x"}]], "s"),
        ]
        for job in jobs:
            self.assertEqual(type(job).from_wire(job.to_wire()), job, msg=repr(job))

    def test_old_wire_form_is_kept(self):
        """The keys in Redis are those older producers and workers use (rolling upgrade)."""
        self.assertEqual(Notify(42, "payment_confirmed", {"a": 1}, "notify:op1").to_wire(),
                         {"chat_id": 42, "message": "payment_confirmed", "params": {"a": 1}, "key": "notify:op1"})
        self.assertEqual(GrantAccess(42, "2026-06-27T20:26:40+00:00", "grant:op1").to_wire(),
                         {"chat_id": 42, "ends_at": "2026-06-27T20:26:40+00:00", "key": "grant:op1"})
        self.assertEqual(RevokeAccess(42, "revoke:42:1").to_wire(), {"chat_id": 42, "key": "revoke:42:1"})
        self.assertEqual(ApplyPayment({"x": "1"}).to_wire(), {"fields": {"x": "1"}, "source": "notification"})
        self.assertEqual(CreateInvoices(42, None).to_wire(), {"chat_id": 42, "user_id": None})
        self.assertEqual(Quarantine("b", "r", "1.2.3.4").to_wire(), {"body": "b", "reason": "r", "remote": "1.2.3.4"})

    def test_from_wire_refuses_bad_arguments(self):
        bad = [
            (CreateInvoices, ["x"]), (CreateInvoices, {"chat_id": True}), (CreateInvoices, {"chat_id": 2**70}),
            (CreateDonation, {"amount": "1.001"}), (CreateDonation, {"amount": Decimal("NaN")}),
            (CreateDonation, {"amount": "5", "name": "x" * 101}),
            (CreateInvoice, {"plan": "month"}), (CreateInvoice, {"amount": "0.00"}),
            (CreateInvoice, {"amount": "5", "ttl": 10}), (CreateInvoice, {"amount": "5", "idempotency": {"key": "k"}}),
            (ApplyPayment, {"fields": {}, "source": "telepathy"}), (Quarantine, {"body": 5}),
            (ChatQuery, {"chat_id": "42"}), (WebhookDeliver, {"endpoint_id": ""}), (ListPayments, {"limit": 501}),
            (ListPayments, {"status": "stolen"}), (Notify, {"chat_id": 1, "message": "spam"}),
            (Notify, {"chat_id": 1, "message": "invite", "params": {"link": "http://x"}}),
            (Notify, {"chat_id": 1, "message": "reminder", "params": []}),
            (NotifyAdmins, {"message": "hello"}), (GrantAccess, {"chat_id": None}),
            (SendMessage, {"chat_id": 1, "text": " "}), (SendMessage, {"chat_id": 1, "text": "x", "buttons": {}}),
        ]
        for cls, args in bad:
            with self.assertRaises(InvalidTaskArgs, msg=f"{cls.__name__} {args!r}"):
                cls.from_wire(args)
        self.assertTrue(issubclass(InvalidTaskArgs, PermanentJobError))  # dead-lettered at once, not retried

    def test_remote_errors_are_typed(self):
        error = remote_failure("create_donation", "InvalidTaskArgs", "amount must be between 10 and 5000")
        self.assertIsInstance(error, InvalidTaskArgs)
        self.assertIsInstance(error, RemoteJobError)
        self.assertEqual((error.task, error.error_type, error.message),
                         ("create_donation", "InvalidTaskArgs", "amount must be between 10 and 5000"))
        self.assertIsInstance(remote_failure("create_invoice", "IdempotencyKeyReused", "x"), IdempotencyKeyReused)
        other = remote_failure("stats", "KeyError", "'x'")
        self.assertIs(type(other), RemoteJobError)
        self.assertNotIsInstance(other, InvalidTaskArgs)


TASK_NAMES = {value for module in (billing_jobs, bot_jobs, access_jobs, bot_access_jobs, overlay_jobs, subscribers_jobs, admin_jobs, selling_jobs) for name, value in vars(module).items()
              if name.isupper() and isinstance(value, str) and name not in ("QUEUE",)
              and value.isidentifier() and value.islower()}
# Task names that are also ordinary words ("quarantine", "stats", "send", ...) are flagged
# only where they are used as a task: an argument of enqueue/call/register/lookup or a
# comparison.  Compound names ("apply_payment") are flagged wherever they appear.
SAME_WORD = {
    "ymds/api/resource.py": {"create_invoice", "list_payments"},  # the API's route handler methods
    "ymds/observability.py": {"apply_payment"},  # the ledger's method of that name
    "ymds/bot/handlers.py": {"stats"},  # the /stats command
}
HOMES = {"ymds/billing/jobs.py", "ymds/bot/jobs.py", "ymds/billing/access_jobs.py", "ymds/bot/access/jobs.py", "ymds/billing/overlay_jobs.py",
         "ymds/billing/subscribers_jobs.py", "ymds/billing/admin_jobs.py",
         "ymds/billing/selling_jobs.py"}
QUEUE_METHODS = {"enqueue", "call", "register", "lookup"}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _task_uses(tree: ast.AST) -> set[int]:
    """ids of string constants used as a task: queue-method arguments and comparison operands."""
    uses = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in QUEUE_METHODS:
            uses.update(id(a) for a in node.args)
        elif isinstance(node, ast.Compare):
            uses.update(id(o) for o in [node.left, *node.comparators])
    return uses


def task_name_strings(path: pathlib.Path, rel: str) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings, uses = _docstrings(tree), _task_uses(tree)
    allowed = SAME_WORD.get(rel, set())
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in docstrings:
            continue
        name = node.value
        if name in TASK_NAMES and name not in allowed and ("_" in name or id(node) in uses):
            found.append(f"{rel}:{node.lineno}: {name!r}")
    return found


class TaskNameTests(unittest.TestCase):
    def test_task_names_live_in_the_jobs_modules(self):
        """`grep '"apply_payment"' ymds` finds only the client modules (docstrings aside)."""
        self.assertIn("apply_payment", TASK_NAMES)
        self.assertIn("notify", TASK_NAMES)
        found = []
        for path in sorted(YMDS.rglob("*.py")):
            rel = str(path.relative_to(YMDS.parent))
            if rel not in HOMES:
                found += task_name_strings(path, rel)
        self.assertEqual(found, [], "use the constants and clients of ymds/billing/jobs.py and ymds/bot/jobs.py")

    def test_the_check_sees_a_raw_task_name(self):
        """The check above is not vacuous: a raw enqueue is reported."""
        directory = pathlib.Path(tempfile.mkdtemp(prefix="ymds-names-"))
        sample = directory / "sample.py"
        sample.write_text('def f(q):\n    return q.enqueue("bot", "notify", {})\n', encoding="utf-8")
        self.assertEqual(task_name_strings(sample, "sample.py"), ["sample.py:2: 'notify'"])


class RollingUpgradeTests(BillingStackCase):
    """A real Redis and the real billing worker; the bot queue is recorded."""

    bot_tasks = (bot_jobs.NOTIFY, bot_jobs.NOTIFY_ADMINS, bot_jobs.GRANT_ACCESS)
    config_sections = {"donations": {"min": "10.00", "max": "5000.00"}}

    def setUp(self):
        started = super().setUp()
        self.billing = BillingClient(self.queue, timeout=10.0)
        return started

    async def test_old_raw_job_is_handled_by_the_new_worker(self):
        """A job enqueued by an old web node (raw task name and dict) is applied, and the bot
        jobs it causes carry the keys an old bot worker reads."""
        offers = await self.billing.create_invoices(42, 42)
        label = offers.invoices[0].label
        job = await self.queue.enqueue("billing", "apply_payment",
                                       {"fields": note("op-old", label), "source": "notification"}, key="op:old")
        self.assertIsNotNone(job)
        await self.bot.wait_for(2)
        self.assertEqual((await self.ledger.payments.get_payment("op-old")).status, "paid")
        by_task = dict(self.bot.jobs)
        self.assertEqual(set(by_task), {"notify", "grant_access"})
        self.assertEqual(set(by_task["notify"]), {"chat_id", "message", "params", "key"})
        self.assertEqual((by_task["notify"]["chat_id"], by_task["notify"]["message"], by_task["notify"]["key"]),
                         (42, "payment_confirmed", "notify:op-old"))
        self.assertEqual(by_task["grant_access"], {"chat_id": 42, "ends_at": "2026-06-27T20:26:40+00:00",
                                                   "key": "grant:op-old"})

    async def test_new_handler_answers_an_old_raw_caller(self):
        """An old bot or web node calls with the raw name and reads a plain dict."""
        raw = await self.queue.call("billing", "create_invoices", {"chat_id": 42, "user_id": 42})
        [offer] = raw["invoices"]
        self.assertEqual(set(offer), {"plan", "title", "amount", "label", "url", "expires_at"})
        self.assertEqual(offer["amount"], Decimal("199.00"))
        typed = await self.billing.create_invoices(42, 42)
        self.assertIsInstance(typed, InvoiceOffers)
        self.assertEqual(typed.invoices[0].label, offer["label"])  # the same open invoice
        status = await self.queue.call("billing", "invoice_status", {"label": offer["label"]})
        self.assertEqual((status["status"], status["amount"]), ("open", Decimal("199.00")))
        self.assertIsNone(await self.billing.subscription_status(42))

    async def test_refusals_arrive_as_typed_exceptions(self):
        with self.assertRaises(InvalidTaskArgs) as caught:
            await self.billing.create_donation(Decimal("1.00"))
        self.assertIsInstance(caught.exception, RemoteJobError)
        self.assertIn("between 10.00 and 5000.00", caught.exception.message)
        with self.assertRaises(InvalidTaskArgs):  # refused by from_wire in the worker
            await self.queue.call("billing", "stats", ["not", "an", "object"])
        await self.ledger.api_keys.api_key_create("key1", "ab" * 32, "shop", ["invoices:write"], T0)
        first = CreateInvoice(amount=Decimal("50.00"), idempotency=IdempotencyKey("key1", "order-1", "1" * 64))
        created = await self.billing.create_invoice(first)
        again = await self.billing.create_invoice(first)
        self.assertEqual((again.label, again.replayed, created.replayed), (created.label, True, False))
        reused = CreateInvoice(amount=Decimal("60.00"), idempotency=IdempotencyKey("key1", "order-1", "2" * 64))
        with self.assertRaises(IdempotencyKeyReused):
            await self.billing.create_invoice(reused)
