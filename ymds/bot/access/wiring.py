"""The door, joined to the bot role: billing answers who may be in a paid chat, the ledger
keeps the live links, removals are counted and summed up for the owner.

:class:`AccessService` (a Service in the bot's MultiService) owns the DoorKeeper, the
InviteIssuer and the RemovalDigest.  On start it checks the bot's rights in every paid
chat (one log line per problem); on stop it stops the digest.  The bot's update handler
hands it chat_member / chat_join_request / my_chat_member updates; the bot's tasks hand it
``grant_access`` (the subscriber's links, one per chat the plan opens) and
``access_remove`` (grace ended, ``ymds members --fix``).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ymds.billing.access_jobs import AccessClient, MemberSeen, SwapInvite
from ymds.bot.access.api import BotCalls, Clock
from ymds.bot.access.digest import RemovalDigest
from ymds.bot.access.doorkeeper import ALLOWED_UPDATES, DoorKeeper
from ymds.bot.access.invites import InviteIssuer, LiveInvite, PressLimiter
from ymds.bot.access.jobs import RemoveMember, RemoveOutcome
from ymds.bot.access.rights import check_bot_rights
from ymds.bot.access.texts import say
from ymds.bot.jobs import BotClient, SendMessage

log = Logger()

#: what the poller asks Telegram for when paid chats are guarded
POLLED_UPDATES = ("message", "callback_query", *ALLOWED_UPDATES)


class BillingPolicy:
    """AccessPolicy over billing (``access_covers``, no cache: a subscription that ended
    stops covering at the next update) and ``telegram.admins``."""

    def __init__(self, client: AccessClient, admins: Iterable[int]):
        self._client = client
        self._admins = frozenset(admins)

    async def covers(self, user_id: int, chat_id: int) -> bool:
        return bool(await self._client.covers(user_id, chat_id))

    async def is_admin(self, user_id: int) -> bool:
        return user_id in self._admins


class LedgerInviteStore:
    """InviteStore over billing's ledger (compare-and-swap there, so the one-live-link rule
    holds across bot processes)."""

    def __init__(self, client: AccessClient):
        self._client = client

    async def live_invite(self, user_id: int, chat_id: int) -> LiveInvite | None:
        found = await self._client.live_invite(user_id, chat_id)
        return None if found is None else LiveInvite(user_id, chat_id, found.invite_link, found.expire_date)

    async def swap_invite(self, user_id: int, chat_id: int, expected: str | None, new: LiveInvite | None) -> bool:
        job = SwapInvite(user_id, chat_id, expected, None if new is None else new.invite_link,
                         None if new is None else new.expire_date)
        return bool(await self._client.swap_invite(job))


def member_status(member: object) -> str | None:
    """The status to record for a ChatMember ("member" for a restricted member)."""
    if not isinstance(member, dict):
        return None
    status = member.get("status")
    if status == "restricted":
        return "member" if member.get("is_member") is True else "left"
    return status if status in ("creator", "administrator", "member", "left", "kicked") else None


class AccessService(Service):
    """Guards ``paid_chats`` for the bot role (see the module docstring)."""

    name = "bot-access"

    def __init__(self, config: Any, caller: Any, queue: Any, clock: Clock, paid_chats: Iterable[int],
                 metrics: Any = None, call_timeout: float = 10.0, digest_window: float = 60.0):
        self.config = config
        self.queue = queue
        self.clock = clock
        self.paid_chats = tuple(paid_chats)
        self.api = BotCalls(caller)
        client = AccessClient(queue, timeout=call_timeout)
        self.client = client
        language = config.telegram.language
        self.digest = RemovalDigest(clock, self.alert, language=language, window=digest_window)
        self._counter = None
        if metrics is not None:
            self._counter = metrics.counter("ymds_access_removed", "Members removed from paid chats without a "
                                            "subscription, by how they got in (link, added, approved, expired, "
                                            "other)", ["reason"])
        self.policy = BillingPolicy(client, config.telegram.admins)
        self.keeper = DoorKeeper(self.api, self.policy, self.paid_chats, clock,
                                 self.digest, count_removal=self.count_removal, alert=self.alert, language=language)
        self.issuer = InviteIssuer(self.api, LedgerInviteStore(client), clock)
        self.presses = PressLimiter(clock, presses=3, period=60.0)
        self.alerts_sent = 0
        self.startup_check: Deferred | None = None

    # --- service --------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.startup_check = Deferred.fromCoroutine(self.check_rights())

    def stopService(self) -> None:
        super().stopService()
        self.digest.stop()

    async def check_rights(self) -> int:
        """Log one line per missing right in a paid chat; how many problems."""
        try:
            problems = await check_bot_rights(self.api, self.paid_chats)
        except Exception as e:  # getMe failed: the poller reports Telegram problems itself
            log.warn("access: the bot's rights were not checked: {error}", error=str(e) or type(e).__name__)
            return -1
        for problem in problems:
            log.error("access: {line}", line=problem.line())
        return len(problems)

    def count_removal(self, reason: str) -> None:
        if self._counter is not None:
            self._counter.inc(reason=reason)

    async def alert(self, text: str) -> None:
        """One message to each of telegram.admins through the bot queue (paced, sent once)."""
        stamp = int(self.clock.seconds() * 1000)
        self.alerts_sent += 1
        for admin in self.config.telegram.admins:
            await BotClient(self.queue).send(SendMessage(admin, text, key=f"access_alert:{stamp}:{admin}"))

    # --- what the bot hands over ------------------------------------------------------------

    async def handle_update(self, update: dict) -> str:
        """A chat_member / chat_join_request / my_chat_member update: recorded (members
        seen) and decided.  Raises on a failure that may pass (the job is tried again)."""
        change = update.get("chat_member")
        if isinstance(change, dict):
            await self._record(change)
        return await self.keeper.handle(update)

    async def _record(self, change: dict) -> None:
        chat = change.get("chat")
        new = change.get("new_chat_member")
        user = new.get("user") if isinstance(new, dict) else None
        chat_id = chat.get("id") if isinstance(chat, dict) else None
        user_id = user.get("id") if isinstance(user, dict) else None
        status = member_status(new)
        date = change.get("date")
        if (chat_id not in self.paid_chats or not isinstance(user_id, int) or status is None
                or not isinstance(date, int)):
            return
        await self.client.member_seen(MemberSeen(int(chat_id), user_id, status, date))

    async def remove_member(self, job: RemoveMember) -> RemoveOutcome:
        """``access_remove``: remove unless covered; the user's live link there is revoked."""
        outcome = await self.keeper.remove_uncovered(job.chat_id, str(job.chat_id), job.user_id, job.reason)
        if outcome in ("removed", "gone"):
            await self.forget_invite(job.user_id, job.chat_id)
        log.info("access: {reason} removal from {chat_id}: {outcome}", reason=job.reason, chat_id=job.chat_id,
                 outcome=outcome)
        return RemoveOutcome(outcome)

    async def revoke_everywhere(self, user_id: int) -> list[str]:
        """The owner revoked the subscription (``revoke_access``): removed from every paid
        chat at once, no grace, links revoked; the outcome per chat."""
        outcomes = []
        for chat_id in self.paid_chats:
            outcome = await self.keeper.remove_uncovered(chat_id, str(chat_id), user_id, "expired", check_cover=False)
            await self.forget_invite(user_id, chat_id)
            outcomes.append(outcome)
        return outcomes

    async def forget_invite(self, user_id: int, chat_id: int) -> None:
        """Revoke and drop the user's live link (a renewal then makes a new one)."""
        await self.issuer.forget(user_id, chat_id)

    async def invites(self, user_id: int, ends_at: float | None) -> tuple[list[tuple[int, str]], int]:
        """The user's live link to every paid chat their subscription covers, and when new
        links stop working ([] when none is covered)."""
        now = self.clock.seconds()
        expires = int(now + 2 * 86400)
        if ends_at is not None:
            expires = int(max(now + 60, min(ends_at + self.config.telegram.grace, expires)))
        links = []
        for chat_id in self.paid_chats:
            if await self.policy.covers(user_id, chat_id):
                invite, _ = await self.issuer.invite(user_id, chat_id, expires)
                links.append((chat_id, invite.invite_link))
        return links, expires

    def buttons(self, language: str, links: list[tuple[int, str]]) -> list[list[dict[str, str]]]:
        """One URL button per chat ("Join", or "Join: chat 1", "Join: chat 2", ...)."""
        if len(links) == 1:
            return [[{"text": say(language, "invite_button_one"), "url": links[0][1]}]]
        return [[{"text": say(language, "invite_button", n=n + 1), "url": link}] for n, (_, link) in enumerate(links)]

    def expiry_text(self, language: str, expires: int) -> str:
        from ymds.bot import texts
        moment = datetime.fromtimestamp(expires, timezone.utc).isoformat()
        return say(language, "invite", expires_at=texts.date(moment, language, self.config.server.timezone))
