"""``ymds overlay-url [--rotate]`` and ``ymds overlay skip|replay ID`` as the owner runs them
(a real process, a real SQLite ledger and a real Redis)."""

from __future__ import annotations

import re
from decimal import Decimal

from twisted.internet import reactor

from tests.test_cli import CLITestCase
from ymds.overlay.events import DonationEvent, SkipEvent, decode
from ymds.overlay.stream import OverlayStreamWriter, open_redis, stream_key

URL = re.compile(r"^(alerts|goal): https://pay\.example\.org/overlay/([A-Za-z0-9_-]{32})/(alerts|goal)$", re.M)


class OverlayURLTests(CLITestCase):
    async def test_first_run_makes_a_token_rotate_replaces_it(self):
        out, err, code = await self.ymds("overlay-url")
        self.assertEqual(code, 0, err)
        found = URL.findall(out)
        self.assertEqual([(name, page) for name, _, page in found], [("alerts", "alerts"), ("goal", "goal")])
        token = found[0][1]
        self.assertEqual(found[1][1], token)
        self.assertIn("800 x 600", err)
        out2, _, code = await self.ymds("overlay-url")
        self.assertEqual((code, URL.findall(out2)[0][1]), (0, token))
        out3, err3, code = await self.ymds("overlay-url", "--rotate")
        rotated = URL.findall(out3)[0][1]
        self.assertEqual(code, 0)
        self.assertNotEqual(rotated, token)
        self.assertIn("old URLs stop working", err3)
        ledger = await self.ledger()
        self.assertEqual(await ledger.overlay.overlay_token(), rotated)


class OverlayModerationTests(CLITestCase):
    async def test_skip_and_replay(self):
        commands, blocking = open_redis(reactor, self.redis.url, "test")
        blocking.close()
        self.addCleanup(commands.close)
        writer = OverlayStreamWriter(commands, self.prefix)
        entry = await writer.append(DonationEvent(Decimal("100.00"), "Ann", "hi", "2026-11-29T20:00:00Z"))
        out, err, code = await self.ymds("overlay", "skip", entry)
        self.assertEqual(code, 0, err)
        out, err, code = await self.ymds("overlay", "replay", entry)
        self.assertEqual(code, 0, err)
        events = [decode(f) for _, f in await commands.execute("XRANGE", stream_key(self.prefix), "-", "+")]
        self.assertEqual(events[1], SkipEvent(entry))
        self.assertEqual(events[2], events[0])
        self.assertEqual(len(events), 3)
        _, err, code = await self.ymds("overlay", "replay", "1-0")
        self.assertEqual(code, 3)
        self.assertIn("no donation event", err)
        # by the donation's operation id, as the bot's alert and ymds payments show it
        ledger = await self.ledger()
        await ledger.overlay.outbox_add("op-donation-1", 1.0)
        await ledger.overlay.outbox_sent("op-donation-1", entry, 2.0)
        await ledger.close()
        out, err, code = await self.ymds("overlay", "skip", "op-donation-1")
        self.assertEqual((code, out.strip()), (0, f"skipped {entry}: overlays drop that alert (or stop showing it)"),
                         err)
        _, err, code = await self.ymds("overlay", "skip", "op-unknown")
        self.assertEqual(code, 3)
        self.assertIn("no alert was shown", err)
        _, err, code = await self.ymds("overlay", "skip", "x" * 100)
        self.assertEqual(code, 1)
