"""Issue 20, the payer's pages: every page names the shop ([shop] name) and says SANDBOX in a
dry run, pay forms then go to the sandbox whatever the file says, and the thanks page of an
invoice made in Telegram links back to the bot."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from tests.support.redis_server import free_port
from tests.test_web_support import LiveSite, make_config

SHOP = {"name": "Клуб <Анны>"}


def run(coroutine):
    return defer.Deferred.fromCoroutine(coroutine)


class DryRunPages(unittest.TestCase):
    def setUp(self):
        port = free_port()
        config = make_config(port, shop=SHOP, telegram={"bot_username": "@anna_club_bot"},
                             yoomoney={"sandbox": True, "quickpay_url": "https://yoomoney.ru/quickpay/confirm"})
        self.live = LiveSite(self, config=config)
        self.label, self.token = self.live.invoices.add("150.00", kind="subscription", plan="month")
        self.live.invoices.invoices[self.label]["chat_id"] = 4242

    def test_every_page_says_sandbox_and_names_the_shop(self):
        async def go():
            for path in ("/?lang=ru", f"/pay/{self.token}?lang=ru", f"/thanks?t={self.token}&lang=ru", "/nope?lang=ru"):
                response, body = await self.live.request("GET", path)
                text = body.decode()
                self.assertIn('class="sandbox-banner"', text, path)
                self.assertIn("ПЕСОЧНИЦА", text, path)
                self.assertIn('<a class="home" href="/">Клуб &lt;Анны&gt;</a>', text, path)
                self.assertIn("· Клуб &lt;Анны&gt;</title>", text, path)
            response, body = await self.live.request("GET", f"/pay/{self.token}?lang=en")
            self.assertIn(f'action="{self.live.config.server.public_url}/sandbox/quickpay/confirm"', body.decode())
            self.assertNotIn("yoomoney.ru", body.decode())
        return run(go())

    def test_thanks_links_back_to_the_bot_for_a_telegram_invoice(self):
        async def go():
            response, body = await self.live.request("GET", f"/thanks?t={self.token}&lang=en")
            self.assertIn('href="https://t.me/anna_club_bot"', body.decode())
            self.assertIn("Back to the bot", body.decode())
            label, token = self.live.invoices.add("50.00")  # a donation from the web page: no chat
            response, body = await self.live.request("GET", f"/thanks?t={token}&lang=en")
            self.assertNotIn("t.me/", body.decode())
        return run(go())


class LivePages(unittest.TestCase):
    def test_no_banner_and_the_generic_title_when_live_without_a_name(self):
        live = LiveSite(self)

        async def go():
            response, body = await live.request("GET", "/?lang=en")
            text = body.decode()
            self.assertNotIn("sandbox-banner", text)
            self.assertIn('<a class="home" href="/">Payments</a>', text)
        return run(go())


class DashboardSandbox(unittest.TestCase):
    """The owner's dashboard says SANDBOX too (its sign-in page is served without a session)."""

    def test_dashboard_pages_say_sandbox(self):
        from twisted.internet import reactor
        from twisted.web.server import Site

        from tests.support.queues import RecordingQueue
        from ymds.admin.web import make_admin_resource
        from ymds.config import load_config
        from tests.support.webflow import request
        config = load_config(raw={"server": {"public_url": "https://localhost:8443"},
                                  "yoomoney": {"sandbox": True}}, env={})
        resource = make_admin_resource(reactor, config, RecordingQueue())
        from twisted.web.resource import Resource
        root = Resource()
        root.putChild(b"admin", resource)
        port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        self.addCleanup(port.stopListening)

        def fetch():
            return request(f"http://127.0.0.1:{port.getHost().port}/admin/login?lang=ru")

        from twisted.internet import threads

        async def go():
            status, _, body = await threads.deferToThread(fetch)
            self.assertEqual(status, 200)
            self.assertIn('class="sandbox-banner"', body)
            status, _, body = await threads.deferToThread(
                lambda: request(f"http://127.0.0.1:{port.getHost().port}/admin/payments?lang=ru"))
            self.assertEqual(status, 403)  # no session: the sign-in page, with the banner too
            self.assertIn('class="sandbox-banner"', body)
            self.assertIn("ПЕСОЧНИЦА", body)
        return run(go())
