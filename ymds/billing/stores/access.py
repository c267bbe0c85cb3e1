"""Access to paid chats: live invite links (compare-and-swap on the primary key), members
the bot has seen, and removals due when a subscription's grace ends."""

from __future__ import annotations

from typing import Any, Iterable

from twisted.internet.defer import Deferred

from ymds.billing.access_model import AccessInvite, AccessMember, AccessRemoval
from ymds.billing.database import Database

_INVITE_COLS = "user_id, chat_id, invite_link, expire_date, created_at"
_MEMBER_COLS = "chat_id, user_id, status, joined_at, seen_at"
_REMOVAL_COLS = "user_id, chat_id, ends_at, due_at"
_JOINED = ("creator", "administrator", "member")


def _invite(row: Any) -> AccessInvite:
    return AccessInvite(int(row[0]), int(row[1]), str(row[2]), int(row[3]), float(row[4]))


def _member(row: Any) -> AccessMember:
    return AccessMember(int(row[0]), int(row[1]), str(row[2]), None if row[3] is None else float(row[3]),
                        float(row[4]))


def _removal(row: Any) -> AccessRemoval:
    return AccessRemoval(int(row[0]), int(row[1]), float(row[2]), float(row[3]))


class AccessStore:
    """IAccessStore over SQL."""

    def __init__(self, db: Database):
        self._db = db

    # --- invite links -----------------------------------------------------------------------

    def live_invite(self, user_id: int, chat_id: int) -> Deferred[AccessInvite | None]:
        def q(txn: Any) -> AccessInvite | None:
            row = self._db.one(txn, f"SELECT {_INVITE_COLS} FROM access_invites WHERE user_id = ? AND chat_id = ?",
                               (user_id, chat_id))
            return None if row is None else _invite(row)
        return self._db.run(q, write=False)

    def swap_invite(self, user_id: int, chat_id: int, expected: str | None, new_link: str | None,
                    expire_date: int | None, now: float) -> Deferred[bool]:
        def q(txn: Any) -> bool:
            if expected is None and new_link is None:
                return self._db.one(txn, "SELECT 1 FROM access_invites WHERE user_id = ? AND chat_id = ?",
                                    (user_id, chat_id)) is None
            if expected is None:  # the primary key refuses a second record
                cur = self._db.execute(
                    txn, f"INSERT INTO access_invites ({_INVITE_COLS}) VALUES (?, ?, ?, ?, ?) "
                         "ON CONFLICT DO NOTHING", (user_id, chat_id, new_link, int(expire_date or 0), now))
            elif new_link is None:
                cur = self._db.execute(txn, "DELETE FROM access_invites WHERE user_id = ? AND chat_id = ? "
                                            "AND invite_link = ?", (user_id, chat_id, expected))
            else:
                cur = self._db.execute(
                    txn, "UPDATE access_invites SET invite_link = ?, expire_date = ?, created_at = ? "
                         "WHERE user_id = ? AND chat_id = ? AND invite_link = ?",
                    (new_link, int(expire_date or 0), now, user_id, chat_id, expected))
            return bool(cur.rowcount == 1)
        return self._db.run(q)

    # --- members seen -----------------------------------------------------------------------

    def member_seen(self, chat_id: int, user_id: int, status: str, at: float) -> Deferred[bool]:
        joined = at if status in _JOINED else None

        def q(txn: Any) -> bool:
            # Updates are handled by several workers at once: the newest sighting wins.
            cur = self._db.execute(
                txn, f"INSERT INTO access_members ({_MEMBER_COLS}) VALUES (?, ?, ?, ?, ?) "
                     "ON CONFLICT (chat_id, user_id) DO UPDATE SET status = excluded.status, "
                     "joined_at = COALESCE(excluded.joined_at, access_members.joined_at), seen_at = excluded.seen_at "
                     "WHERE access_members.seen_at <= excluded.seen_at",
                (chat_id, user_id, str(status)[:20], joined, at))
            return bool(cur.rowcount == 1)
        return self._db.run(q)

    def members(self, chat_id: int | None = None, present_only: bool = False,
                limit: int = 10_000) -> Deferred[list[AccessMember]]:
        where, params = [], []
        if chat_id is not None:
            where.append("chat_id = ?")
            params.append(chat_id)
        if present_only:
            where.append("status IN ('creator', 'administrator', 'member')")
        clause = (" WHERE " + " AND ".join(where)) if where else ""

        def q(txn: Any) -> list[AccessMember]:
            rows = self._db.all(txn, f"SELECT {_MEMBER_COLS} FROM access_members{clause} ORDER BY chat_id, user_id "
                                     "LIMIT ?", (*params, int(limit)))
            return [_member(r) for r in rows]
        return self._db.run(q, write=False)

    # --- removals when the grace ends ----------------------------------------------------------

    def schedule_removals(self, user_id: int, chat_ids: Iterable[int], ends_at: float,
                          due_at: float) -> Deferred[int]:
        chats = sorted(set(int(c) for c in chat_ids))

        def q(txn: Any) -> int:
            new = 0
            for chat_id in chats:
                cur = self._db.execute(
                    txn, f"INSERT INTO access_removals ({_REMOVAL_COLS}) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (user_id, chat_id, ends_at, due_at))
                new += cur.rowcount == 1
            return new
        return self._db.run(q)

    def claim_removals(self, now: float, limit: int = 1000, stale: float = 600.0) -> Deferred[list[AccessRemoval]]:
        def q(txn: Any) -> list[AccessRemoval]:
            rows = self._db.all(txn, f"SELECT {_REMOVAL_COLS} FROM access_removals WHERE due_at <= ? "
                                     "AND (claimed_at IS NULL OR claimed_at < ?) ORDER BY due_at, user_id, chat_id "
                                     "LIMIT ?", (now, now - stale, int(limit)))
            claimed = []
            for row in rows:  # conditional: another process may have claimed it since the SELECT
                cur = self._db.execute(txn, "UPDATE access_removals SET claimed_at = ? WHERE user_id = ? AND chat_id = ? "
                                            "AND ends_at = ? AND (claimed_at IS NULL OR claimed_at < ?)",
                                       (now, row[0], row[1], row[2], now - stale))
                if cur.rowcount == 1:
                    claimed.append(_removal(row))
            return claimed
        return self._db.run(q)

    def finish_removal(self, removal: AccessRemoval) -> Deferred[bool]:
        def q(txn: Any) -> bool:
            return bool(self._db.execute(txn, "DELETE FROM access_removals WHERE user_id = ? AND chat_id = ? "
                                              "AND ends_at = ?",
                                         (removal.user_id, removal.chat_id, removal.ends_at)).rowcount == 1)
        return self._db.run(q)

    def unclaim_removal(self, removal: AccessRemoval) -> Deferred[bool]:
        def q(txn: Any) -> bool:
            return bool(self._db.execute(txn, "UPDATE access_removals SET claimed_at = NULL WHERE user_id = ? "
                                              "AND chat_id = ? AND ends_at = ?",
                                         (removal.user_id, removal.chat_id, removal.ends_at)).rowcount == 1)
        return self._db.run(q)

    def pending_removals(self, user_id: int | None = None) -> Deferred[list[AccessRemoval]]:
        clause, params = ("WHERE user_id = ? ", (user_id,)) if user_id is not None else ("", ())

        def q(txn: Any) -> list[AccessRemoval]:
            rows = self._db.all(txn, f"SELECT {_REMOVAL_COLS} FROM access_removals {clause}"
                                     "ORDER BY due_at, user_id, chat_id", params)
            return [_removal(r) for r in rows]
        return self._db.run(q, write=False)
