"""What the bot does with an incoming update: commands and button presses.

Runs inside a ``bot.update`` job.  Every reply goes through :class:`Sender` with a dedup key
made of the update id, so a redelivered job does not answer twice.  Billing is reached only
through :class:`BillingClient` (create_invoices, subscription_status, stats).

Input is hostile: anything not shaped like a Telegram message or callback query is
ignored with a log line; texts and callback data are bounded; a chat that writes more
than ``flood_limit`` messages a minute is not answered for the rest of that minute (its
replies would otherwise hold the workers on its one-message-per-second budget).
"""

from __future__ import annotations

import re

from twisted.logger import Logger

from ymds.billing.jobs import BillingClient, InvoiceOffers
from ymds.bot import texts
from ymds.bot.shop_texts import shop_heading
from ymds.bot.access.doorkeeper import ALLOWED_UPDATES
from ymds.bot.access.invites import PressTooSoon
from ymds.bot.access.texts import say as access_say
from ymds.bot.commands_admin import AdminLinkCommand
from ymds.bot.commands_lang import LanguagePreference
from ymds.bot.commands_selling import COMMANDS as SELLING_COMMANDS, SellingCommands, offer_notes, trial_buttons
from ymds.bot.jobs import BotClient, GrantAccess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ymds.bot.access.wiring import AccessService
from ymds.bot.sender import invoice_buttons
from ymds.queue.keys import QueueKeys

log = Logger()

_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]{1,64}))?(?:\s+(.*))?$", re.S)
_PAYLOAD = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_TEXT = 4096


def _chat_of(message) -> tuple[int, str] | None:
    chat = message.get("chat") if isinstance(message, dict) else None
    if not isinstance(chat, dict):
        return None
    chat_id = chat.get("id")
    if isinstance(chat_id, bool) or not isinstance(chat_id, int):
        return None
    kind = chat.get("type")
    return chat_id, kind if isinstance(kind, str) else ""


def _user_id(obj) -> int | None:
    user = obj.get("from") if isinstance(obj, dict) else None
    uid = user.get("id") if isinstance(user, dict) else None
    return uid if isinstance(uid, int) and not isinstance(uid, bool) else None


class UpdateHandler:
    def __init__(self, config, queue, sender, store, api, flood_limit: int = 20, call_timeout: float = 10.0):
        self.config = config
        self.queue = queue
        self.sender = sender
        self.store = store
        self.api = api
        self.flood_limit = flood_limit
        self.call_timeout = call_timeout
        self.billing = BillingClient(queue, timeout=call_timeout)
        self.bot = BotClient(queue)
        self.username: str | None = None
        self.selling = SellingCommands(self)  # issue 19: /promo, /redeem, /gift, trials, deep links
        self.admin_link = AdminLinkCommand(config, store.redis)  # /admin (issue 16)
        self.languages = LanguagePreference(config, store)  # /lang, else the user's language_code (issue 19)
        self.access: AccessService | None = None  # ymds.bot.access.wiring.AccessService when paid chats are guarded (issue 15)

    async def handle(self, update) -> None:
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            log.warn("bot: ignored a malformed update")
            return
        uid = update["update_id"]
        if isinstance(update.get("message"), dict):
            await self.on_message(uid, update["message"])
        elif isinstance(update.get("callback_query"), dict):
            await self.on_callback(uid, update["callback_query"])
        elif self.access is not None and any(isinstance(update.get(k), dict) for k in ALLOWED_UPDATES):
            await self.access.handle_update(update)  # raises on a passing failure: the job is tried again
        # other update kinds are not asked for (allowed_updates) and are ignored

    # --- helpers ------------------------------------------------------------------------

    async def language(self, chat_id: int) -> str:
        return await self.languages.of(chat_id)

    async def reply(self, uid: int, chat_id: int, text: str, buttons=None, n: int = 0) -> str:
        return await self.sender.send(f"u:{uid}:{n}", chat_id, text, buttons)

    async def is_for_me(self, mention: str | None) -> bool:
        if not mention:
            return True
        if self.username is None:
            try:
                me = await self.api.getMe()
                self.username = str(me.get("username", "")) if isinstance(me, dict) else ""
            except Exception:
                return True  # better to answer a command than to drop it
        return mention.lower() == (self.username or "").lower()

    # --- messages -----------------------------------------------------------------------

    async def on_message(self, uid: int, message: dict) -> None:
        found = _chat_of(message)
        if found is None:
            log.warn("bot: ignored update {uid}: message without a chat", uid=uid)
            return
        chat_id, kind = found
        text = message.get("text")
        if not isinstance(text, str) or not text or len(text) > MAX_TEXT:
            return  # stickers, photos, joins: nothing to say
        if chat_id > 0:
            if await self.store.clear_blocked(chat_id):
                log.info("bot: chat {chat_id} writes again; no longer blocked", chat_id=chat_id)
        if await self.store.inbound_count(chat_id) > self.flood_limit:
            log.warn("bot: chat {chat_id} floods; not answering update {uid}", chat_id=chat_id, uid=uid)
            return
        await self.languages.observe(chat_id, message.get("from"))
        match = _COMMAND.match(text.strip())
        if match is None:
            if kind == "private":
                await self.reply(uid, chat_id, texts.render(await self.language(chat_id), "unknown"))
            return
        command, mention, rest = match.group(1).lower(), match.group(2), (match.group(3) or "").strip()
        if not await self.is_for_me(mention):
            return
        lang = await self.language(chat_id)
        user_id = _user_id(message)
        # the sender's user id alone: a group's id in telegram.admins gives its members nothing (issue 14)
        admin = user_id is not None and user_id in self.config.telegram.admins
        if command == "admin":  # the dashboard link: a listed admin's user id in private; anyone else gets nothing
            if self.admin_link.allowed(user_id, kind):
                await self.reply(uid, chat_id, await self.admin_link.text_for(user_id, lang))
            return
        if kind != "private" and not (admin and command == "stats"):
            if command in ("start", "subscribe", "status", "help", "lang", *SELLING_COMMANDS):
                await self.reply(uid, chat_id, texts.render(lang, "private_only"))
            return
        if await self.selling.handle(uid, chat_id, user_id, lang, command, rest):
            return  # issue 19: a selling command or deep link
        if command == "start":
            await self.cmd_start(uid, chat_id, lang, rest)
        elif command == "subscribe":
            await self.cmd_subscribe(uid, chat_id, lang)
        elif command == "status":
            await self.cmd_status(uid, chat_id, lang)
        elif command == "help":
            text = shop_heading(self.config, lang) + texts.render(lang, "help") + (texts.render(lang, "help_admin") if admin else "")
            await self.reply(uid, chat_id, text)
        elif command == "lang":
            await self.cmd_lang(uid, chat_id, lang)
        elif command == "stats" and admin:
            await self.cmd_stats(uid, chat_id, lang)
        else:
            await self.reply(uid, chat_id, texts.render(lang, "unknown"))

    async def invoices(self, chat_id: int) -> InvoiceOffers | None:
        """billing's invoice offers for the chat, or None when billing cannot be reached."""
        try:
            return await self.billing.create_invoices(chat_id, chat_id)
        except Exception as e:
            log.warn("bot: create_invoices for {chat_id} failed: {error}", chat_id=chat_id,
                     error=str(e) or type(e).__name__)
            return None

    async def cmd_start(self, uid: int, chat_id: int, lang: str, payload: str) -> None:
        plan = self.config.plan(payload) if payload and _PAYLOAD.match(payload) else None
        if plan is None:
            await self.reply(uid, chat_id, shop_heading(self.config, lang) + texts.render(lang, "welcome"),
                             [[{"text": texts.plain(lang, "subscribe_button"), "callback_data": "subscribe"}]])
            return
        result = await self.invoices(chat_id)
        if result is None:
            await self.reply(uid, chat_id, texts.render(lang, "unavailable"))
            return
        chosen = InvoiceOffers(tuple(i for i in result.invoices if i.plan == plan.id))
        buttons = invoice_buttons(chosen, lang, self.config)
        if not buttons:
            await self.cmd_subscribe(uid, chat_id, lang, result)
            return
        text = texts.render(lang, "chosen_plan", title=plan.title_in(lang), amount_html=texts.money(plan.price, lang), days=plan.days)
        await self.reply(uid, chat_id, text, buttons)

    async def cmd_subscribe(self, uid: int, chat_id: int, lang: str, result=None, n: int = 0) -> None:
        if not self.config.plans:
            await self.reply(uid, chat_id, texts.render(lang, "no_plans"), n=n)
            return
        result = result if result is not None else await self.invoices(chat_id)
        buttons = invoice_buttons(result, lang, self.config) if result is not None else None
        if buttons is None:
            await self.reply(uid, chat_id, texts.render(lang, "unavailable"), n=n)
            return
        lines = [texts.render(lang, "choose_plan")]
        for plan in self.config.plans:
            lines.append(texts.render(lang, "plan_line", title=plan.title_in(lang), amount_html=texts.money(plan.price, lang),
                                      days=plan.days))
        lines += offer_notes(result, lang)  # issue 19: trials and promo prices
        await self.reply(uid, chat_id, "\n".join(lines), trial_buttons(result, lang) + buttons, n=n)

    async def cmd_status(self, uid: int, chat_id: int, lang: str) -> None:
        try:
            status = await self.billing.subscription_status(chat_id)
        except Exception as e:
            log.warn("bot: subscription_status for {chat_id} failed: {error}", chat_id=chat_id,
                     error=str(e) or type(e).__name__)
            await self.reply(uid, chat_id, texts.render(lang, "unavailable"))
            return
        if status is None:
            text = texts.render(lang, "status_none")
            result = await self.invoices(chat_id)
            buttons = invoice_buttons(result, lang, self.config) if result is not None else None
            await self.reply(uid, chat_id, text, buttons)
            return
        plan = self.config.plan(str(status.plan))
        title = plan.title_in(lang) if plan else str(status.plan or "—")
        ends_at = texts.date(status.ends_at, lang, self.config.server.timezone)
        result = await self.invoices(chat_id)
        buttons = (invoice_buttons(result, lang, self.config) if result is not None else None) or []
        if status.active:
            text = texts.render(lang, "status_active", plan=title, ends_at=ends_at)
            if buttons:
                text += "\n" + texts.render(lang, "renew")
            if self.config.telegram.channel_id or self.access is not None:
                buttons = buttons + [[{"text": texts.plain(lang, "invite_button"), "callback_data": "invite"}]]
        else:
            text = texts.render(lang, "status_expired", plan=title, ends_at=ends_at)
        await self.reply(uid, chat_id, text, buttons or None)

    async def cmd_lang(self, uid: int, chat_id: int, lang: str) -> None:
        buttons = [[{"text": texts.plain("ru", "lang_button"), "callback_data": "lang:ru"},
                    {"text": texts.plain("en", "lang_button"), "callback_data": "lang:en"}]]
        await self.reply(uid, chat_id, texts.render(lang, "lang_choose"), buttons)

    async def cmd_stats(self, uid: int, chat_id: int, lang: str) -> None:
        try:
            stats = await self.billing.stats()
        except Exception as e:
            log.warn("bot: stats failed: {error}", error=str(e) or type(e).__name__)
            await self.reply(uid, chat_id, texts.render(lang, "unavailable"))
            return
        dead = 0
        for name in ("billing", "bot"):
            try:
                dead += int(await self.store.redis.execute("XLEN", QueueKeys(self.config.redis.prefix, name).dead))
            except Exception:
                pass
        text = texts.render(
            lang, "stats", payments_today=stats.payments_today, payments_month=stats.payments_month,
            sum_today_html=texts.money(stats.sum_today, lang), sum_month_html=texts.money(stats.sum_month, lang),
            active_subscribers=stats.active_subscribers, quarantined=stats.quarantined,
            dead_letters=dead)
        await self.reply(uid, chat_id, text)

    # --- buttons ------------------------------------------------------------------------

    async def on_callback(self, uid: int, query: dict) -> None:
        query_id = query.get("id")
        data = query.get("data")
        found = _chat_of(query.get("message"))
        user_id = _user_id(query)
        if not isinstance(query_id, str) or not query_id or len(query_id) > 64:
            return
        answer_text = None
        try:
            if found is None or user_id is None or not isinstance(data, str) or len(data) > 64:
                return
            chat_id, kind = found
            if kind != "private":
                return
            if data in ("lang:ru", "lang:en"):
                lang = data[5:]
                await self.store.set_language(chat_id, lang)
                answer_text = texts.plain(lang, "lang_set")
                await self.reply(uid, chat_id, texts.render(lang, "lang_set"))
            elif data == "subscribe":
                await self.cmd_subscribe(uid, chat_id, await self.language(chat_id))
            elif data == "invite":
                await self.resend_invite(uid, chat_id, await self.language(chat_id))
            else:
                await self.selling.on_button(uid, chat_id, user_id, data)  # issue 19: the free-trial button
        finally:
            try:
                await self.api.answerCallbackQuery(query_id, answer_text)
            except Exception as e:  # a query older than a few minutes cannot be answered: fine
                log.info("bot: answerCallbackQuery failed: {error}", error=str(e) or type(e).__name__)

    async def resend_invite(self, uid: int, chat_id: int, lang: str) -> None:
        if self.access is not None:
            try:
                self.access.presses.check(chat_id)
            except PressTooSoon as e:
                await self.reply(uid, chat_id, access_say(lang, "press_too_soon", seconds=int(e.retry_after) + 1))
                return
        elif not self.config.telegram.channel_id:
            await self.reply(uid, chat_id, texts.render(lang, "no_channel"))
            return
        try:
            status = await self.billing.subscription_status(chat_id)
        except Exception:
            await self.reply(uid, chat_id, texts.render(lang, "unavailable"))
            return
        if status is None or not status.active:
            await self.reply(uid, chat_id, texts.render(lang, "not_active"))
            return
        # the same path as billing's grant_access, keyed by this button press
        await self.bot.grant_access(GrantAccess(chat_id, status.ends_at, f"invite:u:{uid}"))
