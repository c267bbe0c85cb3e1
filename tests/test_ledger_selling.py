"""The selling stores (issue 19: trials, promo codes, gift and access codes) on SQLite and
PostgreSQL, with their limits under concurrency: many calls at once in one process, and two
OS processes racing for the same unique rows."""

from __future__ import annotations

from decimal import Decimal

from twisted.internet import defer
from twisted.trial import unittest

from tests.support.ledgers import LedgerTestMixin, PostgresLedgerMixin, SQLiteLedgerMixin, race_two_processes
from tests.test_ledger import fields
from ymds.billing.stores.trials import SellingRefused

DAY = 86400.0
T0 = 1_780_000_000.0
TTL = 3 * DAY
PRICE = Decimal("199.00")


async def refused(d) -> str:
    """The reason of the SellingRefused ``d`` fails with (fails the test if it succeeds)."""
    try:
        await d
    except SellingRefused as e:
        return e.reason
    raise AssertionError("not refused")


class SellingContract(LedgerTestMixin):
    async def pay(self, invoice, op, amount=None):
        amount = amount or format(invoice.amount, "f")
        return await self.ledger.payments.apply_payment(fields(op, invoice.label, withdraw=amount), "notification",
                                                        T0 + 60)

    async def promo_code_of(self, operation_id):
        def q(txn):
            txn.execute(self.ledger.db.dialect.sql("SELECT promo_code FROM payments WHERE operation_id = ?"),
                        (operation_id,))
            return txn.fetchone()[0]
        return await self.ledger.db.run(q, write=False)

    # --- trials ----------------------------------------------------------------------------

    async def test_free_trial_once_per_user_and_plan(self):
        trials = self.ledger.trials
        self.assertTrue(await trials.eligible(7, 7, "month"))
        sub = await trials.start_free(7, 7, "month", 3, T0)
        self.assertEqual((sub.plan, sub.ends_at), ("month", T0 + 3 * DAY))
        self.assertFalse(await trials.eligible(7, 7, "month"))
        self.assertEqual(await refused(trials.start_free(7, 7, "month", 3, T0 + 10)), "already")
        self.assertEqual((await self.ledger.subscriptions.subscription(7)).ends_at, T0 + 3 * DAY)
        # another plan is another trial; it extends the same subscription like a payment would
        sub = await trials.start_free(7, 7, "year", 5, T0 + 10)
        self.assertEqual(sub.ends_at, T0 + 8 * DAY)
        kinds = [e.kind for e in await self.ledger.audit.events(chat_id=7)]
        self.assertEqual(kinds.count("trial_started"), 2)
        self.assertEqual(kinds.count("subscription_extended"), 2)

    async def test_a_trial_gets_the_same_reminders_and_expiry(self):
        await self.ledger.trials.start_free(11, 11, "month", 3, T0)
        due = await self.ledger.subscriptions.due_reminders(T0 + DAY, 3 * DAY)
        self.assertEqual([s.chat_id for s in due], [11])
        self.assertEqual(await self.ledger.subscriptions.mark_reminded([(11, T0 + 3 * DAY)], 3 * DAY), [11])
        ended = await self.ledger.subscriptions.expired_subscriptions(T0 + 3 * DAY)
        self.assertEqual([(s.chat_id, s.plan) for s in ended], [(11, "month")])

    async def test_no_trial_for_a_chat_that_had_the_plan(self):
        inv = await self.ledger.invoices.create_invoice("subscription", PRICE, T0, TTL, plan="month", days=30,
                                                        chat_id=8)
        await self.pay(inv, "had-1")
        self.assertFalse(await self.ledger.trials.eligible(8, 8, "month"))
        self.assertEqual(await refused(self.ledger.trials.start_free(8, 8, "month", 3, T0)), "already")
        self.assertIsNone(await self.ledger.trials.paid_trial_invoice(8, 8, "month", 3, Decimal("10"), T0, TTL))

    async def test_paid_trial_charges_the_trial_price_once_then_the_plan_price(self):
        trials = self.ledger.trials
        inv = await trials.paid_trial_invoice(9, 9, "month", 3, Decimal("10.00"), T0, TTL, "1 month")
        self.assertEqual((inv.amount, inv.days, inv.plan), (Decimal("10.00"), 3, "month"))
        again = await trials.paid_trial_invoice(9, 9, "month", 3, Decimal("10.00"), T0 + 60, TTL)
        self.assertEqual(again.label, inv.label)  # the same open invoice, not a second trial
        result = await self.pay(inv, "trial-1")
        self.assertEqual(result.outcome, "paid")
        self.assertEqual(result.subscription.ends_at, T0 + 60 + 3 * DAY)
        self.assertIsNone(await trials.paid_trial_invoice(9, 9, "month", 3, Decimal("10.00"), T0 + 120, TTL))
        self.assertFalse(await trials.eligible(9, 9, "month"))
        self.assertEqual(await trials.release_expired(T0 + 2 * TTL), 0)  # paid: kept

    async def test_an_expired_unpaid_paid_trial_is_given_back(self):
        trials = self.ledger.trials
        inv = await trials.paid_trial_invoice(10, 10, "month", 3, Decimal("10.00"), T0, TTL)
        self.assertFalse(await trials.eligible(10, 10, "month"))
        await self.ledger.invoices.expire_invoices(T0 + TTL)
        self.assertEqual(await trials.release_expired(T0 + TTL), 1)
        self.assertTrue(await trials.eligible(10, 10, "month"))
        fresh = await trials.paid_trial_invoice(10, 10, "month", 3, Decimal("10.00"), T0 + TTL, TTL)
        self.assertNotEqual(fresh.label, inv.label)

    def test_two_processes_race_for_the_same_trials(self):
        """Two OS processes start the trials of the same 20 users at the same moment: each
        user gets exactly one (the primary key), and each subscription is extended once."""
        script = CHILD_TRIALS % {"url": self.url, "now": T0}
        outcomes = race_two_processes(self, script)

        async def check():
            for user in range(20):
                self.assertEqual(sorted([outcomes[0][user], outcomes[1][user]]), ["already", "granted"], user)
                sub = await self.ledger.subscriptions.subscription(1000 + user)
                self.assertEqual(sub.ends_at, T0 + 3 * DAY)
        return defer.Deferred.fromCoroutine(check())

    # --- promo codes -------------------------------------------------------------------------

    async def test_percent_and_fixed_discounts_fixed_into_the_invoice(self):
        promo = self.ledger.promo
        await promo.add("half", T0, percent=50)
        await promo.add("MINUS50", T0, off=Decimal("50"))
        a = await promo.discounted_invoice("HALF", 1, 1, "month", 30, PRICE, T0, TTL)
        b = await promo.discounted_invoice("minus50", 2, 2, "month", 30, PRICE, T0, TTL)
        self.assertEqual((a.amount, b.amount), (Decimal("99.50"), Decimal("149.00")))
        self.assertEqual(dict(a.metadata), {"promo": "HALF", "full_price": "199.00"})
        self.assertEqual(await promo.codes_for([a.label, b.label, "other"]), {a.label: "HALF", b.label: "MINUS50"})
        # asking again while it is open returns the same invoice and reserves nothing more
        again = await promo.discounted_invoice("half", 1, 1, "month", 30, PRICE, T0 + 60, TTL)
        self.assertEqual(again.label, a.label)
        self.assertEqual((await promo.get("half")).used, 1)
        await promo.add("ALL", T0, off=Decimal("500"))
        c = await promo.discounted_invoice("ALL", 3, 3, "month", 30, PRICE, T0, TTL)
        self.assertEqual(c.amount, Decimal("1.00"))  # never below MIN_PRICE

    async def test_window_plan_restriction_first_only_and_unknown(self):
        promo = self.ledger.promo
        await promo.add("LATER", T0, percent=10, starts_at=T0 + 100, ends_at=T0 + 200)
        await promo.add("YEARONLY", T0, percent=10, plans=["year"])
        await promo.add("FIRST", T0, percent=10, first_only=True)
        ask = promo.discounted_invoice
        self.assertEqual(await refused(ask("LATER", 1, 1, "month", 30, PRICE, T0, TTL)), "expired")
        self.assertEqual((await ask("LATER", 1, 1, "month", 30, PRICE, T0 + 150, TTL)).amount, Decimal("179.10"))
        self.assertEqual(await refused(ask("LATER", 2, 2, "month", 30, PRICE, T0 + 200, TTL)), "expired")
        self.assertEqual(await refused(ask("YEARONLY", 1, 1, "month", 30, PRICE, T0, TTL)), "not_for_plan")
        self.assertEqual((await ask("YEARONLY", 1, 1, "year", 365, Decimal("1990"), T0, TTL)).amount, Decimal("1791.00"))
        self.assertEqual(await refused(ask("NOPE", 1, 1, "month", 30, PRICE, T0, TTL)), "unknown")
        self.assertEqual(await refused(promo.apply(1, "NOPE", T0)), "unknown")
        self.assertEqual(await refused(promo.apply(1, "bad code!", T0)), "unknown")
        paid = await self.ledger.invoices.create_invoice("subscription", PRICE, T0, TTL, plan="month", days=30, chat_id=5)
        await self.pay(paid, "first-1")
        self.assertEqual(await refused(ask("FIRST", 5, 5, "month", 30, PRICE, T0, TTL)), "first_only")
        self.assertEqual((await ask("FIRST", 6, 6, "month", 30, PRICE, T0, TTL)).amount, Decimal("179.10"))
        self.assertTrue(await promo.disable("first", T0))
        self.assertFalse(await promo.disable("first", T0))
        self.assertEqual(await refused(ask("FIRST", 7, 7, "month", 30, PRICE, T0, TTL)), "expired")
        self.assertEqual(await refused(promo.add("first", T0, percent=5)), "exists")
        self.assertEqual(await refused(promo.add("X", T0, percent=5, off=Decimal(1))), "invalid")

    async def test_apply_remembers_the_code_and_checks_it(self):
        promo = self.ledger.promo
        await promo.add("ONE", T0, percent=10, uses=1)
        self.assertEqual((await promo.apply(1, "one", T0)).code, "ONE")
        self.assertEqual(await promo.applied(1), "ONE")
        await promo.discounted_invoice("ONE", 1, 1, "month", 30, PRICE, T0, TTL)
        self.assertEqual(await refused(promo.apply(2, "ONE", T0)), "used_up")
        self.assertIsNone(await promo.applied(2))
        await promo.add("MINE", T0, percent=10, per_user=1)
        await promo.discounted_invoice("MINE", 1, 1, "month", 30, PRICE, T0, TTL)
        self.assertEqual(await refused(promo.apply(1, "MINE", T0)), "per_user")
        self.assertEqual((await promo.apply(2, "MINE", T0)).code, "MINE")
        self.assertTrue(await promo.forget(1))
        self.assertIsNone(await promo.applied(1))

    async def test_uses_5_with_20_users_at_once(self):
        """20 users ask for a pay link with a 5-use code at the same moment: exactly 5
        discounted invoices; the other 15 are told the code is used up."""
        promo = self.ledger.promo
        await promo.add("FIVE", T0, percent=20, uses=5)
        calls = [promo.discounted_invoice("FIVE", chat, chat, "month", 30, PRICE, T0, TTL) for chat in range(100, 120)]
        results = await defer.DeferredList(calls, consumeErrors=True)
        made = [r for ok, r in results if ok]
        reasons = [r.value.reason for ok, r in results if not ok]
        self.assertEqual(len(made), 5)
        self.assertEqual(reasons, ["used_up"] * 15)
        self.assertEqual({i.amount for i in made}, {Decimal("159.20")})
        self.assertEqual((await promo.get("FIVE")).used, 5)

    async def test_per_user_limit(self):
        promo = self.ledger.promo
        await promo.add("TWICE", T0, percent=10, per_user=2)
        await promo.discounted_invoice("TWICE", 1, 1, "month", 30, PRICE, T0, TTL)
        await promo.discounted_invoice("TWICE", 1, 1, "year", 365, PRICE, T0, TTL)
        self.assertEqual(await refused(promo.discounted_invoice("TWICE", 1, 1, "week", 7, PRICE, T0, TTL)), "per_user")
        await promo.discounted_invoice("TWICE", 2, 2, "week", 7, PRICE, T0, TTL)  # another user is fine

    async def test_an_expired_unpaid_discounted_invoice_gives_its_use_back(self):
        promo = self.ledger.promo
        await promo.add("ONCE", T0, percent=10, uses=1)
        inv = await promo.discounted_invoice("ONCE", 1, 1, "month", 30, PRICE, T0, TTL)
        self.assertEqual(await refused(promo.discounted_invoice("ONCE", 2, 2, "month", 30, PRICE, T0, TTL)), "used_up")
        self.assertEqual(await promo.release_expired(T0 + 10), 0)  # still open: kept
        self.assertEqual(await self.ledger.invoices.expire_invoices(T0 + TTL), [inv.label])
        self.assertEqual(await promo.release_expired(T0 + TTL), 1)
        self.assertEqual(await promo.release_expired(T0 + TTL), 0)
        self.assertEqual((await promo.get("ONCE")).used, 0)
        other = await promo.discounted_invoice("ONCE", 2, 2, "month", 30, PRICE, T0 + TTL, TTL)
        self.assertEqual(other.amount, Decimal("179.10"))
        kinds = [e.kind for e in await self.ledger.audit.events(label=inv.label)]
        self.assertIn("promo_released", kinds)

    async def test_a_paid_discounted_invoice_is_honoured_and_keeps_its_use(self):
        promo = self.ledger.promo
        await promo.add("ONCE", T0, percent=10, uses=1)
        inv = await promo.discounted_invoice("ONCE", 1, 1, "month", 30, PRICE, T0, TTL)
        self.assertTrue(await promo.disable("ONCE", T0 + 1))  # disabling later does not take it back
        result = await self.pay(inv, "promo-paid", "179.10")
        self.assertEqual(result.outcome, "paid")
        self.assertEqual(await self.promo_code_of("promo-paid"), "ONCE")  # recorded in the payment's row
        self.assertEqual(result.subscription.ends_at, T0 + 60 + 30 * DAY)
        await self.ledger.invoices.expire_invoices(T0 + 2 * TTL)
        self.assertEqual(await promo.release_expired(T0 + 2 * TTL), 0)
        self.assertEqual((await promo.get("ONCE")).used, 1)

    async def test_the_discounted_price_on_an_invoice_made_without_the_code_is_underpaid(self):
        inv = await self.ledger.invoices.create_invoice("subscription", PRICE, T0, TTL, plan="month", days=30,
                                                        chat_id=1)
        result = await self.pay(inv, "cheat-1", "179.10")
        self.assertEqual(result.outcome, "underpaid")
        self.assertIsNone(await self.promo_code_of("cheat-1"))
        self.assertIsNone(await self.ledger.subscriptions.subscription(1))

    def test_two_processes_race_for_the_same_uses(self):
        """Two OS processes each ask discounted invoices of a 5-use code for 10 chats at the
        same moment: exactly 5 are made in all."""
        async def prepare():
            await self.ledger.promo.add("RACE", T0, percent=10, uses=5)
        outcomes = []

        async def go():
            await prepare()
            outcomes.extend(race_two_processes(self, CHILD_PROMO % {"url": self.url, "now": T0}))
            made = [o for run in outcomes for o in run if o == "made"]
            self.assertEqual(len(made), 5)
            self.assertEqual(len([o for run in outcomes for o in run if o == "used_up"]), 15)
            self.assertEqual((await self.ledger.promo.get("RACE")).used, 5)
        return defer.Deferred.fromCoroutine(go())

    # --- gift and access codes -------------------------------------------------------------

    async def test_single_use_code_grants_once(self):
        codes = self.ledger.codes
        [code] = await codes.add(T0, 30, plan="month")
        _, sub = await codes.redeem(code.code.lower(), 1, T0)
        self.assertEqual((sub.plan, sub.ends_at), ("month", T0 + 30 * DAY))
        self.assertEqual(await refused(codes.redeem(code.code, 1, T0)), "already")
        self.assertEqual(await refused(codes.redeem(code.code, 2, T0)), "used_up")
        self.assertEqual(await refused(codes.redeem("NOSUCHCODE", 2, T0)), "unknown")
        self.assertEqual(await refused(codes.redeem("!", 2, T0)), "unknown")

    async def test_multi_use_codes_extend_and_expire(self):
        codes = self.ledger.codes
        made = await codes.add(T0, 7, count=3, uses=2, expires_at=T0 + DAY)
        self.assertEqual(len({c.code for c in made}), 3)
        inv = await self.ledger.invoices.create_invoice("subscription", PRICE, T0, TTL, plan="month", days=30,
                                                        chat_id=1)
        await self.pay(inv, "before-code")
        _, sub = await codes.redeem(made[0].code, 1, T0 + 120)
        self.assertEqual((sub.plan, sub.ends_at), ("month", T0 + 60 + 37 * DAY))  # extended, plan kept
        await codes.redeem(made[0].code, 2, T0 + 120)
        self.assertEqual(await refused(codes.redeem(made[0].code, 3, T0 + 120)), "used_up")
        self.assertEqual(await refused(codes.redeem(made[1].code, 3, T0 + DAY)), "expired")
        self.assertEqual((await codes.get(made[0].code)).used, 2)

    async def test_codes_at_once_hold_their_uses(self):
        codes = self.ledger.codes
        [code] = await codes.add(T0, 7, uses=3)
        calls = [codes.redeem(code.code, chat, T0) for chat in range(10)]
        results = await defer.DeferredList(calls, consumeErrors=True)
        self.assertEqual(len([ok for ok, _ in results if ok]), 3)
        self.assertEqual({r.value.reason for ok, r in results if not ok}, {"used_up"})

    async def test_gift_code_is_made_once_and_redeemed_by_another_user(self):
        codes = self.ledger.codes
        gift = await codes.gift_code("giftinvoicelabel0000", "month", 30, T0)
        self.assertEqual((await codes.gift_code("giftinvoicelabel0000", "month", 30, T0 + 5)).code, gift.code)
        _, sub = await codes.redeem(gift.code, 555, T0)
        self.assertEqual((sub.chat_id, sub.plan), (555, "month"))
        self.assertEqual(await refused(codes.redeem(gift.code, 556, T0)), "used_up")


_CHILD_HEAD = r"""
import json, sys
from decimal import Decimal
from twisted.internet import defer, task
from ymds.billing.open import open_ledger
from ymds.billing.stores.trials import SellingRefused

async def outcome(d, ok):
    try:
        await d
        return ok
    except SellingRefused as e:
        return e.reason

async def main(reactor):
    ledger = open_ledger(%(url)r, reactor)
    await ledger.migrate()
    await ledger.invoices.get_invoice("warm-up-label")
    print("ready", flush=True)
    sys.stdin.readline()
"""
_CHILD_TAIL = r"""
    print(json.dumps(results), flush=True)
    await ledger.close()

task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
"""
CHILD_TRIALS = _CHILD_HEAD + r"""
    calls = [outcome(ledger.trials.start_free(u, 1000 + u, "month", 3, %(now)r), "granted") for u in range(20)]
    results = await defer.gatherResults([defer.ensureDeferred(c) for c in calls])
""" + _CHILD_TAIL
CHILD_PROMO = _CHILD_HEAD + r"""
    base = __import__("os").getpid() * 100  # each child its own chats
    calls = [outcome(ledger.promo.discounted_invoice("RACE", base + c, base + c, "month", 30, Decimal("199.00"), %(now)r, 86400.0),
                     "made") for c in range(10)]
    results = await defer.gatherResults([defer.ensureDeferred(c) for c in calls])
""" + _CHILD_TAIL


class SQLiteSellingTests(SQLiteLedgerMixin, SellingContract, unittest.TestCase):
    pass


class PostgresSellingTests(PostgresLedgerMixin, SellingContract, unittest.TestCase):
    """Needs a PostgreSQL server; errors, never skips, when there is none."""
