"""``GET /overlay/<token>/events``: overlay events as Server-Sent Events.

Each message is ``event: donation|goal|skip|start``, ``id: <stream entry id>`` (increasing) and
one ``data:`` line of JSON.  A fresh connection first gets the current goal (if any) with
the stream's newest id, so a later reconnect resumes from there; a reconnect with
``Last-Event-ID`` gets the entries after that id (the newest ``replay_limit`` of them),
then live ones, none twice: the client subscribes to the node's tailer *before* reading
the backlog and drops every entry whose id is not above the last one it sent.

Connections are bounded per token (429) and overall (503); every ``heartbeat`` seconds
each client gets ``: hb`` and the tokens in use are checked again, so a rotated token's
overlays are disconnected (and their reconnect gets 404).  A client that stops reading
is disconnected once ``max_backlog`` messages wait for it.
"""
from __future__ import annotations

from typing import Awaitable, Callable

from twisted.internet import defer, task
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from ymds.overlay.events import BadEvent, GoalEvent, OverlayEvent, entry_order, sse_frame
from ymds.overlay.stream import OverlayTailer
from ymds.web.http import TEXT_TYPE, send

log = Logger()

TokenCheck = Callable[[str], Awaitable[bool]]
GoalSnapshot = Callable[[], Awaitable["GoalEvent | None"]]

HEARTBEAT = b": hb\n\n"


def text_response(request, code: int, text: bytes, retry_after: int | None = None) -> None:
    """A short plain-text answer (refusals), unless the client has gone."""
    headers = {b"retry-after": b"%d" % retry_after} if retry_after is not None else None
    send(request, code, text, TEXT_TYPE, headers=headers)


@implementer(IPushProducer)
class _Client:
    """One connected overlay.  Entries offered before :meth:`go_live` are held back."""

    def __init__(self, request, token: str, max_backlog: int):
        self.request = request
        self.token = token
        self.gone = False
        self.started = False  # headers sent: heartbeats and closing apply from then on
        self.last_sent: tuple[int, int] = (-1, -1)
        self._held: list[tuple[str, OverlayEvent]] | None = []
        self._paused = False
        self._waiting = 0  # messages written while the network buffer is full
        self._max_backlog = max_backlog

    # IPushProducer: Twisted pauses us when the client does not read
    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._waiting = 0

    def stopProducing(self) -> None:
        self.gone = True

    def write(self, data: bytes) -> None:
        if self.gone:
            return
        if self._paused:
            self._waiting += 1
            if self._waiting > self._max_backlog:
                log.info("overlay: client dropped, it stopped reading")
                self.close(abort=True)
                return
        self.request.write(data)

    def send(self, entry_id: str, event: OverlayEvent | None) -> None:
        """Send one message unless its id is not above the last one sent."""
        order = entry_order(entry_id)
        if order <= self.last_sent:
            return
        self.last_sent = order
        self.write(sse_frame(entry_id, event))

    def offer(self, entry_id: str, event: OverlayEvent) -> None:
        if self._held is not None:
            self._held.append((entry_id, event))
        else:
            self.send(entry_id, event)

    def go_live(self) -> None:
        held, self._held = self._held or [], None
        for entry_id, event in held:
            self.send(entry_id, event)

    def close(self, abort: bool = False) -> None:
        if self.gone:
            return
        self.gone = True
        self.request.unregisterProducer()
        if abort:
            # loseConnection would wait for the unread buffer to drain: cut it instead
            self.request.channel.transport.abortConnection()
        else:
            self.request.finish()


class OverlayEvents:
    """The SSE side of one web node: its clients, their limits and the heartbeat.

    ``token_valid(token)`` answers whether a token is the shop's current overlay token;
    ``goal_snapshot()`` (optional) gives the goal a fresh client starts with, else the
    tailer's newest goal event is used.  :meth:`start` starts the heartbeat on ``clock``.
    """

    def __init__(self, clock, tailer: OverlayTailer, token_valid: TokenCheck, *, max_per_token: int = 10,
                 max_total: int = 1000, heartbeat: float = 15.0, replay_limit: int = 50,
                 max_backlog: int = 200, goal_snapshot: GoalSnapshot | None = None, retry: float = 3.0):
        self.clock = clock
        self.tailer = tailer
        self.token_valid = token_valid
        self.max_per_token = max_per_token
        self.max_total = max_total
        self.heartbeat = heartbeat
        self.replay_limit = replay_limit
        self.max_backlog = max_backlog
        self.goal_snapshot = goal_snapshot
        self.retry = retry  # seconds a browser waits before reconnecting (the stream's retry:)
        self.clients: set[_Client] = set()
        self._beat: task.LoopingCall | None = None
        self._checking = False

    def start(self) -> None:
        self._beat = task.LoopingCall(self._heartbeat)
        self._beat.clock = self.clock
        self._beat.start(self.heartbeat, now=False).addErrback(
            lambda f: log.failure("overlay: the heartbeat stopped", f))

    def stop(self) -> None:
        """Stop the heartbeat and end every stream (browsers reconnect to another node)."""
        if self._beat is not None and self._beat.running:
            self._beat.stop()
        for client in list(self.clients):
            if client.started:
                client.close()

    def count(self, token: str) -> int:
        return sum(1 for c in self.clients if c.token == token and not c.gone)

    async def serve(self, request, token: str) -> None:
        """Answer one events request whose token was found valid."""
        if not self.tailer.ready:
            # a stream started now could miss entries the reader has not reached yet
            log.info("overlay: events stream refused {status}: the stream reader is not ready", status=503)
            return text_response(request, 503, b"The event stream is starting, try again shortly.\n", 2)
        if len(self.clients) >= self.max_total:
            log.info("overlay: events stream refused {status}: {count} overlays connected",
                     status=503, count=len(self.clients))
            return text_response(request, 503, b"Too many overlays connected, try again later.\n", 30)
        if self.count(token) >= self.max_per_token:
            log.info("overlay: events stream refused {status}: {count} overlays on this token",
                     status=429, count=self.max_per_token)
            return text_response(request, 429, b"Too many overlays on this link, close one and retry.\n", 30)
        client = _Client(request, token, self.max_backlog)
        self.clients.add(client)
        unsubscribe = self.tailer.subscribe(client.offer)

        def finished(_):
            client.gone = True
            self.clients.discard(client)
            unsubscribe()
        request.notifyFinish().addBoth(finished)
        try:
            await self._begin(request, client)
        except Exception as e:
            if not client.started:
                log.warn("overlay: events stream not started: {error}", error=str(e))
                text_response(request, 503, b"The event stream is unavailable, try again shortly.\n", 5)
            else:
                log.failure("overlay: events stream failed")
                client.close()

    async def _begin(self, request, client: _Client) -> None:
        after = _last_event_id(request)
        if after is not None:
            backlog = await self.tailer.read_after(after, self.replay_limit)
            client.last_sent = entry_order(after)
            start = None
        else:
            backlog = []
            start = await self.tailer.tail_id()
            goal = await self.goal_snapshot() if self.goal_snapshot is not None else self.tailer.last_goal
        if client.gone:
            return
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-accel-buffering", b"no")  # nginx: pass each message on at once
        request.registerProducer(client, True)
        client.started = True
        client.write(b"retry: %d\n\n" % int(self.retry * 1000))
        if start is not None:
            client.send(start, goal)  # the goal, or "start": either moves Last-Event-ID to the stream's end
        for entry_id, event in backlog:
            client.send(entry_id, event)
        client.go_live()

    def _heartbeat(self) -> None:
        for client in list(self.clients):
            if client.started:
                client.write(HEARTBEAT)
        # a slow token check must not hold up the next heartbeat: run it on the side, one at a time
        if not self._checking:
            self._checking = True
            defer.Deferred.fromCoroutine(self._recheck_tokens()).addBoth(self._checked)

    def _checked(self, _) -> None:
        self._checking = False

    async def _recheck_tokens(self) -> None:
        for token in {c.token for c in self.clients if c.started}:
            try:
                valid = await self.token_valid(token)
            except Exception as e:
                log.warn("overlay: could not check an overlay token: {error}", error=str(e))
                continue
            if not valid:
                log.info("overlay: token no longer valid, overlays disconnected")
                for client in [c for c in self.clients if c.token == token and c.started]:
                    client.close()


def _last_event_id(request) -> str | None:
    """The Last-Event-ID header, else ``?last=`` (a page that had to open a new EventSource)."""
    raw = request.getHeader(b"last-event-id") or (request.args.get(b"last") or [b""])[0]
    if not raw:
        return None
    text = raw.decode("latin-1").strip()
    try:
        entry_order(text)
    except BadEvent:
        log.info("overlay: ignored a malformed Last-Event-ID")
        return None
    return text
