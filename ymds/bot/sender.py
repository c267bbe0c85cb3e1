"""Outgoing messages: the ``bot`` queue's tasks and the one way every message goes out.

Every message is sent by a queue job and carries a dedup key.  :meth:`Sender.send`:

1. skips chats that blocked the bot (remembered in Redis after a 403);
2. skips keys already delivered (``{prefix}:bot:sent:<key>``);
3. waits for a slot from the rate limiter, calls sendMessage;
4. on success records the key (SET NX EX) *after* Telegram accepted the message.

Crash window: the Bot API has no idempotency key, so if the process dies (or Redis is
unreachable) after Telegram accepted a message and before step 4 is recorded, the job is
redelivered and the message goes out a second time.  The window is one HTTP answer plus
one Redis round trip; we prefer a rare duplicate to a lost payment confirmation.  The
opposite order (record first, then send) would lose messages instead.  A network error
or a 5xx is equally ambiguous (Telegram may have delivered it) and is retried by the queue.

429: the limiter pauses every sender for retry_after and the message is tried again (up
to ``flood_retries`` times in place; a very long retry_after goes back to the queue).
403: billing is told (``billing.mark_blocked``, enqueued with a key), the chat is
remembered as blocked and nothing more is sent to it until the user writes again.

Dedup keys: a job's ``args["key"]`` when it has one, else a hash of the task and its
arguments, so identical jobs (a redelivery, or the same notification enqueued twice)
make one message within the record's TTL (7 days).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ymds.bot import texts
from ymds.bot.access_notice import noticed
from ymds.bot.sale_alerts import SaleBatcher
from ymds.bot.shop_texts import contact_part
from ymds.bot.errors import BadRequest, Forbidden, RetryAfter
from ymds.bot.commands_lang import LanguagePreference
from ymds.billing.jobs import BillingClient, InvoiceOffers
from ymds.bot import jobs
from ymds.bot.jobs import (
    ADMIN_MESSAGES, NOTIFY_MESSAGES, AccessOutcome, AdminOutcomes, GrantAccess, Notify, NotifyAdmins, RevokeAccess,
    SendMessage, SendOutcome, Update, content_key,
)
from ymds.jobwire import typed_handler
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ymds.bot.access.wiring import AccessService
from ymds.bot.access.jobs import ACCESS_REMOVE, RemoveMember
from ymds.bot.access.texts import grace_text
from ymds.queue.errors import PermanentJobError
from ymds.util.clock import sleep

log = Logger()

RECORD_FOR = 30.0  # seconds a sent message's record is retried while Redis is unreachable

__all__ = ["Sender", "BotTasks", "invoice_buttons", "render_admin", "content_key", "NOTIFY_MESSAGES", "ADMIN_MESSAGES"]
INVITE_VALIDITY = 2 * 86400  # an invite link not used within two days lapses; /status gives a new one
_GONE = ("user not found", "participant_id_invalid", "user_not_participant", "member not found",
         "user is an administrator", "can't remove chat owner")


def keyboard(rows) -> dict | None:
    return {"inline_keyboard": rows} if rows else None


class _Counts(dict):
    """Outcome counts of this process's sends, mirrored into the /metrics registry."""

    def __init__(self, metrics=None):
        super().__init__(sent=0, duplicate=0, blocked=0, rejected=0, flood_waits=0)
        self._counter = None
        if metrics is not None:
            self._counter = metrics.counter("ymds_bot_messages", "Outgoing Telegram messages by outcome "
                                            "(sent, duplicate, blocked, rejected; flood_waits: 429 answers)",
                                            ["outcome"])

    def __setitem__(self, outcome, value):
        if self._counter is not None:
            self._counter.inc(value - self.get(outcome, 0), outcome=outcome)
        super().__setitem__(outcome, value)


class Sender:
    def __init__(self, api, limiter, store, queue, clock, flood_retries: int = 5, max_flood_wait: float = 60.0,
                 pacer=None, metrics=None):
        self.clock = clock
        self.api = api
        self.limiter = limiter
        self.pacer = pacer  # RedisPacer: the overall rate shared with other bot processes
        self.store = store
        self.queue = queue
        self.flood_retries = flood_retries
        self.max_flood_wait = max_flood_wait
        self.counters = _Counts(metrics)
        self._inflight: dict[str, Deferred] = {}

    async def send(self, key: str, chat_id: int, text: str, buttons=None) -> str:
        """Send once per ``key``: "sent", "duplicate", "blocked" or "rejected"."""
        # Two deliveries of one job running at once in this process: the second waits for
        # the first and then finds its record.
        while key in self._inflight:
            await self._inflight[key]
        done = self._inflight[key] = Deferred()
        try:
            return await self._send(key, chat_id, text, buttons)
        finally:
            del self._inflight[key]
            done.callback(None)

    async def _send(self, key: str, chat_id: int, text: str, buttons) -> str:
        if await self.store.is_blocked(chat_id):
            self.counters["blocked"] += 1
            return "blocked"
        if await self.store.was_sent(key):
            self.counters["duplicate"] += 1
            log.info("bot: message {key} was already sent; not again", key=key)
            return "duplicate"
        attempt = 0
        while True:
            attempt += 1
            await self.limiter.acquire(chat_id)
            if self.pacer is not None:
                await self.pacer.turn()
            try:
                message = await self.api.sendMessage(chat_id, text, keyboard(buttons))
            except RetryAfter as e:
                self.counters["flood_waits"] += 1
                self.limiter.pause(e.retry_after)
                log.warn("bot: flood control, all sending paused for {seconds:g}s", seconds=e.retry_after)
                if attempt >= self.flood_retries or e.retry_after > self.max_flood_wait:
                    raise
                continue
            except Forbidden:
                await self.chat_blocked(chat_id)
                return "blocked"
            except BadRequest as e:
                self.counters["rejected"] += 1
                if "can't parse" in e.description or "BUTTON" in e.description or "too long" in e.description:
                    # our own text is wrong: retrying cannot help, the dead letter shows it
                    raise PermanentJobError(f"Telegram refused message {key}: {e.description}") from None
                log.warn("bot: Telegram refused message {key} to {chat_id}: {description}",
                         key=key, chat_id=chat_id, description=e.description)
                return "rejected"
            break
        message_id = message.get("message_id") if isinstance(message, dict) else None
        await self._record_sent(key, message_id if message_id is not None else "?")
        self.counters["sent"] += 1
        return "sent"

    async def _record_sent(self, key: str, message_id: Any) -> None:
        """Telegram has the message: keep trying to record it while Redis is away (a failover
        takes seconds), because the job's acknowledgement waits for Redis too and a redelivery
        without the record would send it again.  After RECORD_FOR seconds, log and go on:
        failing the job would only send it again."""
        delay, waited = 0.2, 0.0
        while True:
            try:
                await self.store.mark_sent(key, message_id)
                return
            except Exception as e:
                if waited >= RECORD_FOR:
                    log.error("bot: sent {key} but could not record it ({error}); a redelivery would repeat it",
                              key=key, error=str(e) or type(e).__name__)
                    return
            await sleep(self.clock, delay)
            waited += delay
            delay = min(delay * 2, 2.0)

    async def chat_blocked(self, chat_id: int) -> None:
        # Billing first: if Redis fails between the two, the retry sends again, gets 403
        # again and tells billing again (the enqueue key makes that one job).
        self.counters["blocked"] += 1
        day = int(self.clock.seconds() // 86400)  # told again at most once a day if the user blocks, unblocks, blocks
        await BillingClient(self.queue).mark_blocked(chat_id, key=f"mark_blocked:{chat_id}:{day}")
        await self.store.set_blocked(chat_id)
        log.info("bot: chat {chat_id} blocked the bot; no more messages to it", chat_id=chat_id)


def _timestamp(value) -> float | None:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


class BotTasks:
    """Handlers of the ``bot`` queue: notify, notify_admins, grant_access, revoke_access,
    send (raw HTML, e.g. a broadcast) and update (an incoming Telegram update)."""

    def __init__(self, config, sender: Sender, api, store, queue, clock, limiter, handlers=None):
        self.config = config
        self.sender = sender
        self.api = api
        self.store = store
        self.queue = queue
        self.clock = clock
        self.limiter = limiter
        self.handlers = handlers
        self.access: AccessService | None = None  # ymds.bot.access.wiring.AccessService when paid chats are guarded (issue 15)

    def register(self, registry) -> None:
        registry.register(jobs.NOTIFY, typed_handler(Notify.from_wire, self.notify))
        # telegram.sale_alerts: sales arriving together make one owner message (ymds/bot/sale_alerts.py)
        registry.register(jobs.NOTIFY_ADMINS, typed_handler(NotifyAdmins.from_wire,
                                                            SaleBatcher(self, self.clock).wrap(self.notify_admins)))
        # a failed invitation tells the buyer and the owner at once (ymds/bot/access_notice.py)
        registry.register(jobs.GRANT_ACCESS, typed_handler(GrantAccess.from_wire, noticed(self, self.grant_access)))
        registry.register(jobs.REVOKE_ACCESS, typed_handler(RevokeAccess.from_wire, self.revoke_access))
        registry.register(jobs.SEND, typed_handler(SendMessage.from_wire, self.send))
        if self.handlers is not None:
            registry.register(jobs.UPDATE, typed_handler(Update.from_wire, self.update))
        if self.access is not None:
            registry.register(ACCESS_REMOVE, typed_handler(RemoveMember.from_wire, self.access.remove_member))

    async def language(self, chat_id: int) -> str:
        """/lang's choice, else the user's Telegram language_code, else telegram.language."""
        return await LanguagePreference(self.config, self.store).of(chat_id)

    def plan_title(self, plan, lang: str | None = None) -> str:
        found = self.config.plan(str(plan)) if plan is not None else None
        if found is None:
            return "" if plan is None else str(plan)
        return found.title_in(lang) if lang else found.title

    # --- notify -------------------------------------------------------------------------

    def render_notification(self, lang: str, message: str, params: dict) -> str:
        p = dict(params)
        if message == "payment_confirmed" and p.get("renewal") is True:
            message = "payment_renewed"  # "extended until", not the first purchase's words
        amount = p.get("amount")
        expected = p.get("expected", p.get("price"))
        title = p.get("plan_title") if isinstance(p.get("plan_title"), str) and p.get("plan_title") else None
        fields = {
            "plan": (self.plan_title(p.get("plan"), lang) if self.config.plan(str(p.get("plan"))) else None)
            or title or self.plan_title(p.get("plan")) or "—",
            "ends_at": texts.date(p.get("ends_at"), lang, self.config.server.timezone),
            "expires_at": texts.date(p.get("expires_at"), lang, self.config.server.timezone),
            "amount_html": texts.money(amount, lang),
            "amount_part_html": f" ({texts.money(amount, lang)})" if amount is not None else "",
            "expected_part_html": f" ({texts.money(expected, lang)})" if expected is not None else "",
            "contact_part_html": contact_part(self.config, lang),
            "code": p.get("code"),  # gift_code (issue 19)
        }
        return texts.render(lang, message, **fields)

    async def renew_buttons(self, chat_id: int, lang: str):
        """URL buttons to pay each plan, or None if billing does not answer now."""
        try:
            result = await BillingClient(self.queue).create_invoices(chat_id, chat_id)
        except Exception as e:
            log.warn("bot: no renew buttons for {chat_id}: {error}", chat_id=chat_id, error=str(e) or type(e).__name__)
            return None
        return invoice_buttons(result, lang, self.config)

    async def notify(self, job: Notify) -> SendOutcome:
        key = job.dedup_key()
        if await self.store.was_sent(key):
            return SendOutcome("duplicate")
        lang = await self.language(job.chat_id)
        buttons = None
        if job.message == "invite":  # Notify.from_wire checked the link
            buttons = [[{"text": texts.plain(lang, "invite_open"), "url": job.params["link"]}]]
        elif job.message in ("reminder", "expired"):
            buttons = await self.renew_buttons(job.chat_id, lang)
        text = self.render_notification(lang, job.message, dict(job.params))
        if job.message in ("reminder", "expired") and self.access is not None:
            text += "\n\n" + grace_text(lang, self.config.telegram.grace) if self.config.telegram.grace else ""
        return SendOutcome(await self.sender.send(key, job.chat_id, text, buttons))

    async def notify_admins(self, job: NotifyAdmins) -> AdminOutcomes:
        base = job.dedup_key()
        outcomes = {}
        for admin in self.config.telegram.admins:
            lang = await self.language(admin)
            text = render_admin(lang, job.message, dict(job.params))
            outcomes[str(admin)] = await self.sender.send(f"{base}:{admin}", admin, text)
        return AdminOutcomes(outcomes)

    async def send(self, job: SendMessage) -> SendOutcome:
        return SendOutcome(await self.sender.send(job.dedup_key(), job.chat_id, job.text, job.buttons))

    async def update(self, job: Update) -> None:
        await self.handlers.handle(job.update)
        return None

    # --- channel access -----------------------------------------------------------------

    async def grant_access(self, job: GrantAccess) -> AccessOutcome:
        chat_id = job.chat_id
        if self.access is not None:
            return await self.grant_join_links(job)
        channel = self.config.telegram.channel_id
        if not channel:
            return AccessOutcome(granted=False, reason="no channel configured")
        key = job.dedup_key()
        if await self.store.was_sent(key):
            return AccessOutcome(granted=True, outcome="duplicate")
        lang = await self.language(chat_id)
        link, expires = await self.invite_link(key, chat_id, _timestamp(job.ends_at))
        expires_iso = datetime.fromtimestamp(expires, timezone.utc).isoformat()
        text = texts.render(lang, "invite", expires_at=texts.date(expires_iso, lang, self.config.server.timezone))
        buttons = [[{"text": texts.plain(lang, "invite_open"), "url": link}]]
        return AccessOutcome(granted=True, outcome=await self.sender.send(key, chat_id, text, buttons))

    async def grant_join_links(self, job: GrantAccess) -> AccessOutcome:
        """Issue 15: the subscriber's one live join-request link to each chat their plan
        opens (the same links again while they stay valid), in one message."""
        assert self.access is not None
        key = job.dedup_key()
        if await self.store.was_sent(key):
            return AccessOutcome(granted=True, outcome="duplicate")
        try:
            links, expires = await self.channel_call(self.access.invites, job.chat_id, _timestamp(job.ends_at))
        except (BadRequest, Forbidden) as e:
            raise PermanentJobError(
                f"cannot create an invite link to a paid chat: {e.description}; make the bot an administrator "
                "there with the right to invite users (twistd ymds --check says which)") from None
        if not links:
            return AccessOutcome(granted=False, reason="no paid chat is covered")
        lang = await self.language(job.chat_id)
        text = self.access.expiry_text(lang, expires)
        return AccessOutcome(granted=True, outcome=await self.sender.send(key, job.chat_id, text,
                                                                          self.access.buttons(lang, links)))

    async def invite_link(self, key: str, chat_id: int, ends_at: float | None) -> tuple[str, int]:
        """A one-person link, the same one for every delivery of the same job."""
        now = self.clock.seconds()
        expires = int(now + INVITE_VALIDITY)
        if ends_at is not None:
            expires = int(max(now + 60, min(ends_at, expires)))
        known = await self.store.get_invite(key)
        if known:
            link, _, stamp = known.partition(" ")
            return link, int(stamp) if stamp.isdigit() else expires
        channel = self.config.telegram.channel_id
        try:
            result = await self.channel_call(self.api.createChatInviteLink, channel, member_limit=1,
                                             expire_date=expires, name=f"ymds {chat_id}"[:32])
        except (BadRequest, Forbidden) as e:
            raise PermanentJobError(
                f"cannot create an invite link for telegram.channel_id {channel}: {e.description}; "
                "make the bot an administrator of the channel with the right to invite users") from None
        link = result.get("invite_link") if isinstance(result, dict) else None
        if not isinstance(link, str) or not link.startswith("https://"):
            raise PermanentJobError("Telegram returned no invite link")
        stored = await self.store.remember_invite(key, f"{link} {expires}")
        link, _, stamp = stored.partition(" ")
        return link, int(stamp) if stamp.isdigit() else expires

    async def channel_call(self, method, *args, **kw):
        """A channel administration call: counted against the overall rate; a 429 pauses
        all sending and goes back to the queue, which tries again later."""
        await self.limiter.acquire(None)
        if self.sender.pacer is not None:
            await self.sender.pacer.turn()
        try:
            return await method(*args, **kw)
        except RetryAfter as e:
            self.limiter.pause(e.retry_after)
            raise

    async def revoke_access(self, job: RevokeAccess) -> AccessOutcome:
        chat_id = job.chat_id
        if self.access is not None:  # issue 15: every paid chat, the live links revoked too
            outcomes = await self.channel_call(self.access.revoke_everywhere, chat_id)
            if "failed" in outcomes:
                raise PermanentJobError(f"cannot remove {chat_id} from a paid chat; make the bot an administrator "
                                        "there with the right to ban users (twistd ymds --check says where)")
            return AccessOutcome(revoked=True, outcome="removed" if "removed" in outcomes else "not_member")
        channel = self.config.telegram.channel_id
        if not channel:
            return AccessOutcome(revoked=False, reason="no channel configured")
        for method in (self.api.banChatMember, self.api.unbanChatMember):
            try:
                await self.channel_call(method, channel, chat_id)
            except (BadRequest, Forbidden) as e:
                if any(word in e.description.lower() for word in _GONE):
                    log.info("bot: {chat_id} was not in the channel ({description})",
                             chat_id=chat_id, description=e.description)
                    return AccessOutcome(revoked=True, outcome="not_member")
                raise PermanentJobError(
                    f"cannot remove {chat_id} from telegram.channel_id {channel}: {e.description}; "
                    "make the bot an administrator of the channel with the right to ban users") from None
        log.info("bot: removed {chat_id} from the channel", chat_id=chat_id)
        return AccessOutcome(revoked=True, outcome="removed")


def invoice_buttons(offers: InvoiceOffers | None, lang: str, config: Any = None) -> list[list[dict[str, Any]]] | None:
    """One URL button per offer of billing's create_invoices (offers without an http(s) URL
    skipped); None when there is none."""
    rows = []
    for invoice in offers.invoices if offers is not None else ():
        url = invoice.url
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            continue
        title = str(invoice.title or invoice.plan or "")
        plan = config.plan(str(invoice.plan)) if config is not None and invoice.plan else None
        if plan is not None and title in (plan.title, plan.id):  # billing named it by the plan: say it in lang
            title = plan.title_in(lang)
        rows.append([{"text": texts.plain(lang, "plan_button", title=title, amount=texts.money(invoice.amount, lang)),
                      "url": url}])
    return rows or None


def render_admin(lang: str, message: str, params: dict) -> str:
    p = {k: v for k, v in params.items() if not k.endswith("_html")}
    amount = texts.money(p.pop("amount", None), lang)
    expected = texts.money(p.pop("expected", p.pop("price", None)), lang)
    if message == "donation":
        note = p.get("message")
        part = f": «{texts.escape(note)}»" if note else ""
        return texts.render(lang, "admin_donation", amount_html=amount, name=p.get("name") or "—", message_part_html=part)
    return texts.render(lang, f"admin_{message}", amount_html=amount, expected_html=expected, **p)
