"""The donation page with the creator pieces, served by the real web resources (billing's
answers come from a recording queue): presets pay in one tap and only configured ones are
accepted, "show my name publicly" is recorded only when ticked, the goal bar and the
supporters feed come from billing's donation_board and the page still works without it."""

from __future__ import annotations

from urllib.parse import urlencode

from twisted.trial import unittest

from tests.support.redis_server import free_port
from tests.test_web_support import LiveSite, make_config
from ymds.billing import overlay_jobs

BOARD = {"raised": "3500.00", "goal": "10000.00", "goal_title": "Новый микрофон", "goal_until": "2026-12-31",
         "latest": [{"name": "Маша", "amount": "1990.00", "message": "<b>Спасибо</b>", "paid_at": "2026-11-29T20:00:00Z"}],
         "top": [{"name": "Маша", "total": "12990.00"}]}


class CreatorPageTests(unittest.TestCase):
    def site(self, board=BOARD, **donations):
        port = free_port()
        config = make_config(port, donations={"presets": ["100", "300"], "goal": "10000.00",
                                              "goal_title": "Новый микрофон", "goal_until": "2026-12-31",
                                              "show_supporters": True, **donations})
        site = LiveSite(self, config=config)
        self.public_calls: list = []

        def donation_board(args):
            if board is None:
                raise ConnectionError("billing is away")
            return board

        def donation_public(args):
            self.public_calls.append(args)
            return {"public": True}

        site.queue.handlers[overlay_jobs.DONATION_BOARD] = donation_board
        site.queue.handlers[overlay_jobs.DONATION_PUBLIC] = donation_public
        return site

    def donate(self, site, **form):
        body = urlencode({"lang": "ru", **form}).encode()
        return site.request("POST", "/donate", body, {"content-type": "application/x-www-form-urlencoded"})

    def created(self, site):
        return [args for _, task, args in site.queue.calls if task == "create_donation"]

    async def test_landing_shows_presets_goal_and_public_supporters(self):
        site = self.site()
        response, body = await site.request("GET", "/?lang=ru")
        page = body.decode()
        self.assertEqual(response.code, 200)
        self.assertIn('name="preset" class="button preset" formnovalidate="formnovalidate" value="300.00"', page)
        self.assertIn('<progress class="goal-progress" max="100" value="35"', page)
        self.assertIn("Новый микрофон", page)
        self.assertIn("Маша", page)
        self.assertIn("&lt;b&gt;Спасибо&lt;/b&gt;", page)  # HTML in a message is text
        self.assertIn('name="public" type="checkbox" value="1"', page)
        self.assertIn('href="/static/donate.css"', page)
        response, _ = await site.request("GET", "/static/donate.css")
        self.assertEqual(response.code, 200)

    async def test_the_page_works_while_billing_does_not_answer(self):
        site = self.site(board=None)
        response, body = await site.request("GET", "/")
        self.assertEqual(response.code, 200)
        self.assertIn('name="preset"', body.decode())
        self.assertNotIn("goal-progress", body.decode())

    async def test_a_configured_preset_pays_that_amount(self):
        site = self.site()
        response, _ = await self.donate(site, preset="300.00", amount="", name="Аня")
        self.assertEqual(response.code, 303)
        self.assertEqual([str(a["amount"]) for a in self.created(site)], ["300.00"])

    async def test_a_forged_preset_is_refused(self):
        site = self.site()
        response, body = await self.donate(site, preset="1.00", amount="500")
        self.assertEqual(response.code, 400)
        self.assertEqual(self.created(site), [])

    async def test_public_is_recorded_only_when_ticked_with_a_name(self):
        site = self.site()
        await self.donate(site, amount="150", name="Аня", public="1")
        await self.donate(site, amount="150", name="Тайный")
        await self.donate(site, amount="150", name="", public="1")
        self.assertEqual([c["name"] for c in self.public_calls], ["Аня"])
        self.assertTrue(self.public_calls[0]["label"])

    async def test_only_presets_no_billing_call_for_the_landing(self):
        site = self.site(goal="", goal_title="", goal_until="", show_supporters=False)
        _, body = await site.request("GET", "/")
        self.assertIn('name="preset"', body.decode())
        self.assertFalse([t for _, t, _ in site.queue.calls if t == overlay_jobs.DONATION_BOARD])


class GoalSnapshotTests(unittest.TestCase):
    """A fresh overlay's goal: the stream's newest goal when it is the configured one, else billing's."""

    def setUp(self):
        from tests.support.redis_server import RedisServer
        self.redis = RedisServer(appendonly=False).start()
        self.addCleanup(self.redis.cleanup)

    @staticmethod
    async def appended(node, writer, event):
        """Append ``event`` and wait until the node's reader has handed it out."""
        from twisted.internet import defer
        seen: defer.Deferred = defer.Deferred()
        unsubscribe = node.tailer.subscribe(lambda entry_id, e: None if seen.called else seen.callback(e))
        await writer.append(event)
        await seen
        unsubscribe()

    async def test_stream_goal_first_then_billing(self):
        from decimal import Decimal

        from twisted.internet import reactor

        from tests.support.queues import RecordingQueue
        from ymds.overlay.events import GoalEvent
        from ymds.overlay.stream import OverlayStreamWriter, open_redis
        from ymds.overlay.web import make_overlay_node
        config = make_config(free_port(), redis={"url": self.redis.url, "prefix": "gs"},
                             donations={"goal": "1000.00", "goal_title": "Mic"})
        queue = RecordingQueue({overlay_jobs.DONATION_BOARD: lambda args: {**BOARD, "goal": "1000.00",
                                                                            "goal_title": "Mic", "goal_until": None,
                                                                            "raised": "10.00"}})
        node = make_overlay_node(reactor, config, queue)
        await node.tailer.start()
        self.addCleanup(node.tailer.stop)
        snapshot = node.events.goal_snapshot
        self.assertEqual((await snapshot()).raised, Decimal("10.00"))  # an empty stream: billing answers
        self.assertEqual(len(queue.calls), 1)
        commands, blocking = open_redis(reactor, self.redis.url, "t")
        blocking.close()
        self.addCleanup(commands.close)
        writer = OverlayStreamWriter(commands, "gs")
        await self.appended(node, writer, GoalEvent(Decimal("300.00"), Decimal("1000.00"), "Mic", None))
        self.assertEqual((await snapshot()).raised, Decimal("300.00"))
        self.assertEqual(len(queue.calls), 1)  # no billing call
        await self.appended(node, writer, GoalEvent(Decimal("300.00"), Decimal("5000.00"), "Old goal", None))
        self.assertEqual((await snapshot()).goal, Decimal("1000.00"))  # not the configured goal: billing
        self.assertEqual(len(queue.calls), 2)
