"""The overlay event stream in Redis: billing writes it, each web node tails it.

``<prefix>:overlay:events`` is a stream capped near ``max_len`` entries (XADD MAXLEN ~).
Its entry ids ("<ms>-<seq>", increasing) are the SSE ``id:`` the overlays see, so a
browser that reconnects with ``Last-Event-ID`` is sent exactly the entries after it.

:class:`OverlayStreamWriter` appends (billing; the owner's skip and replay commands).
:class:`OverlayTailer` is the one reader of a web node: a single XREAD BLOCK loop on a
connection of its own, handing every entry to the node's subscribers (its SSE clients).
Both talk to Redis through anything with ``execute(*args, timeout=None) -> Deferred``
(ymds.queue.redis.RedisConnection / RedisPool), see :func:`open_redis`.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

from twisted.internet import defer
from twisted.logger import Logger

from ymds.overlay.events import BadEvent, DonationEvent, GoalEvent, OverlayEvent, SkipEvent, decode, encode, entry_order
from ymds.util.clock import sleep

log = Logger()

DEFAULT_MAX_LEN = 1000

Subscriber = Callable[[str, OverlayEvent], None]


class RedisCommands(Protocol):
    """What the overlay needs of a Redis connection (RedisConnection and RedisPool have it)."""

    def execute(self, *args: Any, timeout: float | None = None) -> defer.Deferred: ...


def stream_key(prefix: str) -> str:
    """The overlay stream's key under the configured Redis prefix."""
    return f"{prefix}:overlay:events"


def open_redis(reactor, url: str, name: str = "overlay") -> tuple[RedisCommands, RedisCommands]:
    """(commands, blocking): a pool for short commands and a connection of its own for
    XREAD BLOCK, made the way the job queue makes them."""
    from ymds.queue.redis import RedisConnection, RedisPool, parse_redis_url
    address = parse_redis_url(url)
    return RedisPool(reactor, address, 1, f"{name}:"), RedisConnection(reactor, address, f"{name}:read")


def _entries(reply) -> list[tuple[str, OverlayEvent]]:
    """Decoded (id, event) pairs of an XRANGE-style reply; bad entries are logged and left out."""
    out = []
    for entry_id, fields in reply or []:
        try:
            out.append((str(entry_id), decode(fields)))
        except BadEvent as e:
            log.warn("overlay: stream entry {entry_id} skipped: {error}", entry_id=entry_id, error=str(e))
    return out


# XADD unless this event's key was seen: a billing job retried after a lost reply (or a
# second billing node applying the same payment's follow-up) cannot show an alert twice.
_APPEND_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', ARGV[3], ARGV[4], ARGV[5], ARGV[6])
end
return false
"""


class OverlayStreamWriter:
    """Appends overlay events.  Billing calls :meth:`append_once` after a donation is applied,
    then :meth:`append` with the new goal state."""

    def __init__(self, redis: RedisCommands, prefix: str, max_len: int = DEFAULT_MAX_LEN,
                 key_ttl: int = 7 * 24 * 3600, attempts: int = 5, reactor=None):
        self._redis = redis
        self.prefix = prefix
        self.key = stream_key(prefix)
        self.max_len = max_len
        self.key_ttl = key_ttl
        self.attempts = attempts
        self.reactor = reactor

    async def append(self, event: OverlayEvent) -> str:
        """XADD the event; returns its entry id (the SSE id the overlays will see).  Not
        retried: use it for events whose repetition is harmless (goal state, skip)."""
        entry_id = await self._redis.execute("XADD", self.key, "MAXLEN", "~", self.max_len, "*", *encode(event))
        return str(entry_id)

    async def append_once(self, event: OverlayEvent, key: str) -> str | None:
        """XADD the event unless one with ``key`` (e.g. the payment's operation id) was
        appended in the last ``key_ttl`` seconds; returns the new entry id, or None when it
        was there already.  Lost connections are retried (the key makes that safe)."""
        from ymds.queue.redis import is_transient
        seen = f"{self.prefix}:overlay:once:{key}"
        delay = 0.05
        for attempt in range(1, self.attempts + 1):
            try:
                entry_id = await self._redis.execute("EVAL", _APPEND_ONCE, 2, self.key, seen, self.key_ttl,
                                                     self.max_len, *encode(event))
                return str(entry_id) if entry_id else None
            except Exception as e:
                if attempt == self.attempts or not is_transient(e):
                    raise
                if self.reactor is not None:
                    await sleep(self.reactor, delay)
                delay = min(delay * 4, 1.0)
        raise AssertionError("unreachable")

    async def skip(self, target: str) -> str:
        """Tell the overlays not to show (or to stop showing) the alert of entry ``target``."""
        entry_order(target)
        return await self.append(SkipEvent(target))

    async def replay(self, target: str) -> str | None:
        """Show donation ``target`` again (a new entry, so it is a new alert); None if the
        entry is not a donation still in the stream."""
        entry_order(target)
        found = _entries(await self._redis.execute("XRANGE", self.key, target, target))
        if not found or not isinstance(found[0][1], DonationEvent):
            return None
        return await self.append(found[0][1])


class OverlayTailer:
    """One XREAD BLOCK loop per web node, fanning entries out to subscribers in stream order.

    Subscribers are called synchronously with (entry id, event) for every entry read after
    :meth:`start`; :attr:`last_goal` is the newest goal state seen (looked up at start).
    The tailer owns both connections and closes them in :meth:`stop`.
    """

    def __init__(self, reactor, commands: RedisCommands, blocking: RedisCommands, prefix: str,
                 block: float = 5.0, batch: int = 100):
        self.reactor = reactor
        self.key = stream_key(prefix)
        self._commands = commands
        self._blocking = blocking
        self.block = block
        self.batch = batch
        self._subscribers: list[Subscriber] = []
        self.position: str | None = None  # the last entry id read
        self.last_goal: GoalEvent | None = None
        self._running = False
        self._loop: defer.Deferred | None = None

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns the function that removes it."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)
        return unsubscribe

    @property
    def ready(self) -> bool:
        """Whether the reader knows where it reads from (entries after that reach subscribers)."""
        return self.position is not None

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def tail_id(self) -> str:
        """The newest entry id now in the stream ("0-0" when it is empty)."""
        reply = await self._commands.execute("XREVRANGE", self.key, "+", "-", "COUNT", 1)
        return str(reply[0][0]) if reply else "0-0"

    async def read_after(self, after: str, limit: int) -> list[tuple[str, OverlayEvent]]:
        """The newest ``limit`` entries after ``after``, oldest first (a reconnect's replay)."""
        reply = await self._commands.execute("XREVRANGE", self.key, "+", "(" + after, "COUNT", limit)
        return list(reversed(_entries(reply)))

    def start(self) -> defer.Deferred:
        """Start reading; the Deferred fires once the starting position is known."""
        self._running = True
        ready: defer.Deferred = defer.Deferred()
        self._loop = defer.Deferred.fromCoroutine(self._run(ready))
        return ready

    async def stop(self) -> None:
        """Stop reading and close both connections (the tailer owns them); the blocking read
        in flight fails with the closed connection, so nothing is left pending."""
        self._running = False
        for conn in (self._blocking, self._commands):
            close = getattr(conn, "close", None)
            if close is not None:
                await close()
        if self._loop is not None:
            try:
                await self._loop
            except Exception:
                pass

    async def _find_start(self) -> None:
        reply = await self._commands.execute("XREVRANGE", self.key, "+", "-", "COUNT", 200)
        self.position = str(reply[0][0]) if reply else "0-0"
        for _, event in _entries(reply):
            if isinstance(event, GoalEvent):
                self.last_goal = event
                break

    async def _run(self, ready: defer.Deferred) -> None:
        delay = 0.05
        while self._running:
            try:
                if self.position is None:
                    await self._find_start()
                    if not ready.called:
                        ready.callback(None)
                reply = await self._blocking.execute(
                    "XREAD", "COUNT", self.batch, "BLOCK", int(self.block * 1000), "STREAMS", self.key,
                    self.position, timeout=self.block + 5.0)
            except Exception as e:
                if not self._running:
                    break
                log.warn("overlay: reading the event stream failed ({error}); retrying", error=str(e))
                await sleep(self.reactor, delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05
            for _, raw in reply or []:
                self._deliver(raw)

    def _deliver(self, raw) -> None:
        if raw:
            self.position = str(raw[-1][0])
        for entry_id, event in _entries(raw):
            if isinstance(event, GoalEvent):
                self.last_goal = event
            for subscriber in list(self._subscribers):
                try:
                    subscriber(entry_id, event)
                except Exception:
                    log.failure("overlay: a subscriber failed on entry {entry_id}", entry_id=entry_id)
