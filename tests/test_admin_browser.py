"""Chromium (Debian's, through Playwright) signs in to the dashboard from a one-time link,
sees the overview and the chart, extends a subscriber, reverifies a quarantined notification.
Screenshots of every page at phone (390 px) and desktop width go to test-artifacts/admin-*.png;
axe-core (axe-playwright-python) finds no serious or critical accessibility violation."""
from __future__ import annotations

import os

from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.support.admin_site import AdminSite
from tests.test_browser_pay import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

PAGES = (("overview", "/admin"), ("payments", "/admin/payments"), ("subscribers", "/admin/subscribers"),
         ("quarantine", "/admin/quarantine"), ("dead-letters", "/admin/dead-letters"), ("webhooks", "/admin/webhooks"),
         ("codes", "/admin/codes"))
SIZES = (("phone", {"width": 390, "height": 844}), ("desktop", {"width": 1280, "height": 900}))


def accessibility(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {len(v['nodes'])} nodes" for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")]


def browse(login_url: str, base: str) -> dict:
    """Runs in a thread (Playwright's sync API has its own loop); the reactor serves meanwhile."""
    from playwright.sync_api import sync_playwright

    os.makedirs(ARTIFACTS, exist_ok=True)
    seen: dict = {"errors": [], "axe": {}}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(locale="ru-RU", viewport=dict(SIZES[0][1]))
            page = context.new_page()
            page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
            page.goto(login_url)
            page.get_by_role("button", name="Войти").click()
            page.wait_for_url(base + "/admin")
            seen["h1"] = page.locator("h1").inner_text()
            seen["chart_bars"] = page.locator("svg#revenue rect").count()
            seen["chart_box"] = page.locator("svg#revenue").bounding_box()
            seen["money_table"] = page.locator("main section.card").first.inner_text()
            seen["scroll_width"] = page.evaluate("document.documentElement.scrollWidth")
            for size, viewport in SIZES:
                page.set_viewport_size(viewport)
                for name, path in PAGES:
                    page.goto(base + path)
                    page.screenshot(path=os.path.join(ARTIFACTS, f"admin-{name}-{size}.png"), full_page=True)
                    if size == "phone":
                        seen["axe"][name] = accessibility(page)
            page.set_viewport_size(SIZES[0][1])
            # extend Boris (user 1001) by 30 days
            page.goto(base + "/admin/subscribers")
            page.get_by_label("Поиск (id чата или имя)").fill("Boris")
            page.get_by_role("button", name="Показать").click()
            row = page.locator("tr", has_text="Boris")
            row.get_by_role("button", name="Продлить").click()
            page.wait_for_url("**/admin/subscribers?msg=done")
            seen["extend_notice"] = page.locator(".notice").inner_text()
            page.screenshot(path=os.path.join(ARTIFACTS, "admin-subscribers-extended-phone.png"), full_page=True)
            # reverify the first quarantined notification
            page.goto(base + "/admin")
            page.get_by_role("link", name="В карантине: 2").click()
            page.locator("tr", has_text="op-q1").get_by_role("button", name="Перепроверить").click()
            page.wait_for_url("**/admin/quarantine?msg=done")
            seen["quarantine_rows"] = page.locator("tbody tr").count()
            page.screenshot(path=os.path.join(ARTIFACTS, "admin-quarantine-reverified-phone.png"), full_page=True)
            # the back button and a second submit of the same form change nothing more
            page.go_back()
            seen["after_back"] = page.url
            # the owner's English: the overview in en on the phone, checked like the rest
            page.goto(base + "/admin?lang=en")
            seen["h1_en"] = page.locator("h1").inner_text()
            seen["axe_en"] = accessibility(page)
            page.screenshot(path=os.path.join(ARTIFACTS, "admin-overview-en-phone.png"), full_page=True)
        finally:
            browser.close()
    return seen


class BrowserDashboard(unittest.TestCase):
    timeout = 240

    def setUp(self):
        if not os.path.exists(CHROMIUM):
            raise RuntimeError("chromium is missing: apt-get install -y chromium (the CI script installs it)")

    def test_sign_in_see_chart_extend_reverify(self):
        async def go():
            site = AdminSite(self)
            url = await site.login_url()
            before = site.data.subscribers_list[1].expires_at
            seen = await threads.deferToThread(browse, url, site.base)
            self.assertEqual(seen["h1"], "Обзор")
            self.assertGreater(seen["chart_bars"], 20)
            self.assertGreater(seen["chart_box"]["width"], 300)
            self.assertLessEqual(seen["scroll_width"], 390)  # nothing wider than the phone
            ov = await site.data.overview(site.now.astimezone(site.admin.tz))  # the page's local days
            from ymds.admin.texts import money
            self.assertIn(money(sum(ov.money["30d"].values()), "ru"), seen["money_table"])
            self.assertEqual(seen["extend_notice"], "Готово.")
            self.assertEqual((site.data.subscribers_list[1].expires_at - before).days, 30)
            self.assertEqual(seen["quarantine_rows"], 1)
            self.assertEqual([q.id for q in site.data.quarantine_list], ["q2"])
            self.assertEqual([a for a in site.data.audit],
                             [("tg:42", "extend", "1001+30"), ("tg:42", "reverify", "q1")])
            self.assertEqual(seen["errors"], [])  # no CSP violations, no script errors
            self.assertEqual(seen["axe"], {name: [] for name, _ in PAGES})
            self.assertEqual(seen["h1_en"], "Overview")
            self.assertEqual(seen["axe_en"], [])
            for name, _ in PAGES:
                for size, _ in SIZES:
                    self.assertGreater(os.path.getsize(os.path.join(ARTIFACTS, f"admin-{name}-{size}.png")), 1000)
        return defer.Deferred.fromCoroutine(go())
