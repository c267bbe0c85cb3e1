"""The bot role's state in Redis: polling offset, sent-message keys, blocked chats,
languages, invite links, the inbound flood guard.

``redis`` is anything with ``execute(*args) -> Deferred`` (ymds.queue.redis.RedisPool,
which talks with convertNumbers=False and bounds every command with a timeout).

Keys (``{prefix}:bot:...``)::

    offset              next getUpdates offset (only ever moves forward; fenced by the lease)
    lease               owner token of the process allowed to poll (PX expiry)
    sent:<key>          message_id of a delivered message (TTL), the dedup record
    blocked:<chat>      the user blocked the bot (403); cleared when they write again (TTL)
    lang:<chat>         "ru" | "en"
    invite:<key>        the invite link made for one grant_access job (TTL)
    in:<chat>           inbound messages this minute (flood guard)
"""

from __future__ import annotations

import hashlib
import re

from twisted.internet.defer import Deferred
from twisted.logger import Logger

log = Logger()

SENT_TTL = 7 * 86400  # longer than any redelivery or replay of a job we expect
INVITE_TTL = 7 * 86400
BLOCKED_TTL = 90 * 86400  # then one more send finds out again (403) and renews it
INBOUND_WINDOW = 60

_SAFE_KEY = re.compile(r"^[A-Za-z0-9_.:@/+=-]{1,160}$")

# Move the offset forward only, and only while holding the lease: a poller that lost its
# lease (paused process, network split) can never rewind or skip the new holder's offset.
_SET_OFFSET = """
if ARGV[2] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[2] then return -1 end
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) return 1 end
return 0
"""

_INBOUND = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


def dedup_key(key: str) -> str:
    """Keys from jobs are ours, but bound them: odd or long ones are hashed."""
    if isinstance(key, str) and _SAFE_KEY.fullmatch(key):
        return key
    return "h:" + hashlib.sha256(str(key).encode("utf-8", "replace")).hexdigest()


async def run_script(redis, source: str, keys: list, args: list):
    """EVALSHA, falling back to EVAL when Redis does not know the script yet."""
    sha = hashlib.sha1(source.encode()).hexdigest()
    try:
        return await redis.execute("EVALSHA", sha, len(keys), *keys, *args)
    except Exception as e:
        if "NOSCRIPT" not in str(e):
            raise
    return await redis.execute("EVAL", source, len(keys), *keys, *args)


class BotStore:
    def __init__(self, redis, prefix: str, min_replicas: int = 0, replica_timeout: float = 1.0):
        self.redis = redis
        self.prefix = prefix
        # redis.min_replicas: a sent-message record must be on the replicas before the job is
        # acknowledged, or a failover can lose both the record and the ack and send it again.
        self.min_replicas = min_replicas
        self.replica_timeout = replica_timeout
        self.offset_key = f"{prefix}:bot:offset"
        self.lease_key = f"{prefix}:bot:lease"

    def _k(self, *parts) -> str:
        return ":".join([self.prefix, "bot", *map(str, parts)])

    async def _call(self, *args):
        d = self.redis.execute(*args)
        return await d if isinstance(d, Deferred) else d

    # --- polling offset -----------------------------------------------------------------

    async def get_offset(self) -> int | None:
        raw = await self._call("GET", self.offset_key)
        if raw is None:
            return None
        try:
            return int(raw)
        except (TypeError, ValueError):
            return None  # garbage in Redis: start from what Telegram still has

    async def set_offset(self, offset: int, lease_owner: str = "") -> bool:
        """False when the lease is no longer ours (nothing written)."""
        result = await run_script(self.redis, _SET_OFFSET, [self.offset_key, self.lease_key],
                                  [int(offset), lease_owner])
        return int(result) >= 0

    # --- sent messages ------------------------------------------------------------------

    async def was_sent(self, key: str) -> bool:
        return await self._call("EXISTS", self._k("sent", dedup_key(key))) in (1, "1")

    async def mark_sent(self, key: str, message_id) -> None:
        await self._call("SET", self._k("sent", dedup_key(key)), str(message_id), "EX", SENT_TTL, "NX")
        if self.min_replicas > 0:
            await self.replicated()

    async def replicated(self) -> int:
        """Wait until min_replicas replicas have every write made so far; how many did.

        WAIT counts the replicas that have its own connection's last write: a PUBLISH
        (replicated, no key) on the same connection first moves that mark to the master's
        latest offset, so the SET made through another pooled connection is covered too.
        Fewer replicas than asked is logged, not raised: the message is already sent."""
        conn = self.redis.connection()
        conn.execute("PUBLISH", f"{self.prefix}:replicated", "").addErrback(lambda _: None)
        acked = int(await conn.execute("WAIT", self.min_replicas, max(1, int(self.replica_timeout * 1000))))
        if acked < self.min_replicas:
            log.warn("bot: a sent-message record reached {acked} of {wanted} Redis replicas",
                     acked=acked, wanted=self.min_replicas)
        return acked

    # --- blocked chats ------------------------------------------------------------------

    async def is_blocked(self, chat_id: int) -> bool:
        return await self._call("EXISTS", self._k("blocked", int(chat_id))) in (1, "1")

    async def set_blocked(self, chat_id: int) -> None:
        await self._call("SET", self._k("blocked", int(chat_id)), "1", "EX", BLOCKED_TTL)

    async def clear_blocked(self, chat_id: int) -> bool:
        return await self._call("DEL", self._k("blocked", int(chat_id))) in (1, "1")

    # --- language -----------------------------------------------------------------------

    async def get_language(self, chat_id: int) -> str | None:
        value = await self._call("GET", self._k("lang", int(chat_id)))
        return value if value in ("ru", "en") else None

    async def set_language(self, chat_id: int, language: str) -> None:
        if language not in ("ru", "en"):
            raise ValueError(f"unsupported language {language!r}")
        await self._call("SET", self._k("lang", int(chat_id)), language)

    # --- invite links -------------------------------------------------------------------

    async def get_invite(self, key: str) -> str | None:
        return await self._call("GET", self._k("invite", dedup_key(key)))

    async def remember_invite(self, key: str, link: str) -> str:
        """Keep the first link made for ``key``; returns the one to use."""
        k = self._k("invite", dedup_key(key))
        if await self._call("SET", k, link, "EX", INVITE_TTL, "NX") in ("OK", b"OK"):
            return link
        return (await self._call("GET", k)) or link

    # --- inbound flood guard ------------------------------------------------------------

    async def inbound_count(self, chat_id: int) -> int:
        """Messages from ``chat_id`` in the current minute, this one included."""
        return int(await run_script(self.redis, _INBOUND, [self._k("in", int(chat_id))], [INBOUND_WINDOW]))
