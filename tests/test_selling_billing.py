"""Billing's selling tasks over the wire (issue 19): a gift's payment makes one code and
tells the payer (and the owner, with sale_alerts), a redelivered payment job makes no second
code; an expired unpaid discounted invoice's use comes back through the timer's sweep."""
from __future__ import annotations

from decimal import Decimal

from tests.support.queues import run_task
from tests.test_billing_tasks import DAY, TasksTestBase, note
from ymds.billing.timers import BillingTimers


class GiftTests(TasksTestBase):
    config_sections = {"telegram": {"sale_alerts": True}}

    async def test_a_paid_gift_makes_one_code_for_the_payer(self):
        offers = await run_task(self.tasks, "gift_invoices", {"chat_id": 42})
        month = offers["invoices"][0]
        self.assertEqual((month["plan"], month["amount"]), ("month", Decimal("199.00")))
        result = await run_task(self.tasks, "apply_payment", {"fields": note("gift-1", month["label"]),
                                                              "source": "notification"})
        self.assertEqual(result["payment_status"], "paid")
        notes = [j for j in self.queue.jobs if j[1] == "notify"]
        [gift] = [args for _, _, args, _ in notes if args["message"] == "gift_code"]
        self.assertEqual((gift["chat_id"], gift["params"]["plan"], gift["params"]["days"]), (42, "month", 30))
        sales = [args for _, task, args, _ in self.queue.jobs if task == "notify_admins" and args["message"] == "sale"]
        self.assertEqual(len(sales), 1)
        self.assertIsNone(await self.ledger.subscriptions.subscription(42))  # the payer got a code, not access
        # the same payment job again (redelivery before it was marked notified) makes no second code
        await self.ledger.db.run(lambda txn: txn.execute("UPDATE payments SET notified = 0"))
        again = await run_task(self.tasks, "apply_payment", {"fields": note("gift-1", month["label"]),
                                                             "source": "notification"})
        self.assertEqual(again["outcome"], "duplicate")
        code = await self.ledger.codes.get(gift["params"]["code"])
        self.assertEqual((code.plan, code.days, code.uses, code.used), ("month", 30, 1, 0))
        redeemed = await run_task(self.tasks, "redeem_code", {"chat_id": 77, "code": code.code})
        self.assertEqual((redeemed["ok"], redeemed["plan"]), (True, "month"))


class PromoSweepTests(TasksTestBase):
    async def test_the_timer_gives_back_an_expired_unpaid_discounted_invoices_use(self):
        answer = await run_task(self.tasks, "promo_add", {"code": "ONCE", "percent": 10, "uses": 1})
        self.assertTrue(answer["ok"])
        self.assertTrue((await run_task(self.tasks, "apply_promo", {"chat_id": 5, "code": "once"}))["ok"])
        first = await run_task(self.tasks, "create_invoices", {"chat_id": 5, "user_id": 5})
        self.assertEqual(first["invoices"][0]["amount"], Decimal("179.10"))
        self.assertEqual((await run_task(self.tasks, "apply_promo", {"chat_id": 6, "code": "ONCE"}))["refusal"],
                         "used_up")
        timers = BillingTimers(self.config, self.ledger, self.queue, self.clock, self.tasks)
        self.clock.advance(3 * DAY + 1)  # links.ttl = 3d: the invoice expires unpaid
        report = await timers.tick()
        self.assertEqual(report["promo_released"], 1)
        self.assertTrue((await run_task(self.tasks, "apply_promo", {"chat_id": 6, "code": "ONCE"}))["ok"])
