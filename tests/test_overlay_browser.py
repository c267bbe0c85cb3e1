"""A real browser (Debian's chromium, headless, through Playwright) shows the overlay pages
as OBS would: the alerts page shows donations pushed into the Redis stream one after
another (a private donor as "Аноним", HTML as text), and the goal bar moves without a
reload.  Behind the web role's real security headers (CSP 'self'), with no console errors.
Screenshots go to test-artifacts/ (git-ignored); docs/img/overlay-*.png are copies of them.
"""
from __future__ import annotations

import os
from decimal import Decimal

from twisted.internet import defer, reactor, threads
from twisted.trial import unittest

from ymds.overlay.events import DonationEvent, GoalEvent
from ymds.overlay.pages import OverlaySettings
from ymds.web.ratelimit import ClientAddress
from ymds.web.site import SecureHeaders, StaticResource, content_security_policy
from tests.test_browser_pay import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.test_overlay import PAID_AT, TOKEN, Node, RedisCase, run


def with_web_headers(root):
    root.putChild(b"static", StaticResource())
    return SecureHeaders(root, content_security_policy("https://yoomoney.ru/quickpay/confirm"), ClientAddress())


def browse(base: str, append, end_streams) -> dict:
    """Runs in a thread (Playwright's sync API has its own loop); ``append(event)`` adds an
    event to the stream from here (through the reactor) and returns its entry id;
    ``end_streams()`` ends every open stream (as a web node stopping does)."""
    from playwright.sync_api import sync_playwright

    os.makedirs(ARTIFACTS, exist_ok=True)
    seen: dict = {"console_errors": []}

    def settled(page):
        """Wait for the entry animation to end (a screenshot mid-fade is pale)."""
        page.locator("#alert").evaluate("e => Promise.all(e.getAnimations().map(a => a.finished))")

    def snapshot(page, name):
        """A screenshot over a dark "stream" behind the transparent page, as OBS composes it."""
        page.evaluate("document.documentElement.style.background = 'linear-gradient(135deg, #1f3b4d, #4a2f5e)'")
        page.screenshot(path=os.path.join(ARTIFACTS, name))
        page.evaluate("document.documentElement.style.background = ''")

    def shown(page):
        return tuple(page.locator(f"#alert .alert-{part}").inner_text() for part in ("name", "amount", "message"))

    def watch(page):
        page.on("console", lambda m: seen["console_errors"].append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: seen["console_errors"].append(str(e)))
        page.on("response", lambda r: seen["console_errors"].append(f"{r.status} {r.url}") if r.status >= 400 else None)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 800, "height": 600})  # an OBS browser source
            watch(page)
            page.goto(f"{base}/overlay/{TOKEN}/alerts")
            page.locator('body[data-live="1"]').wait_for()
            seen["hidden_at_start"] = page.locator("#alert").is_hidden()
            seen["background"] = page.evaluate("[document.documentElement, document.body]"
                                               ".map(e => getComputedStyle(e).backgroundColor)")
            first = append(DonationEvent.from_payment(Decimal("1990.00"), "Маша", "Спасибо за стрим! Удачи",
                                                      True, PAID_AT))
            private = append(DonationEvent.from_payment(Decimal("300.00"), "Секретный Донор", "не показывать",
                                                        False, PAID_AT))
            html = append(DonationEvent.from_payment(Decimal("50.00"), "<b>Bold</b>", "<img src=x>", True, PAID_AT))
            page.locator(f'#alert[data-id="{first}"]').wait_for(state="visible")
            seen["first"] = shown(page)
            settled(page)
            snapshot(page, "overlay-alerts.png")
            # the next alert replaces it after data-seconds, not before
            page.locator(f'#alert[data-id="{private}"]').wait_for(state="visible")
            seen["private"] = shown(page)
            seen["private_html"] = page.content()
            settled(page)
            snapshot(page, "overlay-alerts-private.png")
            page.locator(f'#alert[data-id="{html}"]').wait_for(state="visible")
            seen["html_text"] = shown(page)
            seen["html_elements"] = page.locator("#alert b, #alert img").count()
            page.locator("#alert").wait_for(state="hidden")  # the queue is empty again

            # the node ends the stream; the browser reconnects with Last-Event-ID and shows
            # what was added meanwhile, each once
            page.evaluate("""() => { const box = document.getElementById('alert'); window.shownIds = [];
                new MutationObserver(() => { if (!box.hidden) window.shownIds.push(box.getAttribute('data-id')); })
                    .observe(box, {attributes: true, attributeFilter: ['hidden']}); }""")
            end_streams()
            page.locator('body[data-live="0"]').wait_for(state="attached")
            missed = [append(DonationEvent.from_payment(Decimal(a), "После", None, True, PAID_AT)) for a in ("7", "8")]
            page.locator('body[data-live="1"]').wait_for(state="attached")
            page.locator(f'#alert[data-id="{missed[1]}"]').wait_for(state="visible")
            page.locator("#alert").wait_for(state="hidden")
            seen["after_reconnect"] = page.evaluate("window.shownIds")
            seen["missed"] = missed

            goal = browser.new_page(viewport={"width": 800, "height": 600})
            watch(goal)
            goal.goto(f"{base}/overlay/{TOKEN}/goal")
            goal.locator('#goal[data-raised="3500.00"]').wait_for(state="visible")
            seen["goal_before"] = (goal.locator(".goal-bar").get_attribute("value"), goal.locator("#goal").inner_text())
            snapshot(goal, "overlay-goal-before.png")
            goal.evaluate("window.notReloaded = true")
            append(GoalEvent(Decimal("6490.00"), Decimal("10000.00"), "Новый микрофон", None))
            goal.locator('#goal[data-raised="6490.00"]').wait_for()
            seen["goal_after"] = (goal.locator(".goal-bar").evaluate("b => b.value"), goal.locator("#goal").inner_text())
            seen["not_reloaded"] = goal.evaluate("window.notReloaded === true")
            goal.evaluate("b => Promise.all(document.getAnimations().map(a => a.finished))")
            snapshot(goal, "overlay-goal.png")
        finally:
            browser.close()
    return seen


class OverlayInBrowser(RedisCase):
    timeout = 120

    def setUp(self):
        if not os.path.exists(CHROMIUM):
            raise RuntimeError("chromium is missing: apt-get install -y chromium (the CI script installs it)")
        super().setUp()

    @run
    async def test_alerts_and_goal_pages(self):
        await self.writer.append(GoalEvent(Decimal("3500.00"), Decimal("10000.00"), "Новый микрофон", None))
        node = await Node(self, self.redis.url, self.tokens, settings=OverlaySettings(alert_seconds=1.5),
                          retry=0.3).start(wrap=with_web_headers)

        def append(event):
            return threads.blockingCallFromThread(
                reactor, lambda: defer.Deferred.fromCoroutine(self.writer.append(event)))

        def end_streams():
            threads.blockingCallFromThread(reactor, node.events.stop)

        seen = await threads.deferToThread(browse, f"http://127.0.0.1:{node.port}", append, end_streams)
        self.assertTrue(seen["hidden_at_start"])
        self.assertEqual(seen["background"], ["rgba(0, 0, 0, 0)"] * 2)  # transparent for OBS
        self.assertEqual(seen["first"], ("Маша", "1\u00a0990,00\u00a0₽", "Спасибо за стрим! Удачи"))
        self.assertEqual(seen["private"], ("Аноним", "300,00\u00a0₽", ""))
        self.assertNotIn("Секретный", seen["private_html"])
        self.assertNotIn("показывать", seen["private_html"])
        self.assertEqual(seen["html_text"], ("<b>Bold</b>", "50,00\u00a0₽", "<img src=x>"))
        self.assertEqual(seen["html_elements"], 0)
        self.assertEqual(seen["after_reconnect"], seen["missed"])
        self.assertEqual(seen["goal_before"][0], "35")
        self.assertIn("3\u00a0500,00\u00a0₽ из 10\u00a0000,00\u00a0₽ (35%)", seen["goal_before"][1])
        self.assertEqual(seen["goal_after"][0], 64)
        self.assertIn("6\u00a0490,00\u00a0₽ из 10\u00a0000,00\u00a0₽ (64%)", seen["goal_after"][1])
        self.assertTrue(seen["not_reloaded"])
        self.assertEqual(seen["console_errors"], [])  # no CSP violations, no script errors
