"""One-time sign-in tokens and dashboard sessions kept in Redis, shared by every web node.

What is stored is never what the browser holds: login tokens and session ids are kept
under their SHA-256, so a Redis dump gives no usable link or cookie.  A login token is
taken by one atomic script (GET and DEL together), so two clicks cannot both sign in.
``revoke_all`` bumps a generation number; a session or token of an older generation is
refused, which ends every session at once without scanning Redis.

Expiry is checked against the injected clock as well as by Redis TTLs: the TTL keeps
Redis clean, the clock decides (and makes expiry testable with ``task.Clock``).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.logger import Logger

log = Logger()

_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{20,100}$")

# KEYS[1] login key, KEYS[2] generation key -> {stored value, current generation} or nil.
_TAKE_TOKEN = """
local v = redis.call('GET', KEYS[1])
if not v then return false end
redis.call('DEL', KEYS[1])
return {v, redis.call('GET', KEYS[2]) or '0'}
"""


class RedisCommands(Protocol):
    """What the sessions need from Redis: ymds.queue.redis.RedisPool/RedisConnection fit."""

    def execute(self, *args: Any, timeout: float | None = None) -> Any: ...


class SecondsClock(Protocol):
    def seconds(self) -> float: ...


@dataclass(frozen=True)
class AdminSession:
    """A live session: who signed in, when, and the CSRF token its forms must carry."""

    id: str
    admin: str
    csrf: str
    created: float

    def csrf_ok(self, offered: str | None) -> bool:
        """Constant-time comparison of the token a POST carried."""
        return offered is not None and offered != "" and hmac.compare_digest(offered.encode(), self.csrf.encode())


def login_url(public_url: str, token: str) -> str:
    """The link ``ymds admin-link`` prints and the bot's /admin sends."""
    return f"{public_url.rstrip('/')}/admin/login?t={token}"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


class AdminSessions:
    """Sign-in tokens and sessions under ``<prefix>:admin:*``.

    ``idle``: seconds without a request after which a session ends; ``absolute``: seconds
    after sign-in after which it ends however busy it is.
    """

    def __init__(self, redis: RedisCommands, clock: SecondsClock, prefix: str = "ymds",
                 idle: float = 30 * 60, absolute: float = 12 * 3600, max_minutes: int = 24 * 60):
        self._redis = redis
        self._clock = clock
        self._prefix = f"{prefix}:admin"
        self.idle = idle
        self.absolute = absolute
        self.max_minutes = max_minutes

    def _key(self, kind: str, secret: str) -> str:
        return f"{self._prefix}:{kind}:{_digest(secret)}"

    @property
    def _generation_key(self) -> str:
        return f"{self._prefix}:generation"

    async def _generation(self) -> str:
        return _text(await self._redis.execute("GET", self._generation_key)) or "0"

    async def issue_login_token(self, minutes: int = 10, admin: str = "cli") -> str:
        """A fresh single-use token valid for ``minutes`` (1..max_minutes) for ``admin``."""
        if not 1 <= int(minutes) <= self.max_minutes:
            raise ValueError(f"minutes must be from 1 to {self.max_minutes}")
        token = secrets.token_urlsafe(32)
        now = self._clock.seconds()
        record = {"admin": admin, "generation": await self._generation(), "expires": now + minutes * 60}
        await self._redis.execute("SET", self._key("login", token), json.dumps(record),
                                  "PX", int(minutes * 60_000), "NX")
        log.info("admin sign-in link issued for {minutes} min", minutes=minutes)
        return token

    async def redeem(self, token: str) -> str | None:
        """Use ``token`` up and return a new session id, or None (unknown, used, expired, revoked)."""
        if not isinstance(token, str) or not _TOKEN_SHAPE.match(token):
            return None
        taken = await self._redis.execute("EVAL", _TAKE_TOKEN, 2, self._key("login", token),
                                          self._generation_key)
        if not taken:
            log.info("admin sign-in refused: link unknown or already used")
            return None
        record = json.loads(_text(taken[0]) or "{}")
        now = self._clock.seconds()
        if record.get("expires", 0) < now or record.get("generation") != _text(taken[1]):
            log.info("admin sign-in refused: link expired or revoked")
            return None
        session_id = secrets.token_urlsafe(32)
        stored = {"admin": record["admin"], "generation": record["generation"], "created": now,
                  "seen": now, "csrf": secrets.token_urlsafe(32)}
        await self._redis.execute("SET", self._key("session", session_id), json.dumps(stored),
                                  "PX", int(min(self.idle, self.absolute) * 1000))
        log.info("admin signed in")
        return session_id

    async def lookup(self, session_id: str | None) -> AdminSession | None:
        """The live session for a cookie value (and mark it used), or None."""
        if not isinstance(session_id, str) or not _TOKEN_SHAPE.match(session_id):
            return None
        key = self._key("session", session_id)
        raw, generation = await self._redis.execute("MGET", key, self._generation_key)
        if raw is None:
            return None
        record = json.loads(_text(raw) or "{}")
        now = self._clock.seconds()
        if (record.get("generation") != (_text(generation) or "0") or now - record["seen"] > self.idle
                or now - record["created"] > self.absolute):
            await self._redis.execute("DEL", key)
            return None
        record["seen"] = now
        left = min(self.idle, self.absolute - (now - record["created"]))
        await self._redis.execute("SET", key, json.dumps(record), "PX", max(1, int(left * 1000)), "XX")
        return AdminSession(session_id, record["admin"], record["csrf"], record["created"])

    async def end(self, session_id: str) -> None:
        """Sign one session out."""
        if isinstance(session_id, str) and _TOKEN_SHAPE.match(session_id):
            await self._redis.execute("DEL", self._key("session", session_id))

    async def revoke_all(self) -> None:
        """End every session and make every unused sign-in link useless."""
        await self._redis.execute("INCR", self._generation_key)
        log.info("admin sessions revoked")
