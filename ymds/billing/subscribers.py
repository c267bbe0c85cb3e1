"""Subscriber management: list, grant, extend and revoke, shared by ``ymds subscribers``
(which runs it over the ledger it opens) and the REST API (billing's
``list_subscribers``/``change_subscriber`` tasks).

A change that opens access (the chat had none before) sends the user a one-person invite,
as a paid period does; a revoke of an active subscription removes the user from the plan's
chats through the bot's revoke_access.  Both bot jobs carry keys, so repeating a change's
follow-up never sends twice.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from ymds.billing.invoices import iso
from ymds.billing.jobs import IdempotencyKeyReused
from ymds.billing.ledger import IdempotencyConflict, Subscription
from ymds.billing.subscribers_jobs import (
    CHANGE_SUBSCRIBER, LIST_SUBSCRIBERS, ChangeSubscriber, ListSubscribers, SubscriberChanged, SubscriberList,
    SubscriberView,
)
from ymds.bot.jobs import BotClient, GrantAccess, RevokeAccess
from ymds.jobwire import InvalidTaskArgs, typed_handler

log = Logger()


def view(sub: Subscription, now: float) -> SubscriberView:
    """A subscription as the API and ``--json`` show it."""
    return SubscriberView(sub.chat_id, sub.plan, iso(sub.ends_at), sub.active(now))


class SubscriberTasks:
    """``SubscriberTasks(config, ledger, queue, clock)``: the handlers; ``register(registry)``
    adds them to the billing queue."""

    def __init__(self, config: Any, ledger: Any, queue: Any, clock: Any):
        self.config = config
        self.ledger = ledger
        self.bot = BotClient(queue)
        self.clock = clock

    def register(self, registry: Any) -> None:
        registry.register(LIST_SUBSCRIBERS, typed_handler(ListSubscribers.from_wire, self.list))
        registry.register(CHANGE_SUBSCRIBER, typed_handler(ChangeSubscriber.from_wire, self.change))

    async def list(self, query: ListSubscribers) -> SubscriberList:
        now = self.clock.seconds()
        subs = await self.ledger.subscribers.subscribers(now, status=query.status, plan=query.plan,
                                                         expiring_within=query.expiring_within, limit=query.limit)
        return SubscriberList(tuple(view(s, now) for s in subs))

    async def change(self, job: ChangeSubscriber) -> SubscriberChanged:
        """Make the change in the ledger (with its audit event), then enqueue the bot's
        access job.  InvalidTaskArgs for an unknown plan; IdempotencyKeyReused when the
        request key came before with another request (a repeat of the same one changes
        nothing and answers the subscription as it is)."""
        now = self.clock.seconds()
        try:
            change = await self._apply(job, now)
        except IdempotencyConflict as e:
            raise IdempotencyKeyReused(str(e)) from None
        if change is None:
            return SubscriberChanged(False)
        if not change.repeated:
            await self._follow_up(job, change.after, change.was_active, now)
            log.info("subscribers: {action} for chat {chat_id} by {by}", action=job.action, chat_id=job.chat_id,
                     by=job.by or "-")
        return SubscriberChanged(True, view(change.after, now))

    async def _apply(self, job: ChangeSubscriber, now: float) -> Any:
        subscribers = self.ledger.subscribers
        if job.action == "revoke":
            return await subscribers.revoke(job.chat_id, now, by=job.by, request=job.request)
        days, plan = job.days, job.plan
        if plan is not None:
            found = self.config.plan(plan)
            if found is None:
                known = ", ".join(p.id for p in self.config.plans) or "none configured"
                raise InvalidTaskArgs(f"unknown plan {plan[:64]!r}; plans: {known}")
            days = days or found.days
        assert days is not None  # ChangeSubscriber.from_wire: grant has a plan or days, extend has days
        return await subscribers.grant(job.chat_id, days, now, plan=plan, by=job.by,
                                       only_existing=job.action == "extend", request=job.request)

    async def _follow_up(self, job: ChangeSubscriber, after: Subscription, was_active: bool, now: float) -> None:
        if job.action == "revoke":
            if was_active:
                await self.bot.revoke_access(RevokeAccess(job.chat_id, key=f"subscriber_revoke:{job.chat_id}:{now:.0f}"))
        elif not was_active:
            ends_at = iso(after.ends_at)
            await self.bot.grant_access(GrantAccess(job.chat_id, ends_at,
                                                    key=f"subscriber_grant:{job.chat_id}:{after.ends_at:.0f}"))
