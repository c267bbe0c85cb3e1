"""Chromium against the REAL service: a ``twistd ymds`` node (web + billing roles, SQLite
ledger, its own redis-server), signed in from the link ``ymds admin-link`` prints.

The overview's money equals a recount of the ledger's payments; extending a subscriber
and reverifying a quarantined notification change the ledger (read directly) once, with
the admin's id in the audit events.  Screenshots of each page at phone and desktop width
go to test-artifacts/admin-service-*.png; axe-core finds no serious or critical violation.
"""
from __future__ import annotations

import json
import os
import sys
from decimal import Decimal
from urllib.parse import urlencode

from twisted.internet import defer, reactor, threads
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from tests.e2e.harness import NOTIFICATION_SECRET, REPO, Cluster
from tests.support.processes import test_env
from tests.test_admin_browser import PAGES, SIZES, accessibility
from tests.test_browser_pay import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from ymds.billing.open import open_ledger
from ymds.yoomoney.signature import sha1_hash, sign_hmac

DAY = 86400.0


def notification(op: str, label: str, amount: str) -> dict[str, str]:
    fields = {"notification_type": "p2p-incoming", "operation_id": op, "amount": amount, "withdraw_amount": amount,
              "currency": "643", "datetime": "2026-05-28T10:00:00Z", "sender": "41001000", "codepro": "false",
              "label": label, "unaccepted": "false"}
    fields["sha1_hash"] = sha1_hash(fields, NOTIFICATION_SECRET)
    fields["sign"] = sign_hmac(fields, NOTIFICATION_SECRET)
    return fields


def browse(login_url: str, base: str, quarantined_op: str) -> dict:
    """In a thread (Playwright's sync API); the reactor keeps running meanwhile."""
    from playwright.sync_api import sync_playwright

    os.makedirs(ARTIFACTS, exist_ok=True)
    seen: dict = {"errors": [], "axe": {}}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(locale="ru-RU", viewport=dict(SIZES[0][1]), ignore_https_errors=True)
            page = context.new_page()
            page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
            page.goto(login_url)
            page.get_by_role("button", name="Войти").click()
            page.wait_for_url(base + "/admin")
            seen["cookie"] = [c for c in context.cookies() if c["name"] == "ymds_admin"]
            seen["chart_bars"] = page.locator("svg#revenue rect").count()
            seen["money_table"] = page.locator("main section.card").first.inner_text()
            for size, viewport in SIZES:
                page.set_viewport_size(viewport)
                for name, path in PAGES:
                    page.goto(base + path)
                    page.screenshot(path=os.path.join(ARTIFACTS, f"admin-service-{name}-{size}.png"), full_page=True)
                    if size == "phone":
                        seen["axe"][name] = accessibility(page)
            page.set_viewport_size(SIZES[0][1])
            page.goto(base + "/admin/subscribers")
            page.get_by_label("Поиск (id чата или имя)").fill("5552")
            page.get_by_role("button", name="Показать").click()
            page.locator("tr", has_text="5552").get_by_role("button", name="Продлить").click()
            page.wait_for_url("**/admin/subscribers?msg=done")
            seen["extend_notice"] = page.locator(".notice").inner_text()
            page.goto(base + "/admin")
            page.get_by_role("link", name="В карантине: 1").click()
            page.locator("tr", has_text=quarantined_op).get_by_role("button", name="Перепроверить").click()
            page.wait_for_url("**/admin/quarantine?msg=done")
            seen["quarantine_rows"] = page.locator("tbody tr").count()
            page.screenshot(path=os.path.join(ARTIFACTS, "admin-service-quarantine-reverified-phone.png"), full_page=True)
        finally:
            browser.close()
    return seen


class RealServiceDashboard(unittest.TestCase):
    timeout = 300

    def setUp(self) -> None:
        if not os.path.exists(CHROMIUM):
            raise RuntimeError("chromium is missing: apt-get install -y chromium (the CI script installs it)")

    async def seed(self, url: str, now: float) -> dict[str, float]:
        ledger = open_ledger(url, reactor)
        try:
            await ledger.migrate()
            inv = ledger.invoices
            ends = {}
            for chat, op in ((5551, "svc-sub-1"), (5552, "svc-sub-2")):
                i = await inv.create_invoice("subscription", Decimal("199.00"), now - 3600, DAY, plan="month", days=30,
                                             chat_id=chat)
                await ledger.payments.apply_payment(notification(op, i.label, "199.00"), "notification", now - 1800)
                ends[str(chat)] = (await ledger.subscriptions.subscription(chat)).ends_at
            d = await inv.create_invoice("donation", Decimal("500.00"), now - 3600, DAY)
            await ledger.payments.apply_payment(notification("svc-don-1", d.label, "500.00"), "notification", now - 60)
            q = await inv.create_invoice("donation", Decimal("250.00"), now - 3600, DAY)
            body = urlencode(notification("svc-quarantined", q.label, "250.00"))
            await ledger.quarantine.quarantine_add(body, "signature did not verify", "127.0.0.1", now - 30)
            return ends
        finally:
            await ledger.close()

    async def admin_link(self, config_path: str) -> str:
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-m", "ymds.cli", "--config", config_path, "admin-link"], env=test_env(), path=REPO,
            reactor=reactor)
        self.assertEqual(code, 0, err.decode())
        return out.decode().strip()

    def test_sign_in_numbers_extend_reverify(self) -> defer.Deferred:
        async def go() -> None:
            cluster = Cluster(self, ledger="sqlite", telegram=False)
            node = cluster.node("all", "web,billing", server={"timezone": "Europe/Moscow"})
            ends = await self.seed(cluster.ledger_url, reactor.seconds())
            link = await self.admin_link(node.config_path)
            self.assertTrue(link.startswith(f"{node.base}/admin/login?t="), link)
            seen = await threads.deferToThread(browse, link, node.base, "svc-quarantined")

            from ymds.admin.texts import money
            paid = cluster.ledger.scalar("SELECT SUM(CAST(REPLACE(amount, '.', '') AS INTEGER)) FROM payments "
                                         "WHERE held = 0 AND operation_id <> 'svc-quarantined'")
            self.assertIn(money(Decimal(paid) / 100, "ru"), seen["money_table"])  # 898,00 ₽ over 30 days
            self.assertGreater(seen["chart_bars"], 0)
            cookie = seen["cookie"][0]
            self.assertEqual((cookie["httpOnly"], cookie["secure"], cookie["sameSite"], cookie["path"]),
                             (True, True, "Strict", "/admin"))
            self.assertEqual(seen["extend_notice"], "Готово.")
            extended = cluster.ledger.scalar("SELECT ends_at FROM subscriptions WHERE chat_id = 5552")
            self.assertAlmostEqual(extended - ends["5552"], 30 * DAY, delta=1)
            self.assertEqual(cluster.ledger.scalar("SELECT ends_at FROM subscriptions WHERE chat_id = 5551"), ends["5551"])
            self.assertEqual(seen["quarantine_rows"], 0)
            self.assertEqual(cluster.ledger.scalar("SELECT status FROM payments WHERE operation_id = 'svc-quarantined'"),
                             "paid")
            audit = cluster.ledger.query("SELECT kind, data FROM events WHERE kind LIKE 'admin_%' ORDER BY id")
            self.assertEqual([(k, json.loads(d)["admin"]) for k, d in audit],
                             [("admin_extend", "cli"), ("admin_reverify", "cli")])
            self.assertEqual(seen["errors"], [])
            self.assertEqual(seen["axe"], {name: [] for name, _ in PAGES})
        return defer.Deferred.fromCoroutine(go())
