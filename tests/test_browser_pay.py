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


def browse_demo(base: str) -> dict:
    """Donate from the landing form of a real ``twistd ymds --demo`` (TLS, Russian), pay by wallet."""
    from playwright.sync_api import sync_playwright

    seen: dict = {"errors": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(ignore_https_errors=True, locale="ru-RU", viewport={"width": 390, "height": 844})
            page = context.new_page()
            page.on("response", lambda r: seen["errors"].append(f"{r.status} {r.url}") if r.status >= 400 else None)
            page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
            page.goto(base + "/")
            page.get_by_label("Сумма, ₽").fill("5")  # below the minimum: a friendly error, same form
            page.get_by_role("button", name="Перейти к оплате").click()
            seen["error"] = page.locator("#amount-error").inner_text()
            page.screenshot(path=os.path.join(ARTIFACTS, "demo-1-form-error.png"), full_page=True)
            page.get_by_label("Сумма, ₽").fill("123,45")
            page.get_by_label("Ваше имя (необязательно)").fill("Тест")
            page.get_by_role("button", name="Перейти к оплате").click()
            page.wait_for_url("**/pay/*")
            seen["amount"] = page.locator(".amount").inner_text()
            page.get_by_role("button", name="Оплатить из кошелька ЮMoney").click()
            page.wait_for_url("**/sandbox/quickpay/confirm")
            page.get_by_role("button", name="Оплатить / Pay").click()
            page.wait_for_url("**/thanks?t=*")
            page.locator('#status[data-state="paid"]').wait_for(timeout=20000)
            seen["status"] = page.locator("#status").inner_text()
            page.screenshot(path=os.path.join(ARTIFACTS, "demo-2-thanks-paid.png"), full_page=True)
        finally:
            browser.close()
    return seen


class BrowserDemo(unittest.TestCase):
    """The same path through ``twistd -n ymds --demo`` itself (TLS, sandbox, billing, SQLite)."""

    timeout = 120

    def setUp(self):
        if not os.path.exists(CHROMIUM):
            raise RuntimeError("chromium is missing: apt-get install -y chromium (the CI script installs it)")

    def test_demo_donation_in_browser(self):
        import subprocess
        import sys
        import tempfile
        import time

        from tests.support.redis_server import RedisServer, free_port

        redis = RedisServer().start()
        self.addCleanup(redis.cleanup)
        data_dir = tempfile.mkdtemp(prefix="ymds-demo-browser-")
        self.addCleanup(shutil.rmtree, data_dir, True)
        port = free_port()
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        log = open(os.path.join(data_dir, "twistd.out"), "wb")
        self.addCleanup(log.close)
        process = subprocess.Popen(
            [twistd, "-n", "--pidfile=", "ymds", "--demo", "--data-dir", os.path.join(data_dir, "demo"), "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "YMDS_REDIS_URL": redis.url})

        def stop():
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.addCleanup(stop)

        def wait_listening():
            import socket
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise RuntimeError("twistd ymds --demo exited: " + open(log.name, "rb").read().decode()[-2000:])
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    return
                except OSError:
                    time.sleep(0.2)
            raise RuntimeError("twistd ymds --demo did not listen")

        async def go():
            await threads.deferToThread(wait_listening)
            seen = await threads.deferToThread(browse_demo, f"https://localhost:{port}")
            self.assertIn("от 10,00 до 100\u00a0000,00", seen["error"])
            self.assertEqual(seen["amount"], "123,45 ₽")
            self.assertEqual(seen["status"], "оплачено")
            # only the intended refusal of the too-small amount (400, re-rendered form)
            self.assertEqual([e for e in seen["errors"] if "400" not in e or "/donate" not in e and "Bad Request" not in e], [])
        return defer.Deferred.fromCoroutine(go())
