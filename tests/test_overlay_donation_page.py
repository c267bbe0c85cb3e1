"""Donation page parts for creators (issue 17): preset buttons, the public-name choice, the
goal bar and the supporters feed, rendered from plain data; and in chromium on a phone
(390 px) and a desktop, behind the real CSP.  Screenshots: test-artifacts/, copied to
docs/img/overlay-donate-*.png."""
from __future__ import annotations

import os
from decimal import Decimal

from twisted.internet import reactor, threads
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.template import Element, XMLString, renderer, tags

from ymds.web.donation_parts import (GoalBar, GoalProgress, PresetButtons, PublicChoice, PublicDonation,
                                     SupportersFeed, TopSupporter, day_text, moment_text)
from ymds.web.render import flatten, page
from tests.test_browser_pay import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.test_overlay_browser import with_web_headers

GOAL = GoalProgress(Decimal("3500.00"), Decimal("10000.00"), "Новый микрофон", "2026-12-31")
LATEST = [
    PublicDonation("Маша", Decimal("1990.00"), "Спасибо за стрим!", "2026-11-29T20:00:00Z"),
    PublicDonation(None, Decimal("5000.00"), None, "2026-11-29T19:00:00Z"),  # a private donor slipped in
    PublicDonation("<script>x</script>", Decimal("100.00"), "<b>hi</b>", "2026-11-29T18:30:00Z"),
    PublicDonation("Пётр", Decimal("300.00"), None, "2026-11-28T10:05:00Z"),
]
TOP = [TopSupporter("Маша", Decimal("12990.00")), TopSupporter(None, Decimal("99999.00")),
       TopSupporter("Пётр", Decimal("2300.00"))]


def html(element: Element) -> str:
    return flatten(element).decode("utf-8")


class Parts(unittest.TestCase):
    def test_preset_buttons_submit_the_form_without_javascript(self):
        out = html(PresetButtons("ru", [Decimal("100"), Decimal("300"), Decimal("1500.5")]))
        self.assertEqual(out.count('type="submit" name="preset"'), 3)
        self.assertIn('value="100.00"', out)
        self.assertIn('value="1500.50"', out)
        self.assertIn("1\u00a0500,50\u00a0₽", out)
        self.assertEqual(out.count('formnovalidate="formnovalidate"'), 3)  # the free amount may stay empty
        self.assertEqual(html(PresetButtons("ru", [])), "<!DOCTYPE html>\n")

    def test_public_choice_is_off_unless_chosen(self):
        off = html(PublicChoice("en"))
        self.assertIn('name="public" type="checkbox" value="1"', off)
        self.assertNotIn("checked", off)
        self.assertIn("Show my name and message publicly", off)
        self.assertIn('checked="checked"', html(PublicChoice("ru", checked=True)))

    def test_goal_bar(self):
        out = html(GoalBar("ru", GOAL))
        self.assertIn('<progress class="goal-progress" max="100" value="35"', out)
        self.assertIn("<strong>3\u00a0500,00\u00a0₽</strong> из 10\u00a0000,00\u00a0₽ · 35%", out)
        self.assertIn("Сбор до 31.12.2026", out)
        self.assertNotIn("Сбор до", html(GoalBar("ru", GoalProgress(Decimal("1"), Decimal("2"), "t"))))
        self.assertIn('value="100"', html(GoalBar("en", GoalProgress(Decimal("30000"), Decimal("10000"), "t"))))

    def test_feed_shows_public_donors_only_and_html_as_text(self):
        out = html(SupportersFeed("ru", LATEST, TOP))
        self.assertIn("Маша", out)
        self.assertIn("1\u00a0990,00\u00a0₽", out)
        self.assertIn("12\u00a0990,00\u00a0₽", out)
        self.assertNotIn("5\u00a0000,00", out)  # the nameless entry is left out
        self.assertNotIn("99\u00a0999,00", out)
        self.assertNotIn("<script>", out)
        self.assertIn("&lt;script&gt;x&lt;/script&gt;", out)
        self.assertIn("&lt;b&gt;hi&lt;/b&gt;", out)
        self.assertIn('<time class="feed-time" datetime="2026-11-29T20:00:00Z">29.11.2026 20:00 UTC</time>', out)
        self.assertIn("Пока никто не поддержал", html(SupportersFeed("ru", [LATEST[1]], [TOP[1]])))
        self.assertNotIn("Пока никто", out)

    def test_dates(self):
        self.assertEqual(day_text("2026-12-31"), "31.12.2026")
        self.assertEqual(day_text("soon"), "soon")
        self.assertEqual(moment_text("2026-11-29T20:00:00+00:00"), "29.11.2026 20:00 UTC")


class _Preview(Element):
    """The parts placed the way the landing page's donation form will hold them (phase 2)."""

    loader = XMLString("""<div xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1">
<h1>Поддержать автора</h1>
<t:transparent t:render="goal"/>
<section class="card"><h2>Сделать пожертвование</h2>
<form method="post" action="/donate" class="donate">
<label for="name">Ваше имя (необязательно)</label><input id="name" name="name" type="text" maxlength="64"/>
<label for="message">Сообщение (необязательно)</label><textarea id="message" name="message" rows="3"></textarea>
<t:transparent t:render="public"/>
<t:transparent t:render="presets"/>
<label for="amount">Сумма, ₽</label><input id="amount" name="amount" type="text" inputmode="decimal" required="required"/>
<button type="submit" class="button primary">Перейти к оплате</button>
</form></section>
<t:transparent t:render="feed"/>
</div>""")

    @renderer
    def goal(self, request, tag):
        return GoalBar("ru", GOAL)

    @renderer
    def public(self, request, tag):
        return PublicChoice("ru")

    @renderer
    def presets(self, request, tag):
        return PresetButtons("ru", [Decimal("100"), Decimal("300"), Decimal("500"), Decimal("1000")])

    @renderer
    def feed(self, request, tag):
        return SupportersFeed("ru", LATEST, TOP)


class _PreviewPage(Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return page("ru", "landing_title", _Preview(), "/", head=[tags.link(rel="stylesheet", href="/static/donate.css")])


def browse(url: str) -> dict:
    from playwright.sync_api import sync_playwright

    os.makedirs(ARTIFACTS, exist_ok=True)
    seen: dict = {}
    errors: list = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            for name, viewport in (("phone", {"width": 390, "height": 844}), ("desktop", {"width": 1280, "height": 900})):
                tab = browser.new_page(viewport=viewport, locale="ru-RU")
                tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                tab.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
                tab.goto(url)
                seen[f"{name}_overflow"] = tab.evaluate("document.documentElement.scrollWidth") - viewport["width"]
                seen[f"{name}_bar"] = tab.locator(".goal-progress").evaluate("b => b.value")
                tab.screenshot(path=os.path.join(ARTIFACTS, f"overlay-donate-{name}.png"), full_page=True)
            seen["console_errors"] = list(errors)  # the plain-text echo page below has no icon
            # a preset pays in one tap, with the free amount left empty
            tab.get_by_role("button", name="300,00\u00a0₽").click()
            tab.wait_for_url("**/donate")
            seen["posted"] = tab.locator("body").inner_text()
        finally:
            browser.close()
    return seen


class _Echo(Resource):
    isLeaf = True

    def render_POST(self, request):
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return request.content.read()


class DonationPageInBrowser(unittest.TestCase):
    timeout = 120

    def setUp(self):
        if not os.path.exists(CHROMIUM):
            raise RuntimeError("chromium is missing: apt-get install -y chromium (the CI script installs it)")

    def test_phone_and_desktop(self):
        root = Resource()
        root.putChild(b"", _PreviewPage())
        root.putChild(b"donate", _Echo())  # what the form posts, as the handler will receive it
        port = reactor.listenTCP(0, Site(with_web_headers(root)), interface="127.0.0.1")
        self.addCleanup(port.stopListening)

        def check(seen):
            self.assertEqual(seen["console_errors"], [])
            self.assertLessEqual(seen["phone_overflow"], 0)  # nothing wider than the phone
            self.assertLessEqual(seen["desktop_overflow"], 0)
            self.assertEqual((seen["phone_bar"], seen["desktop_bar"]), (35, 35))
            fields = dict(pair.split("=", 1) for pair in seen["posted"].strip().split("&"))
            self.assertEqual((fields["preset"], fields["amount"]), ("300.00", ""))
            self.assertNotIn("public", fields)  # unchecked: the donor stays private

        return threads.deferToThread(browse, f"http://127.0.0.1:{port.getHost().port}/").addCallback(check)
