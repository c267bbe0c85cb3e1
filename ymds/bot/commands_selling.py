"""The bot's selling commands (issue 19): /promo CODE, /redeem CODE, /gift, the deep links
``/start promo_CODE``, ``/start code_CODE`` and ``/start trial_<plan>``, the free-trial
button, and the notes /subscribe adds about trials and promo prices.

Every limit is billing's (the ledger's) decision; this module asks through
:class:`SellingClient` and says the answer in one sentence in the user's language.  A
grant (free trial, redeemed code) is followed by the same GrantAccess job a payment causes.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.logger import Logger

from ymds.billing.jobs import InvoiceOffers
from ymds.billing.selling_jobs import SellingAnswer, SellingClient
from ymds.bot import texts
from ymds.bot.jobs import GrantAccess
from ymds.bot.sender import invoice_buttons
from ymds.bot.texts_selling import refusal_key

log = Logger()

COMMANDS = ("promo", "redeem", "gift")
_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
#: deep-link payload prefixes (Telegram allows [A-Za-z0-9_-]{1,64} after ?start=)
PROMO_PREFIX, CODE_PREFIX, TRIAL_PREFIX = "promo_", "code_", "trial_"
TRIAL_BUTTON = "trial:"


def discount_text(lang: str, answer: SellingAnswer) -> str:
    if answer.percent is not None:
        return texts.render(lang, "discount_percent", percent=answer.percent)
    return texts.render(lang, "discount_off", off_html=texts.money(answer.off, lang))


def offer_notes(offers: InvoiceOffers | None, lang: str) -> list[str]:
    """Lines for /subscribe: discounted prices (old price struck through), trials, and why
    an applied code did not apply."""
    lines: list[str] = []
    refusals: set[str] = set()
    for offer in offers.invoices if offers is not None else ():
        if offer.promo and offer.full_price is not None:
            lines.append(texts.render(lang, "promo_note", code=offer.promo, title=offer.title,
                                      full_html=texts.money(offer.full_price, lang),
                                      amount_html=texts.money(offer.amount, lang)))
        if offer.trial_days:
            price = texts.render(lang, "free") if offer.trial_free else texts.money(offer.amount, lang)
            lines.append(f"{texts.escape(offer.title)}: " + texts.render(lang, "trial_line", days=offer.trial_days,
                                                                          price_html=price))
        if offer.promo_refused and offer.promo_refused not in refusals:
            refusals.add(offer.promo_refused)
            lines.append(texts.render(lang, refusal_key(offer.promo_refused, "code")))
    return lines


def trial_buttons(offers: InvoiceOffers | None, lang: str) -> list[list[dict[str, Any]]]:
    """A callback button per free trial the user may take."""
    rows = []
    for offer in offers.invoices if offers is not None else ():
        if offer.trial_free and offer.trial_days and offer.plan:
            rows.append([{"text": texts.plain(lang, "trial_free_button", days=offer.trial_days,
                                              title=str(offer.title or offer.plan)),
                          "callback_data": f"{TRIAL_BUTTON}{offer.plan}"[:64]}])
    return rows


class SellingCommands:
    """Answers the selling commands for an :class:`ymds.bot.handlers.UpdateHandler` (its
    ``reply``, ``config``, ``queue`` and ``bot``)."""

    def __init__(self, handler: Any):
        self.handler = handler
        self.client = SellingClient(handler.queue, timeout=handler.call_timeout)

    async def handle(self, uid: int, chat_id: int, user_id: int | None, lang: str, command: str, rest: str) -> bool:
        """Answer ``command`` if it is a selling one (True), else leave it (False)."""
        if command == "start":
            return await self.deep_link(uid, chat_id, user_id, lang, rest)
        if command == "promo":
            await self.promo(uid, chat_id, lang, rest)
        elif command == "redeem":
            await self.redeem(uid, chat_id, lang, rest)
        elif command == "gift":
            await self.gift(uid, chat_id, lang)
        else:
            return False
        return True

    async def deep_link(self, uid: int, chat_id: int, user_id: int | None, lang: str, payload: str) -> bool:
        if payload.startswith(PROMO_PREFIX):
            await self.promo(uid, chat_id, lang, payload[len(PROMO_PREFIX):])
        elif payload.startswith(CODE_PREFIX):
            await self.redeem(uid, chat_id, lang, payload[len(CODE_PREFIX):])
        elif payload.startswith(TRIAL_PREFIX):
            await self.trial(uid, chat_id, user_id if user_id is not None else chat_id, lang,
                             payload[len(TRIAL_PREFIX):])
        else:
            return False
        return True

    async def _ask(self, uid: int, chat_id: int, lang: str, call: Any) -> Any:
        try:
            return await call
        except Exception as e:
            log.warn("bot: a selling call for {chat_id} failed: {error}", chat_id=chat_id,
                     error=str(e) or type(e).__name__)
            await self.handler.reply(uid, chat_id, texts.render(lang, "unavailable"))
            return None

    async def promo(self, uid: int, chat_id: int, lang: str, code: str) -> None:
        if not _CODE.match(code):
            await self.handler.reply(uid, chat_id, texts.render(lang, "promo_usage"))
            return
        answer = await self._ask(uid, chat_id, lang, self.client.apply_promo(chat_id, code))
        if answer is None:
            return
        if not answer.ok:
            await self.handler.reply(uid, chat_id, texts.render(lang, refusal_key(answer.refusal, "code")))
            return
        offers = await self.handler.invoices(chat_id)
        text = texts.render(lang, "promo_applied", code=answer.code, discount_html=discount_text(lang, answer))
        notes = offer_notes(offers, lang)
        await self.handler.reply(uid, chat_id, "\n".join([text, *notes]),
                                 invoice_buttons(offers, lang, self.handler.config) if offers is not None else None)

    async def redeem(self, uid: int, chat_id: int, lang: str, code: str) -> None:
        if not _CODE.match(code):
            await self.handler.reply(uid, chat_id, texts.render(lang, "redeem_usage"))
            return
        answer = await self._ask(uid, chat_id, lang, self.client.redeem_code(chat_id, code))
        if answer is not None:
            await self._granted(uid, chat_id, lang, answer, "code_redeemed", "code")

    async def trial(self, uid: int, chat_id: int, user_id: int, lang: str, plan_id: str) -> None:
        plan = self.handler.config.plan(plan_id)
        if plan is None or not plan.trial_days:
            await self.handler.reply(uid, chat_id, texts.render(lang, "refused_no_trial"))
            return
        answer = await self._ask(uid, chat_id, lang, self.client.start_trial(chat_id, user_id, plan.id))
        if answer is None:
            return
        if answer.ok and answer.url:  # a paid trial: its pay link
            text = texts.render(lang, "trial_paid", plan=plan.title_in(lang), days=answer.days,
                                amount_html=texts.money(answer.amount, lang))
            button = [[{"text": texts.plain(lang, "plan_button", title=plan.title_in(lang),
                                            amount=texts.money(answer.amount, lang)), "url": answer.url}]]
            await self.handler.reply(uid, chat_id, text, button)
            return
        await self._granted(uid, chat_id, lang, answer, "trial_started", "trial")

    async def _granted(self, uid: int, chat_id: int, lang: str, answer: SellingAnswer, message: str,
                       about: str) -> None:
        if not answer.ok:
            await self.handler.reply(uid, chat_id, texts.render(lang, refusal_key(answer.refusal, about)))
            return
        plan = self.handler.config.plan(str(answer.plan))
        title = plan.title_in(lang) if plan else str(answer.plan or "—")
        await self.handler.reply(uid, chat_id, texts.render(lang, message, plan=title,
                                                            ends_at=texts.date(answer.ends_at, lang, self.handler.config.server.timezone)))
        if self.handler.config.telegram.channel_id and answer.ends_at:
            # the same job a payment's grant enqueues, keyed by this update
            await self.handler.bot.grant_access(GrantAccess(chat_id, answer.ends_at, f"grant:u:{uid}"))

    async def gift(self, uid: int, chat_id: int, lang: str) -> None:
        if not self.handler.config.plans:
            await self.handler.reply(uid, chat_id, texts.render(lang, "no_plans"))
            return
        offers = await self._ask(uid, chat_id, lang, self.client.gift_invoices(chat_id))
        if offers is None:
            return
        await self.handler.reply(uid, chat_id, texts.render(lang, "gift_choose"), invoice_buttons(offers, lang, self.handler.config))

    async def on_button(self, uid: int, chat_id: int, user_id: int, data: str) -> bool:
        """The free-trial button (``trial:<plan>``); False for other buttons."""
        if not data.startswith(TRIAL_BUTTON):
            return False
        await self.trial(uid, chat_id, user_id, await self.handler.language(chat_id), data[len(TRIAL_BUTTON):])
        return True


__all__ = ["COMMANDS", "SellingCommands", "offer_notes", "trial_buttons"]
