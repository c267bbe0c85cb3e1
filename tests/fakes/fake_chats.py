"""Chats of the fake Bot API: channels and supergroups modelled the way Telegram behaves.

A chat has members with statuses (``creator``, ``administrator`` with rights, ``member``,
``left``, ``kicked`` with ``until_date``), invite links (``member_limit``, ``expire_date``,
``creates_join_request``, ``name``, revocation, one primary link) and pending join
requests.  Every change of a member's status produces a ``chat_member`` update (only when
the bot is an administrator of the chat, as on Telegram) or, for the bot itself, a
``my_chat_member`` update; a join through a link that creates join requests produces a
``chat_join_request`` update (only when the bot may invite users).  Whether an update is
then delivered depends on the poller's ``allowed_updates`` (see FakeBotAPI).

Bot API methods are the ``m_<method>`` functions; the test acts through
:meth:`ChatModel.user_joins_by_link`, :meth:`admin_adds`, :meth:`user_leaves`,
:meth:`make_admin` and :meth:`add_chat`.  Error texts are Telegram's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from tests.fakes.fake_answers import _Answer, _bool_param, _int_param

OWNER_ID = 1000  # the creator of every chat unless add_chat says otherwise

COMMON_RIGHTS = ("can_manage_chat", "can_delete_messages", "can_manage_video_chats", "can_restrict_members",
                 "can_promote_members", "can_change_info", "can_invite_users", "can_post_stories",
                 "can_edit_stories", "can_delete_stories")
CHANNEL_RIGHTS = ("can_post_messages", "can_edit_messages")
GROUP_RIGHTS = ("can_pin_messages", "can_manage_topics")

MEMBER_STATUSES = ("creator", "administrator", "member")
NOT_ENOUGH_LINK_RIGHTS = "Bad Request: not enough rights to manage chat invite link"
NOT_ENOUGH_BAN_RIGHTS = "Bad Request: not enough rights to restrict/unrestrict chat member"


class JoinRefused(ValueError):
    """A user's attempt to join failed; ``reason`` is Telegram's error (INVITE_HASH_EXPIRED, ...)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Member:
    status: str = "left"
    rights: dict[str, bool] = field(default_factory=dict)
    until_date: int = 0
    joined_by: str | None = None  # the invite link used, for member_limit


@dataclass
class FakeChat:
    id: int
    type: str
    title: str
    creator: int
    members: dict[int, Member] = field(default_factory=dict)
    requests: dict[int, dict] = field(default_factory=dict)  # user id -> {"date", "link"}
    primary: str | None = None

    def rights_names(self) -> tuple[str, ...]:
        return COMMON_RIGHTS + (CHANNEL_RIGHTS if self.type == "channel" else GROUP_RIGHTS)

    def public(self) -> dict:
        return {"id": self.id, "type": self.type, "title": self.title}


class ChatModel:
    """The chats one fake bot can see.  ``known`` is FakeBotAPI.channels (a chat id missing
    from it answers "chat not found"); ``links_log`` is FakeBotAPI.invite_links; ``emit``
    queues an update of a kind, subject to allowed_updates."""

    def __init__(self, clock, bot_user: dict, known: set[int], links_log: list[dict],
                 bans: list[tuple[str, int, int]], emit: Callable[[str, dict], None]):
        self.clock = clock
        self.bot = bot_user
        self.known = known
        self.links_log = links_log
        self.emit = emit
        self.chats: dict[int, FakeChat] = {}
        self.links: dict[str, dict] = {}
        self.users: dict[int, dict] = {}
        self.bans = bans

    # --- the world --------------------------------------------------------------------------

    def now(self) -> int:
        return int(self.clock.seconds())

    def add_chat(self, chat_id: int, type: str = "channel", title: str = "Paid channel",
                 creator: int = OWNER_ID, bot_rights: Iterable[str] | None = None,
                 bot_status: str = "administrator") -> FakeChat:
        """A chat (``type`` "channel" or "supergroup") where the bot has ``bot_status``; as an
        administrator it has ``bot_rights`` (default: every right)."""
        chat = FakeChat(int(chat_id), type, title, creator)
        chat.members[creator] = Member("creator")
        names = chat.rights_names()
        rights = set(names) if bot_rights is None else set(bot_rights)
        chat.members[self.bot["id"]] = Member(bot_status, {r: r in rights for r in names}
                                              if bot_status == "administrator" else {})
        self.chats[chat.id] = chat
        self.known.add(chat.id)
        return chat

    def chat(self, chat_id: int) -> FakeChat:
        if chat_id not in self.known:
            raise _Answer(400, "Bad Request: chat not found")
        chat = self.chats.get(chat_id)
        if chat is None:  # a channel given to FakeBotAPI(channels=...): the bot has every right
            chat = self.add_chat(chat_id)
        return chat

    def user(self, user_id: int) -> dict:
        if user_id == self.bot["id"]:
            return self.bot
        return self.users.setdefault(user_id, {"id": user_id, "is_bot": False, "first_name": f"User {user_id}"})

    def member(self, chat: FakeChat, user_id: int) -> Member:
        m = chat.members.get(user_id)
        if m is None:
            return Member()
        if m.status == "kicked" and m.until_date and m.until_date <= self.now():
            m.status, m.until_date = "left", 0  # a temporary ban ended
        return m

    def member_object(self, chat: FakeChat, user_id: int) -> dict:
        m = self.member(chat, user_id)
        obj: dict = {"status": m.status, "user": self.user(user_id)}
        if m.status == "creator":
            obj["is_anonymous"] = False
        elif m.status == "administrator":
            obj.update({"can_be_edited": False, "is_anonymous": False})
            obj.update({r: bool(m.rights.get(r)) for r in chat.rights_names()})
        elif m.status == "kicked":
            obj["until_date"] = m.until_date
        return obj

    def status(self, chat_id: int, user_id: int) -> str:
        return self.member(self.chat(chat_id), user_id).status

    def members(self, chat_id: int) -> list[int]:
        """User ids (not the bot) who are in the chat now, any member status."""
        chat = self.chat(chat_id)
        return sorted(u for u in chat.members if u != self.bot["id"] and self.member(chat, u).status in MEMBER_STATUSES)

    def _bot_is_admin(self, chat: FakeChat) -> bool:
        return self.member(chat, self.bot["id"]).status in ("creator", "administrator")

    def _change(self, chat: FakeChat, user_id: int, new: Member, actor: int,
                link: dict | None = None, via_join_request: bool = False) -> None:
        """Set a member's status and produce the update Telegram would send."""
        old_obj = self.member_object(chat, user_id)
        chat.members[user_id] = new
        new_obj = self.member_object(chat, user_id)
        if old_obj == new_obj:
            return
        payload: dict = {"chat": chat.public(), "from": self.user(actor), "date": self.now(),
                         "old_chat_member": old_obj, "new_chat_member": new_obj}
        if link is not None:
            payload["invite_link"] = self.link_object(link)
        if via_join_request:
            payload["via_join_request"] = True
        if user_id == self.bot["id"]:
            self.emit("my_chat_member", payload)
        elif self._bot_is_admin(chat):
            self.emit("chat_member", payload)

    # --- what the test does -----------------------------------------------------------------

    def user_joins_by_link(self, user_id: int, invite_link: str, first_name: str | None = None,
                           language_code: str | None = None) -> str:
        """The user opens ``invite_link``: "joined", or "requested" (a join request is
        pending); raises JoinRefused with Telegram's reason otherwise."""
        user = self.user(user_id)
        if first_name:
            user["first_name"] = first_name
        if language_code:
            user["language_code"] = language_code
        link = self.links.get(invite_link)
        if link is None or link["is_revoked"] or (link.get("expire_date") and link["expire_date"] <= self.now()):
            raise JoinRefused("INVITE_HASH_EXPIRED")
        chat = self.chat(link["chat_id"])
        m = self.member(chat, user_id)
        if m.status == "kicked":
            raise JoinRefused("USER_BANNED_IN_CHANNEL")
        if m.status in MEMBER_STATUSES:
            raise JoinRefused("USER_ALREADY_PARTICIPANT")
        if link["creates_join_request"]:
            if user_id not in chat.requests:
                chat.requests[user_id] = {"date": self.now(), "link": invite_link}
                if self._bot_can(chat, "can_invite_users"):
                    self.emit("chat_join_request", {
                        "chat": chat.public(), "from": user, "user_chat_id": user_id, "date": self.now(),
                        "invite_link": self.link_object(link)})
            return "requested"
        limit = link.get("member_limit")
        if limit is not None and self._joined_by(chat, invite_link) >= limit:
            raise JoinRefused("USERS_TOO_MUCH")
        self._change(chat, user_id, Member("member", joined_by=invite_link), user_id, link=link)
        return "joined"

    def admin_adds(self, chat_id: int, user_id: int, by: int | None = None) -> None:
        """An administrator (default: the creator) adds the user: a member at once, even if banned."""
        chat = self.chat(chat_id)
        if self.member(chat, user_id).status in MEMBER_STATUSES:
            raise JoinRefused("USER_ALREADY_PARTICIPANT")
        chat.requests.pop(user_id, None)
        self._change(chat, user_id, Member("member"), chat.creator if by is None else by)

    def user_leaves(self, chat_id: int, user_id: int) -> bool:
        """The user (or the bot) leaves; False when not a member (the creator cannot leave)."""
        chat = self.chat(chat_id)
        if self.member(chat, user_id).status not in ("administrator", "member"):
            return False
        self._change(chat, user_id, Member("left"), user_id)
        return True

    def make_admin(self, chat_id: int, user_id: int, rights: Iterable[str] = ("can_invite_users",
                                                                             "can_restrict_members")) -> None:
        """The creator makes the user (or the bot) an administrator with exactly ``rights``."""
        chat = self.chat(chat_id)
        names = chat.rights_names()
        wanted = set(rights)
        unknown = wanted - set(names)
        if unknown:
            raise ValueError(f"unknown rights {sorted(unknown)}")
        chat.requests.pop(user_id, None)
        self._change(chat, user_id, Member("administrator", {r: r in wanted for r in names}), chat.creator)

    def pending_requests(self, chat_id: int) -> list[int]:
        return sorted(self.chat(chat_id).requests)

    def primary_link(self, chat_id: int) -> str:
        """The chat's primary link (what the owner shares by hand); made on first use."""
        chat = self.chat(chat_id)
        if chat.primary is None:
            chat.primary = self._new_link(chat, is_primary=True)["invite_link"]
        return chat.primary

    # --- links --------------------------------------------------------------------------------

    def _joined_by(self, chat: FakeChat, invite_link: str) -> int:
        return sum(1 for u, m in chat.members.items()
                   if m.joined_by == invite_link and self.member(chat, u).status in MEMBER_STATUSES)

    def link_object(self, link: dict) -> dict:
        obj = {k: v for k, v in link.items() if k != "chat_id"}
        if link["creates_join_request"]:
            chat = self.chats.get(link["chat_id"])
            obj["pending_join_request_count"] = sum(
                1 for r in (chat.requests.values() if chat else ()) if r["link"] == link["invite_link"])
        return obj

    def _new_link(self, chat: FakeChat, is_primary: bool = False, creates_join_request: bool = False,
                  member_limit: int | None = None, expire_date: int | None = None, name: str | None = None) -> dict:
        url = f"https://t.me/+fake{len(self.links_log) + 1:06d}{abs(chat.id) % 1000:03d}"
        link: dict = {"chat_id": chat.id, "invite_link": url, "creator": self.bot,
                      "creates_join_request": creates_join_request, "is_primary": is_primary, "is_revoked": False}
        if member_limit is not None:
            link["member_limit"] = member_limit
        if expire_date is not None:
            link["expire_date"] = expire_date
        if name:
            link["name"] = name
        self.links_log.append(link)
        self.links[url] = link
        return link

    def _link_options(self, params: dict) -> dict:
        member_limit = _int_param(params, "member_limit", default=None)
        if member_limit is not None and not 1 <= member_limit <= 99999:
            raise _Answer(400, "Bad Request: member limit must be between 1 and 99999")
        creates_join_request = _bool_param(params, "creates_join_request")
        if creates_join_request and member_limit is not None:
            raise _Answer(400, "Bad Request: member limit can't be specified for links requiring "
                               "administrator approval")
        expire_date = _int_param(params, "expire_date", default=None)
        if expire_date is not None and expire_date <= self.now():
            raise _Answer(400, "Bad Request: EXPIRE_DATE_INVALID")
        name = params.get("name")
        name = str(name)[:32] if name else None
        return {"member_limit": member_limit, "creates_join_request": creates_join_request,
                "expire_date": expire_date, "name": name}

    def _bot_can(self, chat: FakeChat, right: str) -> bool:
        m = self.member(chat, self.bot["id"])
        return m.status == "creator" or (m.status == "administrator" and bool(m.rights.get(right)))

    def _need(self, params: dict, right: str, refusal: str) -> FakeChat:
        chat = self.chat(_int_param(params, "chat_id", required=True))
        status = self.member(chat, self.bot["id"]).status
        if status in ("left", "kicked"):
            kind = "channel" if chat.type == "channel" else "supergroup"
            raise _Answer(403, f"Forbidden: bot is not a member of the {kind} chat")
        if not self._bot_can(chat, right):
            raise _Answer(400, refusal)
        return chat

    def _link_of(self, chat: FakeChat, params: dict) -> dict:
        link = self.links.get(str(params.get("invite_link") or ""))
        if link is None or link["chat_id"] != chat.id:
            raise _Answer(400, "Bad Request: INVITE_HASH_EXPIRED")
        return link

    # --- Bot API methods ------------------------------------------------------------------

    def m_getChat(self, params):
        chat = self.chat(_int_param(params, "chat_id", required=True))
        if self.member(chat, self.bot["id"]).status in ("left", "kicked"):
            raise _Answer(400, "Bad Request: chat not found")
        return {**chat.public(), "accent_color_id": 0, "max_reaction_count": 11, "accepted_gift_types": {}}

    def m_getChatMember(self, params):
        chat = self.chat(_int_param(params, "chat_id", required=True))
        user_id = _int_param(params, "user_id", required=True)
        if self.member(chat, self.bot["id"]).status in ("left", "kicked"):  # it cannot see the chat
            raise _Answer(400, "Bad Request: chat not found")
        return self.member_object(chat, user_id)

    def m_getChatAdministrators(self, params):
        chat = self.chat(_int_param(params, "chat_id", required=True))
        return [self.member_object(chat, u) for u in sorted(chat.members)
                if self.member(chat, u).status in ("creator", "administrator") and not self.user(u)["is_bot"]]

    def m_getChatMemberCount(self, params):
        chat = self.chat(_int_param(params, "chat_id", required=True))
        return sum(1 for u in chat.members if self.member(chat, u).status in MEMBER_STATUSES)

    def m_createChatInviteLink(self, params):
        chat = self._need(params, "can_invite_users", NOT_ENOUGH_LINK_RIGHTS)
        return self.link_object(self._new_link(chat, **self._link_options(params)))

    def m_editChatInviteLink(self, params):
        chat = self._need(params, "can_invite_users", NOT_ENOUGH_LINK_RIGHTS)
        link = self._link_of(chat, params)
        if link["is_revoked"] or link["is_primary"]:
            raise _Answer(400, "Bad Request: INVITE_HASH_EXPIRED")
        options = self._link_options(params)
        for key in ("member_limit", "expire_date", "name"):  # fields left out go back to none
            link.pop(key, None)
            if options[key] is not None:
                link[key] = options[key]
        link["creates_join_request"] = options["creates_join_request"]
        return self.link_object(link)

    def m_revokeChatInviteLink(self, params):
        chat = self._need(params, "can_invite_users", NOT_ENOUGH_LINK_RIGHTS)
        link = self._link_of(chat, params)
        link["is_revoked"] = True
        if link["is_primary"]:  # the chat gets a new primary link at once
            chat.primary = self._new_link(chat, is_primary=True)["invite_link"]
        return self.link_object(link)

    def m_exportChatInviteLink(self, params):
        chat = self._need(params, "can_invite_users", NOT_ENOUGH_LINK_RIGHTS)
        if chat.primary is not None:
            self.links[chat.primary]["is_revoked"] = True
        chat.primary = self._new_link(chat, is_primary=True)["invite_link"]
        return chat.primary

    def _request(self, params) -> tuple[FakeChat, int, dict]:
        chat = self._need(params, "can_invite_users", "Bad Request: CHAT_ADMIN_REQUIRED")
        user_id = _int_param(params, "user_id", required=True)
        request = chat.requests.get(user_id)
        if request is None:
            if self.member(chat, user_id).status in MEMBER_STATUSES:
                raise _Answer(400, "Bad Request: USER_ALREADY_PARTICIPANT")
            raise _Answer(400, "Bad Request: HIDE_REQUESTER_MISSING")
        return chat, user_id, request

    def m_approveChatJoinRequest(self, params):
        chat, user_id, request = self._request(params)
        del chat.requests[user_id]
        link = self.links.get(request["link"])
        self._change(chat, user_id, Member("member", joined_by=request["link"]), self.bot["id"], link=link)
        return True

    def m_declineChatJoinRequest(self, params):
        chat, user_id, _ = self._request(params)
        del chat.requests[user_id]
        return True

    def m_banChatMember(self, params):
        chat = self._need(params, "can_restrict_members", NOT_ENOUGH_BAN_RIGHTS)
        user_id = _int_param(params, "user_id", required=True)
        until = _int_param(params, "until_date", default=0)
        if until and not 30 <= until - self.now() <= 366 * 86400:
            until = 0  # Telegram: under 30 s or over 366 days means forever
        if user_id == self.bot["id"]:
            raise _Answer(400, "Bad Request: can't restrict self")
        status = self.member(chat, user_id).status
        if status == "creator":
            raise _Answer(400, "Bad Request: can't remove chat owner")
        if status == "administrator":
            raise _Answer(400, "Bad Request: user is an administrator of the chat")
        chat.requests.pop(user_id, None)
        self.bans.append(("banChatMember", chat.id, user_id))
        self._change(chat, user_id, Member("kicked", until_date=until), self.bot["id"])
        return True

    def m_unbanChatMember(self, params):
        chat = self._need(params, "can_restrict_members", NOT_ENOUGH_BAN_RIGHTS)
        user_id = _int_param(params, "user_id", required=True)
        only_if_banned = _bool_param(params, "only_if_banned")
        status = self.member(chat, user_id).status
        if status in ("creator", "administrator") and not only_if_banned:
            raise _Answer(400, "Bad Request: user is an administrator of the chat")
        self.bans.append(("unbanChatMember", chat.id, user_id))
        if status == "kicked":
            self._change(chat, user_id, Member("left"), self.bot["id"])
        elif status == "member" and not only_if_banned:
            # Telegram: "if the user is a member of the chat they will also be removed"
            self._change(chat, user_id, Member("left"), self.bot["id"])
        return True
