"""Issue 19 from the user's side: the real bot and billing roles over Redis against the fake
Bot API — trials (free by button and deep link, paid), promo codes (/promo, /start promo_,
refusals in the user's language, 20 users at once on a 5-use code), gift and access codes
(/redeem, /start code_, /gift bought by one user and redeemed by another)."""
from __future__ import annotations

from decimal import Decimal

from twisted.internet import defer, reactor

from tests.fakes.bot_harness import LINK_SECRET, as_deferred, wait_until
from tests.test_bot_handlers import BotTestBase, payment_fields
from ymds.billing.jobs import BillingClient
from ymds.billing.selling_jobs import CodesAdd, PromoTerms, SellingClient
from ymds.links import verify_token

PLANS = [{"id": "month", "title": "1 month", "price": "199.00", "days": 30, "trial_days": 3},
         {"id": "year", "title": "1 year", "price": "1990.00", "days": 365, "trial_days": 7, "trial_price": "10.00"}]


class SellingBotTests(BotTestBase):
    def config_options(self):
        return {**super().config_options(), "plans": PLANS}  # plans that have trials

    async def start(self):
        await BotTestBase.start(self)
        self.selling = SellingClient(self.queue)

    async def said(self, chat: int, needle: str) -> dict:
        """The first message to ``chat`` containing ``needle`` (waits for it)."""
        def found():
            return [m for m in self.fake.messages_to(chat) if needle in m["visible"]]
        await wait_until(lambda: bool(found()), what=f"a message with {needle!r}")
        return found()[0]

    async def ask(self, chat: int, text: str, needle: str) -> dict:
        """Send ``text``; the first new message to ``chat`` containing ``needle`` (other
        messages, such as an invitation, may arrive in between)."""
        before = len(self.fake.messages_to(chat))
        self.fake.user_sends(chat, text)

        def found():
            return [m for m in self.fake.messages_to(chat)[before:] if needle in m["visible"]]
        await wait_until(lambda: bool(found()), what=f"a reply to {text!r} with {needle!r}")
        return found()[0]

    def label(self, button: dict) -> str:
        return verify_token(LINK_SECRET.encode(), button["url"].rsplit("/", 1)[1], reactor.seconds())

    async def pay(self, label: str, amount: str, op: str) -> dict:
        return await self.queue.call("billing", "apply_payment",
                                     {"fields": payment_fields(op, label, amount), "source": "notification"})

    # --- trials ------------------------------------------------------------------------------

    @as_deferred
    async def test_free_trial_by_button_once(self):
        chat = 301
        reply = await self.say(chat, "/subscribe")
        self.assertIn({"text": "Try 1 month free for 3 days", "callback_data": "trial:month"}, self.buttons(reply))
        self.assertIn("trial of 3 days — free", reply["visible"])
        await self.click(chat, "trial:month")
        started = await self.said(chat, "Your trial has started")
        self.assertIn("1 month", started["visible"])
        await self.said(chat, "invitation")  # access granted like a paid period
        await self.ask(chat, "/status", "active until")
        await self.ask(chat, "/start trial_month", "given only once")
        reply = await self.ask(chat, "/subscribe", "Choose a plan")
        self.assertNotIn("trial:month", [b.get("callback_data") for b in self.buttons(reply)])

    @as_deferred
    async def test_paid_trial_charges_the_trial_price_once_then_the_plan_price(self):
        chat = 302
        reply = await self.say(chat, "/start trial_year")
        [button] = self.buttons(reply)
        self.assertIn("10.00", button["text"])
        result = await self.pay(self.label(button), "10.00", "op-trial-302")
        self.assertEqual(result["outcome"], "paid")
        await self.said(chat, "Payment received")
        await self.said(chat, "invitation")
        reply = await self.ask(chat, "/subscribe", "Choose a plan")
        year = [b for b in self.buttons(reply) if b["text"].startswith("1 year")]
        self.assertEqual(year[0]["text"], "1 year — 1,990.00\u00a0₽")
        await self.ask(chat, "/start trial_year", "given only once")

    # --- promo codes ---------------------------------------------------------------------------

    @as_deferred
    async def test_promo_code_discounts_the_pay_links(self):
        answer = await self.selling.promo_add(PromoTerms("SALE", percent=50, plans=("month",)))
        self.assertTrue(answer.ok)
        chat = 303
        reply = await self.say(chat, "/promo sale")
        self.assertIn("Promo code SALE applied: 50% off", reply["visible"])
        self.assertIn("<s>199.00\u00a0₽</s>", reply["text"])  # the old price struck through
        month = [b for b in self.buttons(reply) if b["text"].startswith("1 month")][0]
        self.assertEqual(month["text"], "1 month — 99.50\u00a0₽")
        label = self.label(month)
        view = await BillingClient(self.queue).invoice_status(label)
        self.assertEqual((view.amount, view.full_price, view.promo), (Decimal("99.50"), Decimal("199.00"), "SALE"))
        # paying the regular invoice at the discounted price is an underpayment
        other = await self.say(304, "/subscribe")
        regular = [b for b in self.buttons(other) if b["text"].startswith("1 month")][0]
        self.assertEqual((await self.pay(self.label(regular), "99.50", "op-cheat"))["outcome"], "underpaid")
        self.assertEqual((await self.pay(label, "99.50", "op-promo"))["outcome"], "paid")

    @as_deferred
    async def test_promo_refusals_are_one_sentence_in_the_users_language(self):
        await self.selling.promo_add(PromoTerms("OLD", percent=10, ends_at=reactor.seconds() - 1))
        reply = await self.say(305, "/promo NOPE")
        self.assertEqual(reply["visible"], "There is no such code; check that you typed it correctly.")
        reply = await self.say(305, "/start promo_OLD")
        self.assertEqual(reply["visible"], "This code has expired; ask the owner for a new one.")
        await self.click(306, "lang:ru")
        reply = await self.say(306, "/promo OLD")
        self.assertEqual(reply["visible"], "Срок действия этого кода истёк — попросите у владельца новый.")
        reply = await self.say(305, "/promo")
        self.assertIn("/promo CODE", reply["visible"])

    @as_deferred
    async def test_uses_5_with_20_users_asking_for_pay_links_at_once(self):
        await self.selling.promo_add(PromoTerms("FIVE", off=Decimal("100"), plans=("month",), uses=5))
        chats = list(range(400, 420))
        for chat in chats:
            self.assertTrue((await self.selling.apply_promo(chat, "five")).ok)
        billing = BillingClient(self.queue)
        offers = await defer.gatherResults([billing.create_invoices(c, c) for c in chats])
        months = [o.invoices[0] for o in offers]
        self.assertEqual(len([m for m in months if m.amount == Decimal("99.00")]), 5)
        self.assertEqual([m.promo_refused for m in months if m.amount == Decimal("199.00")], ["used_up"] * 15)
        # each was told once; their next links are at the plain price without the note
        refused = [c for c, m in zip(chats, months) if m.promo_refused]
        again = await billing.create_invoices(refused[0], refused[0])
        self.assertEqual((again.invoices[0].amount, again.invoices[0].promo_refused), (Decimal("199.00"), None))
        winner = [c for c, m in zip(chats, months) if m.promo][0]
        kept = await billing.create_invoices(winner, winner)
        self.assertEqual((kept.invoices[0].amount, kept.invoices[0].label), (Decimal("99.00"), months[chats.index(winner)].label))

    # --- gift and access codes ------------------------------------------------------------------

    @as_deferred
    async def test_access_code_redeemed_once(self):
        made = await self.selling.codes_add(CodesAdd(plan="month"))
        [code] = made.codes
        await self.ask(307, f"/redeem {code.lower()}", "Code accepted")
        await self.ask(307, f"/start code_{code}", "already redeemed")
        reply = await self.say(308, f"/redeem {code}")
        self.assertIn("used up", reply["visible"])

    @as_deferred
    async def test_gift_bought_by_one_user_and_redeemed_by_another(self):
        reply = await self.say(309, "/gift")
        self.assertIn("forward", reply["visible"])
        month = [b for b in self.buttons(reply) if b["text"].startswith("1 month")][0]
        result = await self.pay(self.label(month), "199.00", "op-gift")
        self.assertEqual(result["outcome"], "paid")
        gift = await self.said(309, "Thank you for the gift")
        code = gift["visible"].split("/redeem ")[1].rstrip(".").strip()
        await self.ask(309, "/status", "no subscription")  # the buyer got a code, not access
        await self.ask(310, f"/start code_{code}", "Code accepted")
        await self.ask(310, "/status", "active until")
