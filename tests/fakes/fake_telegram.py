"""A fake Telegram Bot API: a real HTTP server (twisted.web) that answers like Telegram.

Serves ``/bot<token>/<method>`` with Telegram-shaped JSON for getMe, deleteWebhook,
getUpdates (long polling, fed by the test with :meth:`FakeBotAPI.user_sends` and
:meth:`FakeBotAPI.push_update`), sendMessage (validates HTML and inline keyboards like
Telegram does), answerCallbackQuery, and the chat methods of tests.fakes.fake_chats
(getChat, getChatMember, getChatAdministrators, invite links, join requests, bans), whose
membership changes become chat_member / my_chat_member / chat_join_request updates.

getUpdates remembers the last ``allowed_updates`` like Telegram (absent: unchanged; an
empty list: the default, which leaves out chat_member).  An update the chats make is only
queued when its kind is allowed at that moment, and only allowed kinds are delivered.

Faults are programmable: :meth:`fail_next` (any error code, 429 with retry_after, 500, 409),
:meth:`block_chat` (403 for that chat), :meth:`slow` (delayed answers), ``webhook_url``
(getUpdates answers 409 until deleteWebhook), and two concurrent getUpdates make the
older one fail with 409 as on Telegram.

Telegram's flood limits are enforced on the injected clock (answers 429 with
retry_after and counts ``throttled``).  Telegram documents "about 30 messages per second
overall, about one per second per chat (short bursts allowed), 20 per minute per group";
the fake models each as a token bucket: the long-run rate is exact, and a burst of up to
``burst`` messages passes (30 overall, 2 per chat, 20 per group), which also absorbs the
scheduling jitter between the sender's clock and the arrival of its requests here.

Run standalone for the end-to-end harness::

    python -m tests.fakes.fake_telegram --port 8081 --token 123:ABC...

with a JSON control API under ``/_control/`` (see :class:`ControlResource`).
"""

from __future__ import annotations

import html
import itertools
import json
import math
import re
from dataclasses import dataclass
from urllib.parse import parse_qs

from twisted.internet import defer
from twisted.web import resource, server

from tests.fakes.fake_answers import _Answer, _int_param
from tests.fakes.fake_chats import ChatModel, JoinRefused

DEFAULT_TOKEN = "123456789:TEST-token_for-the-fake-bot-api-000"
BOT_USER = {"id": 123456789, "is_bot": True, "first_name": "ymds test bot", "username": "ymds_test_bot",
            "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}

ALLOWED_UPDATES = ("message", "edited_message", "channel_post", "edited_channel_post", "business_connection",
                   "business_message", "edited_business_message", "deleted_business_messages", "message_reaction",
                   "message_reaction_count", "inline_query", "chosen_inline_result", "callback_query",
                   "shipping_query", "pre_checkout_query", "purchased_paid_media", "poll", "poll_answer",
                   "my_chat_member", "chat_member", "chat_join_request", "chat_boost", "removed_chat_boost")
# What a bot gets when it never named allowed_updates, or named an empty list.
DEFAULT_UPDATES = tuple(u for u in ALLOWED_UPDATES if u not in ("chat_member", "message_reaction",
                                                                 "message_reaction_count"))


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` stored; one token per message."""

    def __init__(self, clock, rate: float, burst: float):
        self.clock = clock
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = clock.seconds()

    def _refill(self) -> None:
        now = self.clock.seconds()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait(self) -> float:
        """Seconds until one token is available (0 when available now)."""
        self._refill()
        return 0.0 if self.tokens >= 1 - 1e-9 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self._refill()
        self.tokens -= 1

    def idle(self) -> bool:
        self._refill()
        return self.tokens >= self.burst


@dataclass
class Limits:
    overall_rate: float = 30.0
    overall_burst: float = 30.0
    chat_rate: float = 1.0
    chat_burst: float = 2.0
    group_rate: float = 20.0 / 60.0
    group_burst: float = 20.0


_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6});")
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s+[A-Za-z-]+\s*=\s*(?:\"[^\"<>]*\"|'[^'<>]*'))*)\s*>")
_HTML_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
              "tg-spoiler", "span", "blockquote", "tg-emoji"}


def check_html(text: str) -> str:
    """Validate Telegram HTML like the Bot API does; return the visible text."""
    visible: list[str] = []
    stack: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "&":
            m = _ENTITY.match(text, i)
            if not m:
                raise _Answer(400, f"Bad Request: can't parse entities: Can't find end of the entity starting at byte offset {len(text[:i].encode())}")
            visible.append(html.unescape(m.group(0)))
            i = m.end()
        elif ch == "<":
            m = _TAG.match(text, i)
            if not m:
                raise _Answer(400, f"Bad Request: can't parse entities: Unexpected end of name token at byte offset {len(text[:i].encode())}")
            closing, name, attrs = m.group(1), m.group(2).lower(), m.group(3)
            if name not in _HTML_TAGS:
                raise _Answer(400, f"Bad Request: can't parse entities: Unsupported start tag \"{name}\" at byte offset {len(text[:i].encode())}")
            if closing:
                if not stack or stack[-1] != name:
                    raise _Answer(400, f"Bad Request: can't parse entities: Unmatched end tag at byte offset {len(text[:i].encode())}, expected \"</{stack[-1] if stack else ''}>\", found \"</{name}>\"")
                stack.pop()
            else:
                if name == "a" and "href" not in attrs:
                    raise _Answer(400, "Bad Request: can't parse entities: a tag without href")
                stack.append(name)
            i = m.end()
        elif ch == ">":
            raise _Answer(400, f"Bad Request: can't parse entities: Unexpected character '>' at byte offset {len(text[:i].encode())}")
        else:
            visible.append(ch)
            i += 1
    if stack:
        raise _Answer(400, f"Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"{stack[-1]}\"")
    return "".join(visible)


def check_inline_keyboard(markup) -> None:
    if isinstance(markup, str):
        try:
            markup = json.loads(markup)
        except ValueError:
            raise _Answer(400, "Bad Request: can't parse reply keyboard markup JSON object") from None
    if not isinstance(markup, dict) or not isinstance(markup.get("inline_keyboard"), list):
        raise _Answer(400, "Bad Request: can't parse inline keyboard button: field \"inline_keyboard\" must be an Array")
    for row in markup["inline_keyboard"]:
        if not isinstance(row, list):
            raise _Answer(400, "Bad Request: can't parse inline keyboard button: InlineKeyboardButton must be an Object")
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str) or not button["text"]:
                raise _Answer(400, "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard")
            kinds = [k for k in ("url", "callback_data") if k in button]
            if len(kinds) != 1:
                raise _Answer(400, "Bad Request: can't parse inline keyboard button: exactly one of url, callback_data expected")
            if "url" in button and not re.match(r"^(https?|tg)://\S+$", str(button["url"])):
                raise _Answer(400, "Bad Request: BUTTON_URL_INVALID")
            if "callback_data" in button:
                data = button["callback_data"]
                if not isinstance(data, str) or not 1 <= len(data.encode()) <= 64:
                    raise _Answer(400, "Bad Request: BUTTON_DATA_INVALID")


class FakeBotAPI(resource.Resource):
    """The fake; mount it as the root of a Site (``api_url`` = ``http://127.0.0.1:<port>``)."""

    def __init__(self, clock, token: str = DEFAULT_TOKEN, enforce_limits: bool = True,
                 limits: Limits | None = None, channels=(), control: bool = False, first_update_id: int = 700000):
        super().__init__()
        self.clock = clock
        self.token = token
        self.enforce_limits = enforce_limits
        self.limits = limits or Limits()
        self.channels = set(channels)
        self.control = control
        self.webhook_url = ""
        # What happened: every call, every message sent, other actions.
        self.calls: list[tuple[str, dict]] = []
        self.sent: list[dict] = []
        self.invite_links: list[dict] = []
        self.bans: list[tuple[str, int, int]] = []  # (method, chat_id, user_id)
        self.callback_answers: list[dict] = []
        self.my_commands: dict[str, list[dict]] = {}  # setMyCommands: language_code ("" default) -> menu
        self.throttled = 0  # 429 answers provoked by exceeding the limits
        self.errors_answered: list[tuple[str, int]] = []
        # Updates not yet confirmed by an offset; long polls waiting for one.
        self._updates: list[dict] = []
        self._next_update_id = first_update_id
        self._poll: tuple[server.Request, defer.Deferred, object, dict] | None = None
        self._faults: list[tuple[str, _Answer]] = []
        self._slow: dict[str, float] = {}
        self._blocked: set[int] = set()
        self._unknown: set[int] = set()
        self._message_ids: dict[int, itertools.count] = {}
        self._overall = TokenBucket(clock, self.limits.overall_rate, self.limits.overall_burst)
        self._chat_buckets: dict[int, TokenBucket] = {}
        self._group_buckets: dict[int, TokenBucket] = {}
        self._callback_ids = itertools.count(1)
        self._delayed: set = set()
        # Telegram remembers the last allowed_updates a poller named (None: the default).
        self.allowed_updates: list[str] | None = None
        self.suppressed_updates: list[str] = []  # kinds of updates not made: not allowed when they happened
        self.chat_model = ChatModel(clock, BOT_USER, self.channels, self.invite_links, self.bans, self._emit)

    def close(self) -> None:
        """Drop slow answers and the waiting long poll (their clients are going away)."""
        for call in list(self._delayed):
            if call.active():
                call.cancel()
        self._delayed.clear()
        if self._poll is not None:
            _, waiting, timer, _ = self._poll
            self._poll = None
            if timer.active():
                timer.cancel()

    # --- what the test does --------------------------------------------------------------

    def push_update(self, update: dict) -> dict:
        """Queue any update (the test may pass malformed ones); fills in update_id if absent."""
        if isinstance(update, dict) and "update_id" not in update:
            update = {"update_id": self._next_update_id, **update}
        if isinstance(update, dict) and isinstance(update.get("update_id"), int):
            self._next_update_id = max(self._next_update_id, update["update_id"] + 1)
        self._updates.append(update)
        self._wake_poll()
        return update

    def _user(self, user_id: int, first_name: str, language_code: str | None) -> dict:
        user = {"id": user_id, "is_bot": False, "first_name": first_name}
        if language_code:
            user["language_code"] = language_code
        return user

    def _chat(self, chat_id: int, first_name: str) -> dict:
        if chat_id < 0:
            return {"id": chat_id, "type": "supergroup" if chat_id < -1000000000000 else "group", "title": "Test group"}
        return {"id": chat_id, "type": "private", "first_name": first_name}

    def user_sends(self, chat_id: int, text: str, user_id: int | None = None, first_name: str = "Test",
                   language_code: str | None = None) -> dict:
        """The user ``user_id`` (default: the private chat's id) writes ``text`` in ``chat_id``."""
        user_id = user_id if user_id is not None else (chat_id if chat_id > 0 else 4242)
        message = {"message_id": self._message_id(chat_id), "from": self._user(user_id, first_name, language_code),
                   "chat": self._chat(chat_id, first_name), "date": int(self.clock.seconds()), "text": text}
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return self.push_update({"message": message})

    def user_clicks(self, chat_id: int, data: str, message_id: int | None = None, user_id: int | None = None,
                    first_name: str = "Test") -> dict:
        """The user presses an inline button carrying ``data`` under a bot message."""
        user_id = user_id if user_id is not None else (chat_id if chat_id > 0 else 4242)
        if message_id is None:
            mine = self.messages_to(chat_id)
            message_id = mine[-1]["message_id"] if mine else 1
        query = {"id": str(next(self._callback_ids) * 1000003), "from": self._user(user_id, first_name, None),
                 "message": {"message_id": message_id, "from": BOT_USER, "chat": self._chat(chat_id, first_name),
                             "date": int(self.clock.seconds()), "text": "..."},
                 "chat_instance": str(abs(chat_id) * 7), "data": data}
        return self.push_update({"callback_query": query})

    def fail_next(self, method: str, error_code: int, description: str | None = None,
                  retry_after: int | None = None, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` ("*" for any) fail with this error."""
        if description is None:
            description = {400: "Bad Request: test fault", 403: "Forbidden: bot was blocked by the user",
                           409: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                           429: f"Too Many Requests: retry after {retry_after}", 500: "Internal Server Error",
                           502: "Bad Gateway"}.get(error_code, "test fault")
        for _ in range(times):
            self._faults.append((method, _Answer(error_code, description, retry_after)))

    def slow(self, method: str, seconds: float) -> None:
        """Answer ``method`` only after ``seconds`` (0 removes the delay)."""
        if seconds > 0:
            self._slow[method] = seconds
        else:
            self._slow.pop(method, None)

    def block_chat(self, chat_id: int) -> None:
        """The user of ``chat_id`` blocked the bot: sendMessage answers 403."""
        self._blocked.add(int(chat_id))

    def unblock_chat(self, chat_id: int) -> None:
        self._blocked.discard(int(chat_id))

    def forget_chat(self, chat_id: int) -> None:
        """``chat_id`` does not exist: 400 chat not found."""
        self._unknown.add(int(chat_id))

    # Chats (see tests.fakes.fake_chats): the test's side of membership.

    def add_chat(self, chat_id: int, **kw):
        """A channel or supergroup; the bot is an administrator with every right unless told."""
        return self.chat_model.add_chat(chat_id, **kw)

    def user_joins_by_link(self, user_id: int, invite_link: str, **kw) -> str:
        """"joined" or "requested"; raises JoinRefused (expired, revoked, over the limit, banned)."""
        return self.chat_model.user_joins_by_link(user_id, invite_link, **kw)

    def admin_adds(self, chat_id: int, user_id: int, by: int | None = None) -> None:
        self.chat_model.admin_adds(chat_id, user_id, by)

    def user_leaves(self, chat_id: int, user_id: int) -> bool:
        return self.chat_model.user_leaves(chat_id, user_id)

    def make_admin(self, chat_id: int, user_id: int, rights=("can_invite_users", "can_restrict_members")) -> None:
        self.chat_model.make_admin(chat_id, user_id, rights)

    def member_status(self, chat_id: int, user_id: int) -> str:
        return self.chat_model.status(chat_id, user_id)

    def members(self, chat_id: int) -> list[int]:
        return self.chat_model.members(chat_id)

    def _allowed_now(self) -> tuple[str, ...]:
        return tuple(self.allowed_updates) if self.allowed_updates else DEFAULT_UPDATES

    def _emit(self, kind: str, payload: dict) -> None:
        """An update made by the chats: like Telegram, only if its kind is allowed now."""
        if kind not in self._allowed_now():
            self.suppressed_updates.append(kind)
            return
        self.push_update({kind: payload})

    # --- what the test reads ---------------------------------------------------------------

    def messages_to(self, chat_id: int) -> list[dict]:
        return [m for m in self.sent if m["chat_id"] == chat_id]

    def texts_to(self, chat_id: int) -> list[str]:
        return [m["text"] for m in self.messages_to(chat_id)]

    def calls_of(self, method: str) -> list[dict]:
        return [params for (name, params) in self.calls if name == method]

    @property
    def pending_updates(self) -> int:
        return len(self._updates)

    # --- HTTP -----------------------------------------------------------------------------

    def getChild(self, path: bytes, request):
        if self.control and path == b"_control":
            return ControlResource(self)
        if path.startswith(b"bot"):
            return _MethodResource(self, path[3:].decode("utf-8", "replace"))
        return resource.NoResource()

    def render(self, request):
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({"ok": False, "error_code": 404, "description": "Not Found"}).encode()

    def handle(self, token: str, method: str, params: dict):
        """The answer for one call: a (status, JSON) pair or a Deferred of one."""
        if token != self.token:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        self.calls.append((method, params))
        handler = getattr(self, "_m_" + method, None) or getattr(self.chat_model, "m_" + method, None)
        if handler is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
        try:
            for i, (name, fault) in enumerate(self._faults):
                if name in (method, "*"):
                    del self._faults[i]
                    raise fault
            result = handler(params)
        except _Answer as answer:
            self.errors_answered.append((method, answer.code))
            return answer.code, answer.json()
        if isinstance(result, defer.Deferred):
            return result
        return 200, {"ok": True, "result": result}

    def _message_id(self, chat_id: int) -> int:
        counter = self._message_ids.setdefault(chat_id, itertools.count(1))
        return next(counter)

    # --- methods ------------------------------------------------------------------------------

    def _m_getMe(self, params):
        return BOT_USER

    _COMMAND_NAME = re.compile(r"^[a-z0-9_]{1,32}$")

    def _m_setMyCommands(self, params):
        """Telegram's checks: 0-100 commands, lower-case names of 1-32 characters,
        descriptions of 1-256; a two-letter language_code or none (the default menu)."""
        commands = params.get("commands")
        if isinstance(commands, str):
            try:
                commands = json.loads(commands)
            except ValueError:
                raise _Answer(400, "Bad Request: can't parse commands JSON object") from None
        if not isinstance(commands, list) or len(commands) > 100:
            raise _Answer(400, "Bad Request: commands must be an array of at most 100 BotCommand")
        for c in commands:
            if (not isinstance(c, dict) or not self._COMMAND_NAME.fullmatch(str(c.get("command", "")))
                    or not isinstance(c.get("description"), str) or not 1 <= len(c["description"]) <= 256):
                raise _Answer(400, "Bad Request: BOT_COMMAND_INVALID")
        language = params.get("language_code") or ""
        if language and not re.fullmatch(r"[a-z]{2}", str(language)):
            raise _Answer(400, "Bad Request: invalid language code specified")
        self.my_commands[str(language)] = [{"command": c["command"], "description": c["description"]}
                                           for c in commands]
        return True

    def _m_getMyCommands(self, params):
        return self.my_commands.get(str(params.get("language_code") or ""), [])

    def _m_deleteWebhook(self, params):
        self.webhook_url = ""
        if str(params.get("drop_pending_updates", "")).lower() == "true" or params.get("drop_pending_updates") is True:
            self._updates.clear()
        return True

    def _m_getUpdates(self, params):
        if self.webhook_url:
            raise _Answer(409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first")
        offset = _int_param(params, "offset", default=None)
        limit = max(1, min(100, _int_param(params, "limit", default=100)))
        timeout = max(0, _int_param(params, "timeout", default=0))
        allowed = params.get("allowed_updates")
        if isinstance(allowed, str):
            try:
                allowed = json.loads(allowed)
            except ValueError:
                raise _Answer(400, "Bad Request: can't parse allowed_updates JSON array") from None
        if allowed is not None and (not isinstance(allowed, list) or not all(a in ALLOWED_UPDATES for a in allowed)):
            raise _Answer(400, "Bad Request: allowed_updates must be an array of update types")
        if allowed is not None:  # absent: the previous setting stays; [] goes back to the default
            self.allowed_updates = list(allowed) or None
        if offset is not None:
            if offset < 0:
                self._updates = self._updates[offset:]
            else:
                self._updates = [u for u in self._updates
                                 if not (isinstance(u, dict) and isinstance(u.get("update_id"), int)) or u["update_id"] >= offset]
        # Updates of kinds not allowed now are dropped; junk without a known kind is
        # delivered (the bot must cope with it).
        allowed_now = self._allowed_now()
        self._updates = [u for u in self._updates if not isinstance(u, dict) or any(k in u for k in allowed_now)
                         or not any(k in ALLOWED_UPDATES for k in u)]
        if self._poll is not None:
            _, waiting, timer, _ = self._poll
            self._poll = None
            if timer.active():
                timer.cancel()
            waiting.callback((409, _Answer(409, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running").json()))
        if self._updates or timeout == 0:
            return self._updates[:limit]
        waiting: defer.Deferred = defer.Deferred()
        timer = self.clock.callLater(timeout, self._poll_timeout, waiting)
        self._poll = (None, waiting, timer, {"limit": limit})
        return waiting

    def _poll_timeout(self, waiting) -> None:
        if self._poll is not None and self._poll[1] is waiting:
            self._poll = None
            waiting.callback((200, {"ok": True, "result": []}))

    def _wake_poll(self) -> None:
        if self._poll is None:
            return
        _, waiting, timer, opts = self._poll
        self._poll = None
        if timer.active():
            timer.cancel()
        waiting.callback((200, {"ok": True, "result": self._updates[:opts["limit"]]}))

    def poll_gone(self, waiting) -> None:
        """The long-polling client disconnected."""
        if self._poll is not None and self._poll[1] is waiting:
            _, _, timer, _ = self._poll
            self._poll = None
            if timer.active():
                timer.cancel()

    def _check_limits(self, chat_id: int) -> None:
        if not self.enforce_limits:
            return
        chat = self._chat_buckets.get(chat_id) or TokenBucket(self.clock, self.limits.chat_rate, self.limits.chat_burst)
        buckets = [self._overall, chat]
        group = None
        if chat_id < 0:
            group = self._group_buckets.get(chat_id) or TokenBucket(self.clock, self.limits.group_rate, self.limits.group_burst)
            buckets.append(group)
        wait = max(b.wait() for b in buckets)
        if wait > 0:
            self.throttled += 1
            retry_after = max(1, math.ceil(wait))
            raise _Answer(429, f"Too Many Requests: retry after {retry_after}", retry_after)
        for b in buckets:
            b.take()
        self._chat_buckets[chat_id] = chat
        if group is not None:
            self._group_buckets[chat_id] = group
        if len(self._chat_buckets) > 4096:  # keep the fake's own memory bounded
            self._chat_buckets = {k: v for k, v in self._chat_buckets.items() if not v.idle()}

    def _m_sendMessage(self, params):
        chat_id = _int_param(params, "chat_id", required=True)
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _Answer(400, "Bad Request: message text is empty")
        parse_mode = params.get("parse_mode")
        if parse_mode not in (None, "", "HTML"):
            raise _Answer(400, f"Bad Request: unsupported parse_mode {parse_mode!r}")
        visible = check_html(text) if parse_mode == "HTML" else text
        if not visible.strip():
            raise _Answer(400, "Bad Request: message text is empty")
        if len(visible) > 4096:
            raise _Answer(400, "Bad Request: message is too long")
        markup = params.get("reply_markup")
        if markup is not None:
            check_inline_keyboard(markup)
            if isinstance(markup, str):
                markup = json.loads(markup)
        if chat_id in self._unknown:
            raise _Answer(400, "Bad Request: chat not found")
        if chat_id in self._blocked:
            raise _Answer(403, "Forbidden: bot was blocked by the user")
        self._check_limits(chat_id)
        message_id = self._message_id(chat_id)
        record = {"method": "sendMessage", "chat_id": chat_id, "text": text, "visible": visible,
                  "reply_markup": markup, "message_id": message_id, "at": self.clock.seconds()}
        self.sent.append(record)
        return {"message_id": message_id, "from": BOT_USER, "chat": self._chat(chat_id, "Test"),
                "date": int(self.clock.seconds()), "text": visible}

    def _m_answerCallbackQuery(self, params):
        query_id = params.get("callback_query_id")
        if not isinstance(query_id, str) or not query_id:
            raise _Answer(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        self.callback_answers.append({"callback_query_id": query_id, "text": params.get("text")})
        return True


def _params(request) -> dict:
    """Telegram accepts query string, form fields and JSON bodies alike."""
    params: dict = {}
    for k, v in (request.args or {}).items():
        params[k.decode("utf-8", "replace")] = v[-1].decode("utf-8", "replace")
    content_type = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    body = request.content.read() if request.content is not None else b""
    if content_type == b"application/json" and body:
        try:
            data = json.loads(body)
        except ValueError:
            raise _Answer(400, "Bad Request: can't parse JSON body") from None
        if not isinstance(data, dict):
            raise _Answer(400, "Bad Request: JSON body must be an object")
        params.update(data)
    elif content_type == b"application/x-www-form-urlencoded" and body:
        for k, v in parse_qs(body.decode("utf-8", "replace")).items():
            params[k] = v[-1]
    return params


def _write(request, status: int, body: dict) -> None:
    if request.finished or getattr(request, "_disconnected", False):
        return
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    request.write(json.dumps(body, ensure_ascii=False).encode())
    request.finish()


class _MethodResource(resource.Resource):
    isLeaf = True

    def __init__(self, fake: FakeBotAPI, token: str):
        super().__init__()
        self.fake = fake
        self.token = token

    def render(self, request):
        method = request.postpath[0].decode("utf-8", "replace") if request.postpath else ""
        try:
            params = _params(request)
        except _Answer as answer:
            request.setResponseCode(answer.code)
            request.setHeader(b"content-type", b"application/json")
            return json.dumps(answer.json()).encode()
        answer = self.fake.handle(self.token, method, params)
        delay = self.fake._slow.get(method, 0)
        if not isinstance(answer, defer.Deferred):
            if not delay:
                status, body = answer
                request.setResponseCode(status)
                request.setHeader(b"content-type", b"application/json")
                return json.dumps(body, ensure_ascii=False).encode()
            answer = defer.succeed(answer)
        waiting = answer
        request.notifyFinish().addErrback(lambda _: self.fake.poll_gone(waiting))
        if delay:
            answer.addCallback(lambda result: _later(self.fake, delay, result))
        answer.addCallback(lambda result: _write(request, *result))
        return server.NOT_DONE_YET


def _later(fake: "FakeBotAPI", seconds: float, result):
    d = defer.Deferred()
    call = fake.clock.callLater(seconds, lambda: (fake._delayed.discard(call), d.callback(result)))
    fake._delayed.add(call)
    return d


class ControlResource(resource.Resource):
    """JSON control API for a fake running as its own process.

    POST /_control/user_sends {"chat_id", "text", "user_id"?, "language_code"?} -> the update
    POST /_control/user_clicks {"chat_id", "data", "message_id"?} -> the update
    POST /_control/push_update {...any update...}
    POST /_control/fault {"method", "error_code", "description"?, "retry_after"?, "times"?}
    POST /_control/slow {"method", "seconds"}
    POST /_control/block {"chat_id"} / POST /_control/unblock {"chat_id"}
    POST /_control/webhook {"url"}
    POST /_control/reset (forget everything sent)
    POST /_control/add_chat {"chat_id", "type"?, "title"?, "bot_rights"?, "bot_status"?}
    POST /_control/user_joins_by_link {"user_id", "invite_link"} -> "joined"/"requested", or 400 {"error": reason}
    POST /_control/admin_adds {"chat_id", "user_id", "by"?} / POST /_control/user_leaves {"chat_id", "user_id"}
    POST /_control/make_admin {"chat_id", "user_id", "rights": [...]}
    GET  /_control/members?chat_id=N -> {"members": [user ids], "pending": [user ids]}
    GET  /_control/sent[?chat_id=N&since=I] -> {"sent": [...], "next": I}
    GET  /_control/stats -> {"sent", "throttled", "calls": {method: n}, "pending_updates", "invite_links", "bans"}
    """

    isLeaf = True

    def __init__(self, fake: FakeBotAPI):
        super().__init__()
        self.fake = fake

    def render_GET(self, request):
        fake = self.fake
        what = request.postpath[0] if request.postpath else b""
        if what == b"sent":
            chat = request.args.get(b"chat_id")
            since = int(request.args.get(b"since", [b"0"])[0])
            sent = fake.sent[since:]
            if chat:
                sent = [m for m in sent if m["chat_id"] == int(chat[0])]
            return self._json(request, {"sent": sent, "next": len(fake.sent)})
        if what == b"members":
            try:
                chat_id = int(request.args[b"chat_id"][0])
                body = {"members": fake.members(chat_id), "pending": fake.chat_model.pending_requests(chat_id)}
            except (KeyError, ValueError, _Answer) as e:
                request.setResponseCode(400)
                return self._json(request, {"error": f"bad control request: {e}"})
            return self._json(request, body)
        if what == b"stats":
            counts: dict[str, int] = {}
            for name, _ in fake.calls:
                counts[name] = counts.get(name, 0) + 1
            return self._json(request, {"sent": len(fake.sent), "throttled": fake.throttled, "calls": counts,
                                        "pending_updates": fake.pending_updates, "invite_links": fake.invite_links,
                                        "bans": fake.bans, "callback_answers": fake.callback_answers,
                                        "allowed_updates": fake.allowed_updates,
                                        "suppressed_updates": len(fake.suppressed_updates)})
        request.setResponseCode(404)
        return self._json(request, {"error": "unknown control path"})

    def render_POST(self, request):
        fake = self.fake
        what = (request.postpath[0] if request.postpath else b"").decode()
        try:
            body = json.loads(request.content.read() or b"{}")
            if what == "user_sends":
                result = fake.user_sends(int(body["chat_id"]), str(body["text"]), user_id=body.get("user_id"),
                                         language_code=body.get("language_code"))
            elif what == "user_clicks":
                result = fake.user_clicks(int(body["chat_id"]), str(body["data"]), message_id=body.get("message_id"))
            elif what == "push_update":
                result = fake.push_update(body)
            elif what == "fault":
                fake.fail_next(body["method"], int(body["error_code"]), body.get("description"),
                               body.get("retry_after"), int(body.get("times", 1)))
                result = True
            elif what == "slow":
                fake.slow(body["method"], float(body["seconds"]))
                result = True
            elif what == "block":
                fake.block_chat(int(body["chat_id"]))
                result = True
            elif what == "unblock":
                fake.unblock_chat(int(body["chat_id"]))
                result = True
            elif what == "webhook":
                fake.webhook_url = str(body.get("url", ""))
                result = True
            elif what == "add_chat":
                fake.add_chat(int(body["chat_id"]), **{k: body[k] for k in ("type", "title", "bot_rights", "bot_status")
                                                       if k in body})
                result = True
            elif what == "user_joins_by_link":
                result = fake.user_joins_by_link(int(body["user_id"]), str(body["invite_link"]))
            elif what == "admin_adds":
                fake.admin_adds(int(body["chat_id"]), int(body["user_id"]), body.get("by"))
                result = True
            elif what == "user_leaves":
                result = fake.user_leaves(int(body["chat_id"]), int(body["user_id"]))
            elif what == "make_admin":
                fake.make_admin(int(body["chat_id"]), int(body["user_id"]), list(body["rights"]))
                result = True
            elif what == "reset":
                fake.sent.clear()
                fake.calls.clear()
                fake.throttled = 0
                result = True
            else:
                request.setResponseCode(404)
                return self._json(request, {"error": "unknown control path"})
        except JoinRefused as e:
            request.setResponseCode(400)
            return self._json(request, {"error": e.reason})
        except (KeyError, ValueError, TypeError, _Answer) as e:
            request.setResponseCode(400)
            return self._json(request, {"error": f"bad control request: {e}"})
        return self._json(request, {"ok": True, "result": result})

    @staticmethod
    def _json(request, body) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(body, ensure_ascii=False).encode()


def make_site(fake: FakeBotAPI) -> server.Site:
    site = server.Site(fake)
    site.log = lambda request: None  # URLs carry the token; and the noise helps nobody
    return site


def main(argv=None) -> None:
    import argparse
    import sys

    from twisted.internet import reactor

    parser = argparse.ArgumentParser(description="fake Telegram Bot API")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--interface", default="127.0.0.1")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--channel", type=int, action="append", default=[])
    parser.add_argument("--no-limits", action="store_true", help="do not enforce Telegram's flood limits")
    args = parser.parse_args(argv)
    fake = FakeBotAPI(reactor, token=args.token, enforce_limits=not args.no_limits, channels=args.channel, control=True)
    port = reactor.listenTCP(args.port, make_site(fake), interface=args.interface)
    sys.stdout.write(json.dumps({"port": port.getHost().port}) + "\n")
    sys.stdout.flush()
    reactor.run()


if __name__ == "__main__":
    main()
