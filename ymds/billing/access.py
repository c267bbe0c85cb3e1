"""Billing's side of access to paid chats (issue 15).

- :class:`AccessTasks`: the ``access_*`` handlers the bot calls (does a subscription cover
  a chat, the live invite link's compare-and-swap, members seen).
- :class:`AccessExpiry`: when a subscription ends, a removal from every chat of its plan is
  recorded, due when ``telegram.grace`` has passed; each billing sweep hands due removals to
  the bot (``access_remove``, keyed, so at most one job per removal) unless the subscription
  was renewed meanwhile (renewal in grace keeps the member).

A subscription covers a chat while ``ends_at + grace`` is in the future and its plan opens
the chat (ymds.billing.access_config.plan_chats): during the grace the member is kept and a
returning member is approved, so that a late renewal changes nothing for them.
"""
from __future__ import annotations

from typing import Any, Callable

from twisted.logger import Logger

from ymds.billing import access_jobs as jobs
from ymds.billing.access_config import plan_chats
from ymds.billing.access_jobs import AccessQuery, Covers, InviteRecord, MemberSeen, SwapInvite, Swapped
from ymds.billing.access_model import AccessRemoval
from ymds.bot.access.jobs import AccessBotClient, RemoveMember
from ymds.jobwire import HandlerTable

log = Logger()


async def covers(config: Any, ledger: Any, user_id: int, chat_id: int, now: float) -> bool:
    """True when ``user_id``'s subscription, with the grace, covers ``chat_id`` at ``now``."""
    sub = await ledger.subscriptions.subscription(user_id)
    if sub is None or chat_id not in plan_chats(config, sub.plan):
        return False
    return bool(sub.ends_at + config.telegram.grace > now)


class AccessTasks:
    """The billing queue's access handlers; ``config`` is read at each call."""

    def __init__(self, config: Any, ledger: Any, clock: Any):
        self.config = config
        self.ledger = ledger
        self.clock = clock

    def handlers(self) -> HandlerTable:
        """Task name -> (from_wire, handler), for BillingTasks.handlers."""
        return {
            jobs.ACCESS_COVERS: (AccessQuery.from_wire, self.covers),
            jobs.ACCESS_LIVE_INVITE: (AccessQuery.from_wire, self.live_invite),
            jobs.ACCESS_SWAP_INVITE: (SwapInvite.from_wire, self.swap_invite),
            jobs.ACCESS_MEMBER_SEEN: (MemberSeen.from_wire, self.member_seen),
        }

    async def covers(self, q: AccessQuery) -> Covers:
        return Covers(await covers(self.config, self.ledger, q.user_id, q.chat_id, self.clock.seconds()))

    async def live_invite(self, q: AccessQuery) -> InviteRecord | None:
        found = await self.ledger.access.live_invite(q.user_id, q.chat_id)
        return None if found is None else InviteRecord(found.invite_link, found.expire_date)

    async def swap_invite(self, job: SwapInvite) -> Swapped:
        return Swapped(await self.ledger.access.swap_invite(job.user_id, job.chat_id, job.expected, job.new_link,
                                                            job.expire_date, self.clock.seconds()))

    async def member_seen(self, job: MemberSeen) -> None:
        await self.ledger.access.member_seen(job.chat_id, job.user_id, job.status, float(job.at))


class AccessExpiry:
    """Removals from paid chats when subscriptions (and their grace) end; used by
    ymds.billing.timers.  ``config()`` gives the configuration in force at each call."""

    def __init__(self, config: Callable[[], Any], ledger: Any, queue: Any, batch: int = 1000):
        self.config = config
        self.ledger = ledger
        self.queue = queue
        self.batch = batch

    async def schedule(self, user_id: int, plan: str | None, ends_at: float) -> int:
        """Record the removals of an ended subscription (idempotent); how many were new."""
        config = self.config()
        chats = plan_chats(config, plan)
        if not chats:
            return 0
        return int(await self.ledger.access.schedule_removals(user_id, chats, ends_at,
                                                              ends_at + config.telegram.grace))

    async def sweep(self, now: float) -> int:
        """Hand the removals due by ``now`` to the bot; how many were handed over."""
        handed = 0
        while True:
            due = await self.ledger.access.claim_removals(now, limit=self.batch)
            for removal in due:
                handed += await self._hand_over(removal, now)
            if len(due) < self.batch:
                return handed

    async def _hand_over(self, removal: AccessRemoval, now: float) -> int:
        if await covers(self.config(), self.ledger, removal.user_id, removal.chat_id, now):
            await self.ledger.access.finish_removal(removal)  # renewed in grace: they stay
            return 0
        key = f"access_remove:{removal.user_id}:{removal.chat_id}:{int(removal.ends_at)}"
        try:
            await AccessBotClient(self.queue).remove_member(
                RemoveMember(removal.chat_id, removal.user_id, "expired", key))
        except Exception:
            await self.ledger.access.unclaim_removal(removal)
            raise
        await self.ledger.access.finish_removal(removal)
        return 1
