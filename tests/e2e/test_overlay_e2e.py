"""Issue 17 end to end on real processes: two web nodes and a billing node.

A donor pays through the sandbox on web node 1 (where YooMoney's notification arrives);
the overlay connected to web node 2 receives the alert exactly once (the sandbox delivers
the notification twice), the goal bar moves by the amounts paid, and a donor who did not
choose "show my name publicly" appears nowhere: not in any event, overlay page, the
donation page of either node or the Redis stream.  Chromium screenshots of the real
donation page (phone and desktop) go to test-artifacts/overlay-donate-live-*.png, and of the
live alerts and goal pages (chromium as OBS) to test-artifacts/overlay-live-*.png.
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from decimal import Decimal

from twisted.internet import threads
from twisted.trial import unittest

from tests.e2e.harness import REPO, Cluster, as_deferred, wait_until
from tests.support import webflow
from tests.support.processes import test_env
from ymds.overlay.events import entry_order

DONATIONS = {"presets": ["100", "300", "500"], "goal": "10000.00", "goal_title": "Новый микрофон",
             "goal_until": "2026-12-31", "show_supporters": True}
SECRET_NAME = "Тайный Донор"
SECRET_MESSAGE = "никому не показывать"


class SSEReader:
    """Reads ``GET <path>`` as Server-Sent Events in a thread; ``events`` holds (event, id,
    data) in arrival order and ``raw`` every byte received.  Reconnects while the node
    answers 503 (its stream reader starting)."""

    def __init__(self, host: str, port: int, path: str, last_event_id: str | None = None):
        self.host, self.port, self.path = host, port, path
        self.headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self.events: list[tuple[str, str, dict]] = []
        self.times: list[float] = []  # time.monotonic() of each event's arrival
        self.raw = b""
        self.status: int | None = None
        self._conn: http.client.HTTPSConnection | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "SSEReader":
        self._thread.start()
        return self

    def _run(self) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        while not self._stop:
            conn = self._conn = http.client.HTTPSConnection(self.host, self.port, context=context, timeout=60)
            try:
                conn.request("GET", self.path, headers=self.headers)
                response = conn.getresponse()
                self.status = response.status
                if response.status == 503:
                    response.read()
                    conn.close()
                    threading.Event().wait(0.2)
                    continue
                if response.status != 200:
                    return
                self._read(response)
            except (OSError, http.client.HTTPException):
                if self._stop:
                    return
            return

    def _read(self, response) -> None:
        event, entry_id, data = "message", "", ""
        while not self._stop:
            line = response.fp.readline()
            if not line:
                return
            self.raw += line
            text = line.decode("utf-8").rstrip("\n")
            if text.startswith("event: "):
                event = text[7:]
            elif text.startswith("id: "):
                entry_id = text[4:]
            elif text.startswith("data: "):
                data = text[6:]
            elif text == "" and data:
                self.times.append(time.monotonic())
                self.events.append((event, entry_id, json.loads(data)))
                event, entry_id, data = "message", "", ""

    def of(self, kind: str) -> list[tuple[str, dict]]:
        return [(i, d) for e, i, d in self.events if e == kind]

    def stop(self) -> None:
        self._stop = True
        if self._conn is not None and self._conn.sock is not None:
            try:
                self._conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)


def overlay_url(config_path: str, cwd: str) -> str:
    """``ymds overlay-url``'s alerts URL, as the owner runs it."""
    out = subprocess.run([sys.executable, "-m", "ymds.cli", "--config", config_path, "overlay-url"], cwd=cwd,
                         env={**test_env(), "PYTHONPATH": REPO}, capture_output=True, text=True, timeout=60, check=True)
    return next(line.split(": ", 1)[1] for line in out.stdout.splitlines() if line.startswith("alerts: "))


def screenshots(base: str) -> dict:
    """The real donation page on a phone and a desktop (chromium), with its goal bar value."""
    from playwright.sync_api import sync_playwright

    from tests.test_browser_pay import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
    os.makedirs(ARTIFACTS, exist_ok=True)
    seen: dict = {"errors": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            for name, viewport in (("phone", {"width": 390, "height": 844}), ("desktop", {"width": 1280, "height": 900})):
                tab = browser.new_page(viewport=viewport, locale="ru-RU", ignore_https_errors=True)
                tab.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
                tab.goto(base + "/?lang=ru")
                seen[f"{name}_overflow"] = tab.evaluate("document.documentElement.scrollWidth") - viewport["width"]
                seen[f"{name}_bar"] = tab.locator(".goal-progress").evaluate("b => b.value")
                seen[f"{name}_presets"] = tab.locator("button.preset").count()
                tab.screenshot(path=os.path.join(ARTIFACTS, f"overlay-donate-live-{name}.png"), full_page=True)
        finally:
            browser.close()
    return seen


def watch_overlay(base: str, token: str, ready: threading.Event) -> dict:
    """Chromium as OBS: the alerts and goal pages of one web node, open before the donations;
    waits for the public donor's alert and the goal at 800.00, with screenshots."""
    from playwright.sync_api import sync_playwright

    from tests.test_browser_pay import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
    seen: dict = {"errors": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            pages = {}
            for name in ("alerts", "goal"):
                tab = pages[name] = browser.new_page(viewport={"width": 800, "height": 600}, ignore_https_errors=True)
                tab.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
                tab.goto(f"{base}/overlay/{token}/{name}")
                tab.locator('body[data-live="1"]').wait_for(state="attached", timeout=30000)
            pages["goal"].evaluate("window.notReloaded = true")
            ready.set()
            alert = pages["alerts"].locator("#alert .alert-name", has_text="Аня")
            alert.wait_for(state="visible", timeout=60000)
            seen["alert"] = pages["alerts"].locator("#alert").inner_text()
            pages["alerts"].locator("#alert").evaluate("e => Promise.all(e.getAnimations().map(a => a.finished))")
            pages["alerts"].screenshot(path=os.path.join(ARTIFACTS, "overlay-live-alerts.png"))
            pages["goal"].locator('#goal[data-raised="800.00"]').wait_for(timeout=60000)
            seen["goal"] = pages["goal"].locator("#goal").inner_text()
            seen["not_reloaded"] = pages["goal"].evaluate("window.notReloaded === true")
            pages["goal"].screenshot(path=os.path.join(ARTIFACTS, "overlay-live-goal.png"))
        finally:
            ready.set()
            browser.close()
    return seen


class OverlayAcrossWebNodes(unittest.TestCase):
    timeout = 240

    @as_deferred
    async def test_donation_reaches_the_other_web_node_once_private_name_nowhere(self):
        cluster = Cluster(self, telegram=False)
        web1 = cluster.node("web1", "web", donations=DONATIONS)
        web2 = cluster.node("web2", "web", donations=DONATIONS)
        cluster.node("billing", "billing", donations=DONATIONS)
        alerts = await threads.deferToThread(overlay_url, web1.config_path, cluster.dir)
        token = alerts.split("/overlay/", 1)[1].split("/", 1)[0]
        reader = SSEReader("127.0.0.1", web2.port, f"/overlay/{token}/events").start()
        self.addCleanup(reader.stop)
        await wait_until(lambda: reader.events, timeout=30, what="the first event (goal) at web node 2")
        self.assertEqual(reader.events[0][0], "goal")
        self.assertEqual(reader.events[0][2]["raised"], "0.00")
        ready = threading.Event()
        browser = threads.deferToThread(watch_overlay, web2.base, token, ready)
        await wait_until(ready.is_set, timeout=60, what="chromium on the overlay pages")

        # A public donor (the sandbox delivers the notification twice) and a private one by preset.
        public_pay = await threads.deferToThread(self.donate, web1.base, {
            "amount": "300", "name": "Аня", "message": "<b>привет</b>", "public": "1"})
        await threads.deferToThread(webflow.pay_in_sandbox, public_pay, "AC", ("duplicate",))
        private_pay = await threads.deferToThread(self.donate, web1.base, {
            "preset": "500.00", "amount": "", "name": SECRET_NAME, "message": SECRET_MESSAGE})
        await threads.deferToThread(webflow.pay_in_sandbox, private_pay, "PC")
        await wait_until(lambda: len(reader.of("donation")) >= 2, timeout=30, what="two alerts at web node 2")
        await wait_until(lambda: reader.of("goal") and reader.of("goal")[-1][1]["raised"] == "800.00", timeout=30,
                         what="the goal at 800.00")
        # a little longer: a duplicate would have arrived by now
        await wait_until(lambda: cluster.ledger.scalar("SELECT count(*) FROM overlay_outbox WHERE sent_at IS NULL") == 0,
                         timeout=30, what="the overlay outbox sent")
        donations = [d for _, d in reader.of("donation")]
        self.assertEqual([(d["amount"], d["name"], d["message"]) for d in donations],
                         [("300.00", "Аня", "<b>привет</b>"), ("500.00", None, None)])
        ids = [i for _, i, _ in reader.events]
        self.assertEqual(len(ids), len(set(ids)))
        goals = [Decimal(d["raised"]) for _, d in reader.of("goal")]
        self.assertEqual(goals, [Decimal("0.00"), Decimal("300.00"), Decimal("800.00")])
        self.assertEqual(reader.of("goal")[-1][1]["percent"], 8)

        # a browser that lost web node 2 resumes on web node 1 from the last id it saw: the
        # ids are the shared stream's, so it gets exactly what came after, once
        first_alert = reader.of("donation")[0][0]
        resumed = SSEReader("127.0.0.1", web1.port, f"/overlay/{token}/events", first_alert).start()
        self.addCleanup(resumed.stop)
        await wait_until(lambda: len(resumed.events) >= 3, timeout=30, what="the resumed stream's backlog")
        after = [(e, i) for e, i, _ in reader.events if entry_order(i) > entry_order(first_alert)]
        self.assertEqual([(e, i) for e, i, _ in resumed.events], after)

        watched = await browser
        self.assertEqual(watched["errors"], [])
        self.assertIn("Аня", watched["alert"])
        self.assertIn("<b>привет</b>", watched["alert"])  # HTML shown as text
        self.assertIn("800,00", watched["goal"])
        self.assertTrue(watched["not_reloaded"])

        # the private donor's name and message: nowhere
        pages = []
        for node in (web1, web2):
            for path in ("/?lang=ru", "/?lang=en", f"/overlay/{token}/alerts", f"/overlay/{token}/goal"):
                status, _, body = await threads.deferToThread(webflow.request, node.base + path)
                self.assertEqual(status, 200, path)
                pages.append(body)
        stream = repr(cluster.r("XRANGE", f"{cluster.prefix}:overlay:events", "-", "+"))
        for text in pages + [reader.raw.decode("utf-8"), stream]:
            self.assertNotIn(SECRET_NAME, text)
            self.assertNotIn(SECRET_MESSAGE, text)
        self.assertIn("Аня", pages[0])  # the public one is in the feed
        self.assertIn('value="8"', pages[0])  # the goal bar on the donation page

        # wrong and rotated tokens answer 404
        status, _, _ = await threads.deferToThread(webflow.request, f"{web2.base}/overlay/{'x' * 32}/events")
        self.assertEqual(status, 404)

        seen = await threads.deferToThread(screenshots, web1.base)
        self.assertEqual(seen["errors"], [])
        self.assertEqual((seen["phone_bar"], seen["desktop_bar"]), (8, 8))
        self.assertEqual((seen["phone_presets"], seen["desktop_presets"]), (3, 3))
        self.assertLessEqual(seen["phone_overflow"], 0)

    @staticmethod
    def donate(base: str, form: dict) -> str:
        status, headers, body = webflow.request(base + "/donate", form)
        assert status == 303, (status, body[:500])
        return headers["Location"]
