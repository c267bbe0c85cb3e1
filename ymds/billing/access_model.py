"""The ledger's records of access to paid chats (issue 15) and the store's interface.

Kept apart from ymds.billing.ledger so that the access feature is one set of modules:
this one (records + :class:`IAccessStore`), ymds.billing.stores.access (SQL),
ymds.billing.access (billing's handlers and sweep) and ymds.billing.access_jobs (the wire).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol, runtime_checkable

from twisted.internet.defer import Deferred

#: chat_member statuses that mean "in the chat" (restricted counts only with is_member,
#: which the bot resolves before recording: it records "member" then)
MEMBER_STATUSES = ("creator", "administrator", "member")


@dataclass(frozen=True)
class AccessInvite:
    """The one live join-request link of (user, chat)."""
    user_id: int
    chat_id: int
    invite_link: str
    expire_date: int  # Unix time the link stops working
    created_at: float


@dataclass(frozen=True)
class AccessMember:
    """What the bot last saw of a person in a paid chat."""
    chat_id: int
    user_id: int
    status: str
    joined_at: float | None
    seen_at: float

    @property
    def present(self) -> bool:
        return self.status in MEMBER_STATUSES


@dataclass(frozen=True)
class AccessRemoval:
    """A removal due at ``due_at`` (the subscription end ``ends_at`` plus the grace)."""
    user_id: int
    chat_id: int
    ends_at: float
    due_at: float


@runtime_checkable
class IAccessStore(Protocol):
    """Invite links, members seen and removals due, for paid chats."""

    def live_invite(self, user_id: int, chat_id: int) -> Deferred[AccessInvite | None]:
        """The link on record for (user, chat), or None."""

    def swap_invite(self, user_id: int, chat_id: int, expected: str | None, new_link: str | None,
                    expire_date: int | None, now: float) -> Deferred[bool]:
        """Compare-and-swap: replace the record when its link is ``expected`` (None: there is
        no record) by ``new_link`` (None: delete it).  True when done; False, changing
        nothing, when the record differs (another process won).  At most one record per
        (user, chat) ever exists (primary key)."""

    def member_seen(self, chat_id: int, user_id: int, status: str, at: float) -> Deferred[bool]:
        """Record a status seen at ``at`` (the update's date); an older sighting than the
        one on record changes nothing (False)."""

    def members(self, chat_id: int | None = None, present_only: bool = False,
                limit: int = 10_000) -> Deferred[list[AccessMember]]:
        """Members seen (of one chat or all), by chat then user."""

    def schedule_removals(self, user_id: int, chat_ids: Iterable[int], ends_at: float,
                          due_at: float) -> Deferred[int]:
        """Record that (user, chat) is to be removed at ``due_at`` for the subscription end
        ``ends_at``; repeating it changes nothing.  Fires with how many were new."""

    def claim_removals(self, now: float, limit: int = 1000, stale: float = 600.0) -> Deferred[list[AccessRemoval]]:
        """Claim removals due by ``now`` (unclaimed, or claimed more than ``stale`` seconds
        ago by a process that never finished); two processes never claim the same one."""

    def finish_removal(self, removal: AccessRemoval) -> Deferred[bool]:
        """Drop a claimed removal (done, or no longer needed)."""

    def unclaim_removal(self, removal: AccessRemoval) -> Deferred[bool]:
        """Give a claim back (its job could not be handed over)."""

    def pending_removals(self, user_id: int | None = None) -> Deferred[list[AccessRemoval]]:
        """Removals not yet finished (all, or one user's), by due time."""
