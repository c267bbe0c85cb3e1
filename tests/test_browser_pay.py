"""A real browser (Debian's chromium, headless, through Playwright) pays a donation end to end:

pay page -> card button -> sandbox confirm page -> Pay -> sandbox notifies /yoomoney/notify
-> RedisJobQueue -> billing -> SQLite ledger -> /thanks shows "paid".
Screenshots go to test-artifacts/ (git-ignored).
"""
from __future__ import annotations

import os
import shutil
from urllib.parse import urlsplit

from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.test_web_chain import Chain

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test-artifacts")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]


def browse(pay_url: str, public_url: str) -> dict:
    """Runs in a thread (Playwright's sync API has its own loop); the reactor serves meanwhile."""
    from playwright.sync_api import sync_playwright

    os.makedirs(ARTIFACTS, exist_ok=True)
    seen: dict = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="en-US", viewport={"width": 390, "height": 844})  # a phone
            console_errors = []
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("response", lambda r: console_errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            page.goto(pay_url)
            seen["pay_lang"] = page.locator("html").get_attribute("lang")
            seen["pay_title"] = page.title()
            seen["qr"] = page.locator("figure.qr svg").count()
            page.screenshot(path=os.path.join(ARTIFACTS, "1-pay-page.png"), full_page=True)
            page.get_by_role("button", name="Pay by bank card").click()
            page.wait_for_url("**/sandbox/quickpay/confirm")
            page.screenshot(path=os.path.join(ARTIFACTS, "2-sandbox-confirm.png"), full_page=True)
            page.get_by_role("button", name="Оплатить / Pay").click()
            page.wait_for_url("**/thanks?t=*")
            seen["thanks_url"] = page.url
            page.locator('#status[data-state="paid"]').wait_for(timeout=15000)  # thanks.js polls the status
            seen["status"] = page.locator("#status").inner_text()
            page.screenshot(path=os.path.join(ARTIFACTS, "3-thanks-paid.png"), full_page=True)
            # the same page without JavaScript: the <noscript> refresh would reload; paid is rendered server-side
            nojs = browser.new_context(java_script_enabled=False, locale="ru-RU").new_page()
            nojs.goto(seen["thanks_url"])
            seen["status_nojs_ru"] = nojs.locator("#status").inner_text()
            seen["console_errors"] = console_errors
        finally:
            browser.close()
    return seen


class BrowserPayment(unittest.TestCase):
    timeout = 120

    def setUp(self):
        if not os.path.exists(CHROMIUM):
            raise RuntimeError("chromium is missing: apt-get install -y chromium (the CI script installs it)")

    def test_pay_donation_in_browser(self):
        async def go():
            chain = await Chain(self).start()
            location = await chain.donation("250.00")
            self.assertTrue(location.startswith(chain.public_url + "/pay/"))
            seen = await threads.deferToThread(browse, location, chain.public_url)
            self.assertEqual(seen["pay_lang"], "en")
            self.assertEqual(seen["qr"], 1)
            self.assertEqual(urlsplit(seen["thanks_url"]).path, "/thanks")
            self.assertEqual(seen["status"], "paid")
            self.assertEqual(seen["status_nojs_ru"], "оплачено")
            self.assertEqual(seen["console_errors"], [])  # no CSP violations, no script errors
            self.assertEqual(chain.count("ok"), 1)
            for name in ("1-pay-page.png", "2-sandbox-confirm.png", "3-thanks-paid.png"):
                self.assertGreater(os.path.getsize(os.path.join(ARTIFACTS, name)), 1000)
        return defer.Deferred.fromCoroutine(go())
