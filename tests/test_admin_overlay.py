"""Issue 17 in the dashboard: the "Stream alerts" page lists the overlay outbox's donation
alerts; Skip and Replay (POST, CSRF, idempotency key) write the overlay event stream once
per form and are audited with the admin's id.  Real HTTP on loopback -> AdminResource ->
BillingDashboardData -> the wire -> AdminTasks -> a real SQLite ledger and redis-server."""
from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import treq
from twisted.internet import reactor, task
from twisted.trial import unittest
from twisted.web.client import HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.support.queues import RecordingQueue, registry_of
from tests.support.redis_server import RedisServer
from tests.test_billing_tasks import make_config, note
from ymds.admin.billing_data import BillingDashboardData
from ymds.admin.resource import AdminResource
from ymds.admin.sessions import AdminSessions
from ymds.billing import admin_jobs as aj
from ymds.billing.admin import AdminTasks, RedisDeadLetters
from ymds.billing.admin_jobs import AdminClient, AdminCommand
from ymds.billing.open import open_ledger
from ymds.billing.overlay import OverlayPublisher
from ymds.jobwire import InvalidTaskArgs
from ymds.overlay.events import decode
from ymds.overlay.stream import OverlayStreamWriter, stream_key
from ymds.queue import codec
from ymds.queue.redis import RedisPool, parse_redis_url
from ymds.web.site import StaticResource

MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 5, 28, 1, 30, tzinfo=MSK)
PREFIX = "t17"


class AlertsSite(unittest.TestCase):
    """The dashboard on real parts (no tests here)."""
    timeout = 60

    def setUp(self) -> Any:
        self.redis = RedisServer(appendonly=False).start()
        self.addCleanup(self.redis.cleanup)
        self.pool = RedisPool(reactor, parse_redis_url(self.redis.url), name="t17")
        self.addCleanup(self.pool.close)
        self.ledger = open_ledger(self.ledger_url(), reactor)
        self.addCleanup(self.ledger.close)
        self.clock = task.Clock()
        self.clock.advance(NOW.timestamp())
        self.config = make_config(redis={"url": self.redis.url, "prefix": PREFIX})
        self.writer = OverlayStreamWriter(self.pool, PREFIX)
        self.tasks = AdminTasks(self.config, self.ledger, RecordingQueue(), self.clock,
                                RedisDeadLetters(reactor, self.config.redis), overlay_writer=self.writer)
        registry = registry_of(self.tasks)

        def over_the_wire(name: str) -> Any:
            async def call(args: Any) -> Any:  # through the codec both ways, like Redis
                return codec.loads(codec.dumps(await registry.lookup(name)(codec.loads(codec.dumps(args)))))
            return call
        queue = RecordingQueue({name: over_the_wire(name) for name in self.tasks.handlers()})
        self.sessions = AdminSessions(self.pool, self.clock, prefix=PREFIX, idle=600, absolute=3600)
        root = Resource()
        root.putChild(b"static", StaticResource())
        root.putChild(b"admin", AdminResource(self.sessions, BillingDashboardData(AdminClient(queue), MSK),
                                              self.clock, "Europe/Moscow", "en"))
        port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.base = f"http://127.0.0.1:{port.getHost().port}"
        self.http = HTTPConnectionPool(reactor, persistent=False)
        return self.ledger.migrate()

    def ledger_url(self) -> str:
        return "sqlite:///" + os.path.join(tempfile.mkdtemp(prefix="ymds-admin-overlay-"), "ledger.sqlite3")

    async def donate(self, op: str, amount: str, name: str | None = None, public: bool = True) -> str | None:
        """A paid donation through the outbox and the publisher, as billing does it."""
        label = (await self.ledger.invoices.create_invoice("donation", Decimal(amount), self.clock.seconds(), 86400,
                                                           metadata={"name": name or "", "message": "hi"})).label
        if name and public:
            await self.ledger.overlay.mark_public(label, name, self.clock.seconds())
        await self.ledger.payments.apply_payment(note(op, label, amount), "notification", self.clock.seconds())
        await self.ledger.overlay.outbox_add(op, self.clock.seconds())
        return await OverlayPublisher(self.config, self.ledger, self.writer, self.clock).publish(op)

    async def stream(self) -> list[tuple[str, Any]]:
        reply = await self.pool.execute("XRANGE", stream_key(PREFIX), "-", "+")
        return [(str(entry), decode(fields)) for entry, fields in reply]

    async def sign_in(self) -> str:
        token = await self.sessions.issue_login_token(10, admin="tg:42")
        response = await treq.post(self.base + "/admin/login", data={"t": token}, allow_redirects=False, pool=self.http)
        await response.content()
        self.assertEqual(response.code, 303)
        cookie = response.headers.getRawHeaders(b"set-cookie")[0].decode()
        return re.match(r"ymds_admin=([^;]+)", cookie).group(1)

    async def request(self, method: str, path: str, cookie: str, data: dict | None = None) -> tuple[Any, str]:
        response = await treq.request(method, self.base + path, data=data, headers={"cookie": f"ymds_admin={cookie}"},
                                      allow_redirects=False, pool=self.http)
        return response, (await response.content()).decode()

    @staticmethod
    def form(body: str, action: str, entry: str) -> dict[str, str]:
        """The fields of the form posting to ``action`` for ``entry``, as a browser sends them."""
        for found in re.finditer(r"<form[^>]*>.*?</form>", body, re.S):
            html = found.group(0)
            if f'action="{action}"' in html and f'value="{entry}"' in html:
                return dict(re.findall(r'name="([^"]+)" value="([^"]*)"', html))
        raise AssertionError(f"no {action} form for {entry}")

    async def audit(self, kind: str) -> list[dict]:
        rows = await self.ledger.db.run(lambda txn: self.ledger.db.all(txn, "SELECT data FROM events WHERE kind = ?",
                                                                        (kind,)), write=False)
        return [r[0] if isinstance(r[0], dict) else json.loads(r[0]) for r in rows]


class StreamAlertsTests(AlertsSite):
    async def test_page_lists_alerts_private_donors_stay_anonymous(self) -> None:
        shown = await self.donate("op-public", "500.00", name="Маша <b>")
        await self.donate("op-private", "1990.00", name="Секрет", public=False)
        cookie = await self.sign_in()
        response, body = await self.request("GET", "/admin/alerts?lang=en", cookie)
        self.assertEqual(response.code, 200)
        self.assertIn("Stream alerts", body)
        self.assertIn("Маша &lt;b&gt;", body)
        self.assertIn("anonymous", body)
        self.assertNotIn("Секрет", body)  # a donor who did not choose to be shown
        self.assertIn("1,990.00\u00a0₽", body)
        self.assertIn("2026-05-28 01:30", body)  # the owner's zone
        self.assertEqual(self.form(body, "/admin/alerts/skip", shown)["id"], shown)
        self.assertIn('aria-current="page"', body)
        _, ru = await self.request("GET", "/admin/alerts?lang=ru", cookie)
        self.assertIn("Оповещения стрима", ru)
        self.assertIn("Пропустить", ru)

    async def test_skip_once_per_form_and_audited(self) -> None:
        entry = await self.donate("op-1", "500.00", name="Маша")
        cookie = await self.sign_in()
        _, body = await self.request("GET", "/admin/alerts", cookie)
        fields = self.form(body, "/admin/alerts/skip", entry)
        first, _ = await self.request("POST", "/admin/alerts/skip", cookie, fields)
        again, _ = await self.request("POST", "/admin/alerts/skip", cookie, fields)
        self.assertEqual(first.headers.getRawHeaders(b"location"), [b"/admin/alerts?msg=done"])
        self.assertEqual(again.headers.getRawHeaders(b"location"), [b"/admin/alerts?msg=already_done"])
        skips = [e for _, e in await self.stream() if e.kind == "skip"]
        self.assertEqual([s.target for s in skips], [entry])
        self.assertEqual([(a["admin"], a["item"]) for a in await self.audit("admin_skip_alert")], [("tg:42", entry)])

    async def test_replay_shows_the_alert_again_once_per_form(self) -> None:
        entry = await self.donate("op-2", "300.00")
        cookie = await self.sign_in()
        _, body = await self.request("GET", "/admin/alerts", cookie)
        fields = self.form(body, "/admin/alerts/replay", entry)
        for _ in range(2):
            response, _ = await self.request("POST", "/admin/alerts/replay", cookie, fields)
            self.assertEqual(response.code, 303)
        donations = [(i, e) for i, e in await self.stream() if e.kind == "donation"]
        self.assertEqual(len(donations), 2)  # the original and one replay
        self.assertEqual(donations[1][1], donations[0][1])
        self.assertEqual(len(await self.audit("admin_replay_alert")), 1)

    async def test_refused_without_csrf_and_for_a_bad_id(self) -> None:
        entry = await self.donate("op-3", "300.00")
        cookie = await self.sign_in()
        _, body = await self.request("GET", "/admin/alerts", cookie)
        fields = self.form(body, "/admin/alerts/skip", entry)
        response, _ = await self.request("POST", "/admin/alerts/skip", cookie, {**fields, "csrf": "forged"})
        self.assertEqual(response.code, 403)
        response, _ = await self.request("POST", "/admin/alerts/skip", cookie, {**fields, "id": "<script>"})
        self.assertEqual(response.code, 400)
        self.assertEqual([e.kind for _, e in await self.stream()], ["donation"])
        with self.assertRaises(InvalidTaskArgs):
            await self.tasks.skip_alert(AdminCommand("tg:42", "k-bad", item="op-3"))
        self.assertEqual(await self.audit("admin_skip_alert"), [])

    async def test_replay_of_an_entry_the_stream_lost_does_nothing(self) -> None:
        done = await self.tasks.replay_alert(AdminCommand("tg:42", "k-gone", item="1000000000000-0"))
        self.assertEqual((done.applied, done.count), (True, 0))
        self.assertEqual(await self.stream(), [])

    async def test_without_redis_the_action_is_refused_and_the_key_freed(self) -> None:
        tasks = AdminTasks(self.config, self.ledger, RecordingQueue(), self.clock,
                           RedisDeadLetters(reactor, self.config.redis))
        with self.assertRaises(InvalidTaskArgs):
            await tasks.skip_alert(AdminCommand("tg:42", "k-1", item="1000000000000-0"))
        again = await self.tasks.skip_alert(AdminCommand("tg:42", "k-1", item="1000000000000-0"))
        self.assertTrue(again.applied)
        self.assertIn(aj.ADMIN_SKIP_ALERT, aj.ACTIONS)


class StreamAlertsOnPostgres(StreamAlertsTests):
    """The same over PostgreSQL (the outbox query joins payments and donors on both engines)."""

    def ledger_url(self) -> str:
        from tests.support.postgres import create_database, drop_database
        url = create_database()
        self.addCleanup(drop_database, url)
        return url


def browse_alerts(login_url: str, base: str) -> dict:
    """Chromium at phone width (runs in a thread; the reactor serves meanwhile): sign in, open
    Stream alerts, press Skip on the first alert."""
    from playwright.sync_api import sync_playwright

    from tests.test_admin_browser import accessibility
    from tests.test_browser_pay import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
    os.makedirs(ARTIFACTS, exist_ok=True)
    seen: dict = {"errors": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(locale="ru-RU", viewport={"width": 390, "height": 844}).new_page()
            page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
            page.goto(login_url)
            page.get_by_role("button", name="Войти").click()
            page.wait_for_url(base + "/admin")
            page.get_by_role("link", name="Оповещения стрима").click()
            page.wait_for_url(base + "/admin/alerts")
            seen["scroll_width"] = page.evaluate("document.documentElement.scrollWidth")
            seen["axe"] = accessibility(page)
            page.screenshot(path=os.path.join(ARTIFACTS, "admin-alerts-phone.png"), full_page=True)
            page.locator("tr", has_text="Маша").get_by_role("button", name="Пропустить").click()
            page.wait_for_url("**/admin/alerts?msg=done")
            seen["notice"] = page.locator(".notice").inner_text()
        finally:
            browser.close()
    return seen


class StreamAlertsInABrowser(AlertsSite):
    timeout = 240

    async def test_phone_width_skip(self) -> None:
        from tests.test_browser_pay import CHROMIUM
        from ymds.admin.sessions import login_url
        from twisted.internet import threads
        if not os.path.exists(CHROMIUM):
            raise RuntimeError("chromium is missing: apt-get install -y chromium (the CI script installs it)")
        entry = await self.donate("op-b", "500.00", name="Маша")
        base = self.base.replace("127.0.0.1", "localhost")  # a secure context for the Secure cookie
        url = login_url(base, await self.sessions.issue_login_token(10, admin="tg:42"))
        seen = await threads.deferToThread(browse_alerts, url, base)
        self.assertLessEqual(seen["scroll_width"], 390)
        self.assertEqual(seen["axe"], [])
        self.assertEqual(seen["errors"], [])
        self.assertEqual(seen["notice"], "Готово.")
        self.assertEqual([e.target for _, e in await self.stream() if e.kind == "skip"], [entry])
