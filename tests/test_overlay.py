"""Stream overlay (issue 17): event forms, the SSE endpoint over real HTTP fed by a real
redis-server, Last-Event-ID resume, tokens, limits, heartbeat, and two web nodes."""
from __future__ import annotations

import json
import os
import tempfile
from decimal import Decimal

from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import Site

from ymds.overlay.events import (BadEvent, DonationEvent, GoalEvent, SkipEvent, decode, encode, entry_order, rubles,
                                 sse_frame)
from ymds.overlay.pages import OverlaySettings
from ymds.overlay.resource import OverlayResource, read_sound
from ymds.overlay.sse import OverlayEvents
from ymds.overlay.stream import OverlayStreamWriter, OverlayTailer, open_redis, stream_key
from tests.support.redis_server import RedisServer

TOKEN = "tok_" + "a1b2c3d4" * 4
OTHER = "tok_" + "z9y8x7w6" * 4
PREFIX = "ovtest"
PAID_AT = "2026-11-29T20:00:00Z"


def donation(amount: str = "1990.00", name: str | None = "Маша", message: str | None = "Привет!",
             public: bool = True) -> DonationEvent:
    return DonationEvent.from_payment(Decimal(amount), name, message, public, PAID_AT)


def parse_frames(body: bytes) -> list[dict]:
    """Server-Sent Events messages as dicts (event, id, data parsed as JSON, comment)."""
    frames = []
    for block in body.decode("utf-8").split("\n\n")[:-1]:
        frame: dict = {}
        for line in block.split("\n"):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "":
                frame["comment"] = value
            elif field == "data":
                frame["data"] = json.loads(value)
            else:
                frame[field] = value
        frames.append(frame)
    return frames


class _Collect(Protocol):
    def __init__(self):
        self.data = b""
        self.closed = defer.Deferred()
        self._waiters: list[defer.Deferred] = []

    def dataReceived(self, data):
        self.data += data
        self._wake()

    def connectionLost(self, reason):
        self.closed.callback(None)
        self._wake()

    def _wake(self):
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            w.callback(None)

    def changed(self) -> defer.Deferred:
        d = defer.Deferred()
        self._waiters.append(d)
        return d


class SSEConnection:
    """A raw HTTP/1.0 client (no chunking) reading one response as it streams."""

    def __init__(self, testcase, port: int, path: str, headers: dict[str, str] | None = None):
        self.testcase = testcase
        self.port = port
        self.path = path
        self.headers = headers or {}
        self.proto = _Collect()

    async def open(self) -> "SSEConnection":
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), self.proto)
        extra = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        self.proto.transport.write(f"GET {self.path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode())
        self.testcase.addCleanup(self.close)
        return self

    async def close(self) -> None:
        if not self.proto.closed.called:
            self.proto.transport.loseConnection()
            await self.proto.closed

    @property
    def head(self) -> bytes:
        return self.proto.data.partition(b"\r\n\r\n")[0]

    @property
    def status(self) -> int:
        return int(self.head.split(b" ", 2)[1]) if self.head else 0

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip().decode()
        return None

    @property
    def body(self) -> bytes:
        return self.proto.data.partition(b"\r\n\r\n")[2]

    def frames(self) -> list[dict]:
        return parse_frames(self.body)

    def events(self, kind: str | None = None) -> list[dict]:
        """Messages with data (a fresh stream's "start" marker left out unless asked for)."""
        return [f for f in self.frames() if "data" in f and f.get("event") == kind or
                kind is None and "data" in f and f.get("event") != "start"]

    async def until(self, predicate) -> None:
        while not predicate():
            if self.proto.closed.called:
                raise AssertionError(f"connection closed; received {self.proto.data!r}")
            await self.proto.changed()

    async def until_closed(self) -> None:
        while not self.proto.closed.called:
            await self.proto.changed()


class Tokens:
    """The shop's overlay token as phase 2 will keep it: one current token, rotatable."""

    def __init__(self, current: str = TOKEN):
        self.current = current
        self.checks = 0

    async def valid(self, token: str) -> bool:
        self.checks += 1
        return token == self.current


class Node:
    """One web node's overlay: its tailer, SSE hub and /overlay resource on a real port."""

    def __init__(self, testcase, redis_url: str, tokens: Tokens, clock=None, sound=None, settings=None, **limits):
        self.testcase = testcase
        self.redis_url = redis_url
        self.tokens = tokens
        self.clock = clock or task.Clock()
        self.sound = sound
        self.settings = settings or OverlaySettings()
        self.limits = limits

    def root(self) -> Resource:
        root = Resource()
        root.putChild(b"overlay", OverlayResource(self.events, self.tokens.valid, self.settings, self.sound))
        return root

    async def start(self, wrap=None) -> "Node":
        self.tailer = OverlayTailer(reactor, *open_redis(reactor, self.redis_url), PREFIX, block=1.0)
        self.testcase.addCleanup(lambda: defer.Deferred.fromCoroutine(self.tailer.stop()))
        await self.tailer.start()
        self.events = OverlayEvents(self.clock, self.tailer, self.tokens.valid, **self.limits)
        self.events.start()
        root = self.root()
        self.listening = reactor.listenTCP(0, Site(wrap(root) if wrap else root), interface="127.0.0.1")
        self.testcase.addCleanup(self.listening.stopListening)
        self.testcase.addCleanup(self.events.stop)
        self.port = self.listening.getHost().port
        return self

    async def connect(self, what: str = "events", token: str = TOKEN, headers=None) -> SSEConnection:
        return await SSEConnection(self.testcase, self.port, f"/overlay/{token}/{what}", headers).open()

    async def connected(self, what: str = "events", token: str = TOKEN, headers=None) -> SSEConnection:
        """Connect and wait until the stream has begun (its first id is there)."""
        conn = await self.connect(what, token, headers)
        await conn.until(lambda: any("id" in f for f in conn.frames()) or conn.status not in (0, 200))
        return conn


def run(coroutine_function):
    """Run an ``async def`` test method as a Deferred."""
    def test(self):
        return defer.Deferred.fromCoroutine(coroutine_function(self))
    test.__name__ = coroutine_function.__name__
    test.__doc__ = coroutine_function.__doc__
    return test


class RedisCase(unittest.TestCase):
    timeout = 30

    def setUp(self):
        self.redis = RedisServer(appendonly=False).start()
        self.addCleanup(self.redis.cleanup)
        commands, blocking = open_redis(reactor, self.redis.url, "writer")
        blocking.close()
        self.addCleanup(commands.close)
        self.writer = OverlayStreamWriter(commands, PREFIX, max_len=100)
        self.tokens = Tokens()

    async def node(self, **options) -> Node:
        return await Node(self, self.redis.url, self.tokens, **options).start()


# --- event forms -----------------------------------------------------------------------------

class EventForms(unittest.TestCase):
    def test_money_as_the_owner_sees_it(self):
        self.assertEqual(rubles(Decimal("1990")), "1\u00a0990,00\u00a0₽")
        self.assertEqual(rubles(Decimal("1234567.5")), "1\u00a0234\u00a0567,50\u00a0₽")

    def test_round_trip_through_the_stream_fields(self):
        for event in (donation(), donation(name=None, message=None),
                      GoalEvent(Decimal("3500.00"), Decimal("10000.00"), "Новый микрофон", "2026-12-31"),
                      SkipEvent("1732900000000-3")):
            self.assertEqual(decode(encode(event)), event)

    def test_private_donor_has_neither_name_nor_message(self):
        event = donation(name="Иван Петров", message="мой телефон 8-900", public=False)
        self.assertEqual((event.name, event.message), (None, None))
        frame = sse_frame("1-0", event).decode()
        self.assertNotIn("Иван", frame)
        self.assertNotIn("8-900", frame)
        self.assertIn('"name":null', frame)

    def test_frame_layout_and_one_data_line(self):
        event = donation(message="line one\nline two\r\n\nevent: goal")
        frame = sse_frame("1732900000000-0", event)
        self.assertTrue(frame.endswith(b"\n\n"))
        lines = frame.decode().split("\n")
        self.assertEqual(lines[:2], ["event: donation", "id: 1732900000000-0"])
        self.assertTrue(lines[2].startswith("data: "))
        self.assertEqual(lines[3:], ["", ""])  # the newlines in the message stay inside the JSON
        data = json.loads(lines[2][6:])
        self.assertEqual(data, {"amount": "1990.00", "name": "Маша", "message": "line one\nline two\r\n\nevent: goal",
                                "paid_at": PAID_AT, "amount_text": "1\u00a0990,00\u00a0₽"})

    def test_goal_percent(self):
        self.assertEqual(GoalEvent(Decimal("3500"), Decimal("10000"), "t", None).percent, 35)
        self.assertEqual(GoalEvent(Decimal("20000"), Decimal("10000"), "t", None).percent, 100)
        self.assertEqual(GoalEvent(Decimal("5"), Decimal("0"), "t", None).percent, 100)

    def test_bad_entries_are_refused(self):
        for fields in ([], ["k", "nope", "d", "{}"], ["k", "donation", "d", "not json"],
                       ["k", "donation", "d", '{"amount": "NaN"}'], ["k", "donation", "d", '{"amount": "-5"}'],
                       ["k", "skip", "d", '{"target": "x"}'], ["k", "goal", "d", "[1]"]):
            with self.assertRaises(BadEvent, msg=fields):
                decode(fields)

    def test_entry_ids_order_numerically(self):
        self.assertLess(entry_order("999-5"), entry_order("1000-0"))
        self.assertLess(entry_order("1000-9"), entry_order("1000-10"))
        for bad in ("", "1", "a-1", "1-2-3", "-1-0"):
            with self.assertRaises(BadEvent):
                entry_order(bad)


# --- the SSE endpoint -------------------------------------------------------------------------

class EventStream(RedisCase):
    @run
    async def test_fresh_stream_headers_goal_and_live_donation(self):
        goal_id = await self.writer.append(GoalEvent(Decimal("3500.00"), Decimal("10000.00"), "Микрофон", None))
        earlier = await self.writer.append(donation("50.00"))
        node = await self.node()
        conn = await node.connected()
        self.assertEqual(conn.status, 200)
        self.assertEqual(conn.header("content-type"), "text/event-stream; charset=utf-8")
        self.assertEqual(conn.header("cache-control"), "no-store")
        self.assertTrue(conn.body.startswith(b"retry: 3000\n\n"))
        first = conn.events()[0]
        # the current goal, with the stream's newest id: a reconnect resumes after it
        self.assertEqual((first["event"], first["id"]), ("goal", earlier))
        self.assertEqual(first["data"]["raised_text"], "3\u00a0500,00\u00a0₽")
        self.assertEqual(first["data"]["percent"], 35)
        self.assertLess(entry_order(goal_id), entry_order(earlier))
        self.assertEqual(conn.events("donation"), [])  # a fresh overlay shows no old donations
        new_id = await self.writer.append(donation("1990.00"))
        await conn.until(lambda: conn.events("donation"))
        [got] = conn.events("donation")
        self.assertEqual(got["id"], new_id)
        self.assertEqual(got["data"], {"amount": "1990.00", "name": "Маша", "message": "Привет!", "paid_at": PAID_AT,
                                       "amount_text": "1\u00a0990,00\u00a0₽"})

    @run
    async def test_empty_stream_still_gives_an_id(self):
        node = await self.node()
        conn = await node.connected()
        self.assertEqual(conn.frames()[1], {"event": "start", "id": "0-0", "data": {}})
        new_id = await self.writer.append(donation())
        await conn.until(lambda: conn.events("donation"))
        self.assertEqual(conn.events("donation")[0]["id"], new_id)

    @run
    async def test_last_event_id_resumes_with_the_missed_events_none_twice(self):
        node = await self.node()
        ids = [await self.writer.append(donation(f"{100 + i}.00")) for i in range(4)]
        conn = await node.connected(headers={"Last-Event-ID": ids[1]})
        await conn.until(lambda: len(conn.events()) >= 2)
        live = await self.writer.append(donation("999.00"))
        await conn.until(lambda: any(f.get("id") == live for f in conn.frames()))
        got = [(f["id"], f["data"]["amount"]) for f in conn.events()]
        self.assertEqual(got, [(ids[2], "102.00"), (ids[3], "103.00"), (live, "999.00")])
        numbers = [entry_order(f["id"]) for f in conn.frames() if "id" in f]
        self.assertEqual(numbers, sorted(set(numbers)))  # increasing, none twice

    @run
    async def test_connecting_while_donations_arrive_loses_none_and_repeats_none(self):
        one, two = await self.node(replay_limit=500), await self.node(replay_limit=500)
        first = await self.writer.append(donation("1.00"))

        def burst(n, start):
            return [defer.Deferred.fromCoroutine(self.writer.append(donation(f"{start + i}.00"))) for i in range(n)]
        pending = burst(40, 2)
        conns = [await node.connect(headers={"Last-Event-ID": first}) for node in (one, two)]
        pending += burst(40, 42)
        conns += [await node.connect() for node in (one, two)]  # fresh ones: only what follows their start
        pending += burst(40, 82)
        ids = await defer.gatherResults(pending)
        self.assertEqual(ids, sorted(ids, key=entry_order))
        for conn in conns:
            await conn.until(lambda: any(f.get("id") == ids[-1] for f in conn.frames()))
        for conn in conns[:2]:
            self.assertEqual([f["id"] for f in conn.events()], ids)
        for conn in conns[2:]:
            start = [f["id"] for f in conn.frames() if "id" in f][0]
            self.assertEqual([f["id"] for f in conn.events("donation")],
                             [i for i in ids if entry_order(i) > entry_order(start)])

    @run
    async def test_resume_from_the_query_when_the_page_opened_a_new_stream(self):
        node = await self.node()
        ids = [await self.writer.append(donation(f"{100 + i}.00")) for i in range(3)]
        conn = await node.connected(headers={}, what=f"events?last={ids[0]}")
        await conn.until(lambda: len(conn.events()) >= 2)
        self.assertEqual([f["id"] for f in conn.events()], ids[1:])

    @run
    async def test_resume_replays_at_most_the_newest_few(self):
        node = await self.node(replay_limit=3)
        ids = [await self.writer.append(donation(f"{10 + i}.00")) for i in range(6)]
        conn = await node.connected(headers={"Last-Event-ID": ids[0]})
        await conn.until(lambda: len(conn.events()) >= 3)
        self.assertEqual([f["id"] for f in conn.events()], ids[3:])

    @run
    async def test_a_malformed_last_event_id_is_ignored(self):
        await self.writer.append(donation())
        node = await self.node()
        conn = await node.connected(headers={"Last-Event-ID": "junk-id"})
        self.assertEqual(conn.status, 200)
        self.assertEqual(conn.events("donation"), [])

    @run
    async def test_private_donor_never_leaks(self):
        node = await self.node()
        conn = await node.connected()
        await self.writer.append(donation("300.00", name="Секретный Донор", message="не показывать", public=False))
        await conn.until(lambda: conn.events("donation"))
        data = conn.events("donation")[0]["data"]
        self.assertEqual((data["name"], data["message"], data["amount"]), (None, None, "300.00"))
        raw = self.redis.command("XRANGE", stream_key(PREFIX), "-", "+")
        self.assertNotIn("Секретный", str(raw))
        self.assertNotIn("Секретный".encode(), conn.proto.data)
        self.assertNotIn("показывать".encode(), conn.proto.data)

    @run
    async def test_skip_and_replay(self):
        node = await self.node()
        conn = await node.connected()
        first = await self.writer.append(donation("100.00"))
        await self.writer.skip(first)
        again = await self.writer.replay(first)
        self.assertIsNotNone(again)
        self.assertIsNone(await self.writer.replay(await self.writer.skip(first)))  # a skip is no donation
        await conn.until(lambda: len(conn.events()) >= 4)
        got = [(f["event"], f["id"]) for f in conn.events()]
        self.assertEqual(got[:3], [("donation", first), ("skip", got[1][1]), ("donation", again)])
        self.assertEqual(conn.events("skip")[0]["data"], {"target": first})
        self.assertEqual(conn.events("donation")[1]["data"]["amount"], "100.00")

    @run
    async def test_stream_is_capped(self):
        for i in range(400):
            await self.writer.append(donation("1.00"))
        length = self.redis.command("XLEN", stream_key(PREFIX))
        self.assertLess(length, 400)
        self.assertGreaterEqual(length, 100)


class Tokens404(RedisCase):
    @run
    async def test_wrong_malformed_or_unknown_path_is_404(self):
        node = await self.node()
        for path in (f"/overlay/{OTHER}/events", f"/overlay/{OTHER}/alerts", "/overlay/short/events",
                     f"/overlay/{TOKEN}/nothing", f"/overlay/{TOKEN}", f"/overlay/{TOKEN}/events/more",
                     "/overlay/" + "%2e%2e" * 10 + "/events"):
            conn = await SSEConnection(self, node.port, path).open()
            await conn.until_closed()
            self.assertEqual(conn.status, 404, path)
        self.assertEqual(self.tokens.checks, 2)  # malformed ones never reach the ledger

    @run
    async def test_rotated_token_disconnects_and_then_answers_404(self):
        node = await self.node()
        conn = await node.connected()
        self.tokens.current = OTHER  # `ymds overlay-url --rotate`
        node.clock.advance(15)  # the heartbeat checks the tokens in use again
        await conn.until_closed()
        again = await node.connect()
        await again.until_closed()
        self.assertEqual(again.status, 404)
        fresh = await node.connected(token=OTHER)
        self.assertEqual(fresh.status, 200)

    @run
    async def test_a_failing_token_check_is_503_not_404(self):
        async def broken(token):
            raise ConnectionError("billing unreachable")
        self.tokens.valid = broken  # type: ignore[method-assign]
        node = await self.node()
        conn = await node.connect()
        await conn.until_closed()
        self.assertEqual(conn.status, 503)
        self.assertEqual(conn.header("retry-after"), "5")


class Limits(RedisCase):
    @run
    async def test_per_token_limit_is_429(self):
        node = await self.node(max_per_token=2, max_total=10)
        a = await node.connected()
        await node.connected()
        third = await node.connect()
        await third.until_closed()
        self.assertEqual(third.status, 429)
        self.assertEqual(third.header("retry-after"), "30")
        await a.close()
        await wait_for(lambda: len(node.events.clients) == 1)
        again = await node.connected()
        self.assertEqual(again.status, 200)  # a closed overlay frees its place

    @run
    async def test_overall_limit_is_503(self):
        self.tokens.current = TOKEN
        node = await self.node(max_per_token=5, max_total=2)
        await node.connected()
        await node.connected()
        third = await node.connect()
        await third.until_closed()
        self.assertEqual(third.status, 503)


async def wait_for(predicate, step: float = 0.01) -> None:
    """Wait for server-side state that no client sees (bounded by the test's timeout)."""
    while not predicate():
        await task.deferLater(reactor, step)


class Heartbeat(RedisCase):
    @run
    async def test_heartbeat_every_15_seconds_on_the_clock(self):
        node = await self.node()
        a = await node.connected()
        b = await node.connected()
        self.assertNotIn(b": hb\n\n", a.body)
        node.clock.advance(14.9)
        node.clock.advance(0.1)
        await a.until(lambda: a.body.count(b": hb\n\n") == 1)
        await b.until(lambda: b.body.count(b": hb\n\n") == 1)
        node.clock.advance(15)
        await a.until(lambda: a.body.count(b": hb\n\n") == 2)
        self.assertEqual(a.frames()[-1], {"comment": "hb"})


class TwoWebNodes(RedisCase):
    @run
    async def test_a_donation_reaches_overlays_on_both_nodes_exactly_once(self):
        one, two = await self.node(), await self.node()
        a, b = await one.connected(), await two.connected()
        a2 = await two.connected()
        ids = [await self.writer.append(donation(f"{i + 1}00.00")) for i in range(3)]
        goal = await self.writer.append(GoalEvent(Decimal("600.00"), Decimal("1000.00"), "Цель", None))
        for conn in (a, b, a2):
            await conn.until(lambda: any(f.get("id") == goal for f in conn.frames()))
            self.assertEqual([(f["event"], f["id"]) for f in conn.events()],
                             [("donation", ids[0]), ("donation", ids[1]), ("donation", ids[2]), ("goal", goal)])
            self.assertEqual(conn.events("goal")[-1]["data"]["raised"], "600.00")
        self.assertEqual(one.tailer.subscribers, 1)
        self.assertEqual(two.tailer.subscribers, 2)


class HeldEntries(unittest.TestCase):
    """The order rule of one client, entry by entry (a recording request stands in for the socket)."""

    class Recorded:
        def __init__(self):
            self.written = b""

        def write(self, data):
            self.written += data

    def test_held_then_backlog_overlap_is_sent_once_in_order(self):
        from ymds.overlay.sse import _Client
        request = self.Recorded()
        client = _Client(request, TOKEN, max_backlog=10)
        client.offer("5-0", donation("5.00"))  # the tailer ran ahead of the backlog read
        client.offer("6-0", donation("6.00"))
        client.last_sent = entry_order("3-0")  # Last-Event-ID
        for entry_id in ("4-0", "5-0"):
            client.send(entry_id, donation(entry_id[0] + ".00"))
        client.go_live()
        client.offer("6-0", donation("6.00"))  # a lagging tailer repeats what the backlog gave
        client.offer("7-0", donation("7.00"))
        self.assertEqual([f["id"] for f in parse_frames(request.written)], ["4-0", "5-0", "6-0", "7-0"])


# --- pages -------------------------------------------------------------------------------------

class Pages(RedisCase):
    @run
    async def test_alerts_and_goal_pages(self):
        node = await self.node(settings=OverlaySettings(alert_seconds=6, sound=True, lang="ru"),
                               sound=(b"ID3fake", b"audio/mpeg"))
        alerts = await node.connect("alerts")
        await alerts.until_closed()
        self.assertEqual(alerts.status, 200)
        body = alerts.body.decode()
        self.assertIn(f'data-events="/overlay/{TOKEN}/events"', body)
        self.assertIn('data-seconds="6"', body)
        self.assertIn(f'data-sound="/overlay/{TOKEN}/sound"', body)
        self.assertIn('<script src="/static/overlay.js" defer="defer"></script>', body)
        self.assertNotIn("<script>", body)  # nothing inline: CSP stays 'self'
        goal = await node.connect("goal")
        await goal.until_closed()
        self.assertIn('<progress class="goal-bar"', goal.body.decode())
        sound = await node.connect("sound")
        await sound.until_closed()
        self.assertEqual((sound.status, sound.header("content-type"), sound.body), (200, "audio/mpeg", b"ID3fake"))

    @run
    async def test_no_sound_configured(self):
        node = await self.node()
        alerts = await node.connect("alerts")
        await alerts.until_closed()
        self.assertIn('data-sound=""', alerts.body.decode())
        sound = await node.connect("sound")
        await sound.until_closed()
        self.assertEqual(sound.status, 404)


class SoundFile(unittest.TestCase):
    def test_read_sound(self):
        folder = tempfile.mkdtemp()
        path = os.path.join(folder, "ding.mp3")
        with open(path, "wb") as f:
            f.write(b"ID3")
        self.assertEqual(read_sound(path), (b"ID3", b"audio/mpeg"))
        with open(os.path.join(folder, "big.ogg"), "wb") as f:
            f.write(b"0" * (2 * 1024 * 1024 + 1))
        with self.assertRaisesRegex(ValueError, "larger than 2 MB"):
            read_sound(os.path.join(folder, "big.ogg"))
        with self.assertRaisesRegex(ValueError, "not an audio file"):
            read_sound(os.path.join(folder, "notes.txt"))


class Moderation(unittest.TestCase):
    def test_blocked_words_are_masked_as_whole_words_any_case(self):
        from ymds.overlay.moderation import WordMask, load_blocked_words
        folder = tempfile.mkdtemp()
        path = os.path.join(folder, "blocked.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write("# one a line\nдурак\n\nSpam Bot\nёжик\n")
        mask = WordMask(load_blocked_words(path))
        self.assertEqual(mask("Ты ДУРАК, а не дураковатый"), "Ты ***, а не дураковатый")
        self.assertEqual(mask("spam bot here; spambot"), "*** here; spambot")
        self.assertEqual(mask("Ежик и ёжик"), "*** и ***")
        self.assertIsNone(mask(None))
        self.assertEqual(WordMask([])("anything"), "anything")

    def test_moderate(self):
        from ymds.overlay.moderation import WordMask, moderate
        mask = WordMask(["плохо"])
        self.assertIsNone(moderate(donation("49.99"), Decimal("50"), mask))
        shown = moderate(donation("50.00", name="Плохо", message="очень плохо!"), Decimal("50"), mask)
        self.assertEqual((shown.name, shown.message, shown.amount), ("***", "очень ***!", Decimal("50.00")))
        private = moderate(donation("500.00", public=False), Decimal("0"), mask)
        self.assertEqual((private.name, private.message), (None, None))
