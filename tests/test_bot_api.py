"""The Bot API client against the fake Bot API on loopback: results and typed errors."""
from __future__ import annotations

from twisted.internet import reactor
from twisted.logger import globalLogPublisher
from twisted.trial import unittest
from twisted.web import resource, server

from tests.fakes.bot_harness import start_fake
from tests.fakes.fake_telegram import DEFAULT_TOKEN
from ymds.bot import errors
from ymds.bot.api import BotAPI


class BotAPITests(unittest.TestCase):
    def setUp(self):
        self.fake, self.url = start_fake(self)
        self.api = self.client()
        self.logged: list[str] = []

        def observe(event):
            self.logged.append(repr(event))
        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def client(self, token=DEFAULT_TOKEN, url=None, **kw) -> BotAPI:
        api = BotAPI(reactor, token, url or self.url, **kw)
        self.addCleanup(api.close)
        return api

    def assertNoToken(self, *texts):
        secret = DEFAULT_TOKEN.split(":", 1)[1]
        for text in texts + tuple(self.logged):
            self.assertNotIn(secret, text)

    async def test_get_me_and_send_with_keyboard(self):
        me = await self.api.getMe()
        self.assertEqual(me["username"], "ymds_test_bot")
        markup = {"inline_keyboard": [[{"text": "Pay", "url": "https://pay.example.org/pay/x"}],
                                      [{"text": "ru", "callback_data": "lang:ru"}]]}
        message = await self.api.sendMessage(42, "<b>Hello</b> &amp; welcome", markup)
        self.assertEqual(message["chat"]["id"], 42)
        sent = self.fake.messages_to(42)
        self.assertEqual(len(sent), 1)
        self.assertEqual(sent[0]["visible"], "Hello & welcome")
        self.assertEqual(sent[0]["reply_markup"], markup)
        self.assertEqual(self.fake.calls_of("sendMessage")[0]["parse_mode"], "HTML")

    async def test_pooled_connections_log_nothing(self):
        # Every new pooled connection used to log "Starting factory"/"Stopping factory".
        await self.api.getMe()
        await self.api.close()
        await self.api.getMe()
        self.assertEqual([e for e in self.logged if "factory" in e.lower()], [])

    async def test_channel_methods(self):
        link = await self.api.createChatInviteLink(-1001234567890, member_limit=1, expire_date=2_000_000_000)
        self.assertTrue(link["invite_link"].startswith("https://t.me/+"))
        self.assertEqual(link["member_limit"], 1)
        self.assertTrue(await self.api.banChatMember(-1001234567890, 42))
        self.assertTrue(await self.api.unbanChatMember(-1001234567890, 42))
        self.assertEqual(self.fake.bans, [("banChatMember", -1001234567890, 42), ("unbanChatMember", -1001234567890, 42)])
        self.assertTrue(await self.api.answerCallbackQuery("77", "ok"))
        self.assertTrue(await self.api.deleteWebhook())

    async def test_typed_errors(self):
        cases = [
            (400, errors.BadRequest, None), (403, errors.Forbidden, None), (409, errors.Conflict, None),
            (500, errors.ServerError, None), (502, errors.ServerError, None), (429, errors.RetryAfter, 7),
        ]
        for code, kind, retry_after in cases:
            self.fake.fail_next("sendMessage", code, retry_after=retry_after)
            with self.assertRaises(kind, msg=str(code)) as caught:
                await self.api.sendMessage(1, "x")
            self.assertEqual(caught.exception.error_code, code)
            self.assertIsInstance(caught.exception, errors.TelegramError)
            self.assertNoToken(str(caught.exception), repr(caught.exception))
        self.fake.fail_next("sendMessage", 429, retry_after=7)
        with self.assertRaises(errors.RetryAfter) as caught:
            await self.api.sendMessage(1, "x")
        self.assertEqual(caught.exception.retry_after, 7)

    async def test_unauthorized_never_shows_the_token(self):
        api = self.client(token="1:" + "w" * 30)
        with self.assertRaises(errors.Unauthorized) as caught:
            await api.getMe()
        self.assertNotIn("w" * 30, str(caught.exception))
        self.assertNoToken(repr(self.api))

    async def test_html_that_telegram_cannot_parse_is_a_bad_request(self):
        for bad in ("<b>open", "a < b", "Tom & Jerry", "<script>x</script>", "</b>"):
            with self.assertRaises(errors.BadRequest, msg=bad):
                await self.api.sendMessage(5, bad)
        self.assertEqual(self.fake.sent, [])

    async def test_network_errors(self):
        dead = self.client(url="http://127.0.0.1:1")
        with self.assertRaises(errors.NetworkError) as caught:
            await dead.getMe()
        self.assertNoToken(str(caught.exception))
        self.fake.slow("getMe", 3)
        impatient = self.client(timeout=0.3)
        with self.assertRaises(errors.NetworkError) as caught:
            await impatient.getMe()
        self.assertIn("no answer within", str(caught.exception))

    async def test_not_telegram_json(self):
        class Proxy(resource.Resource):
            isLeaf = True

            def __init__(self, code, body):
                super().__init__()
                self.code, self.body = code, body

            def render(self, request):
                request.setResponseCode(self.code)
                return self.body

        for code, body, kind in ((502, b"<html>Bad gateway</html>", errors.ServerError),
                                 (200, b"{\"ok\": true}", errors.ServerError),
                                 (200, b"[1,2]", errors.ServerError),
                                 (404, b"nope", errors.ServerError)):
            port = reactor.listenTCP(0, server.Site(Proxy(code, body)), interface="127.0.0.1")
            self.addCleanup(port.stopListening)
            api = self.client(url=f"http://127.0.0.1:{port.getHost().port}")
            with self.assertRaises(kind, msg=repr(body)):
                await api.getMe()

    async def test_oversized_answer_is_refused(self):
        from ymds.bot import api as api_module
        self.patch(api_module, "MAX_ANSWER_BYTES", 2000)
        self.fake.user_sends(5, "x" * 3000)
        with self.assertRaises(errors.NetworkError) as caught:
            await self.api.getUpdates()
        self.assertIn("larger than", str(caught.exception))
        self.assertEqual((await self.api.getMe())["id"], 123456789)  # the client still works

    async def test_long_poll_returns_when_an_update_arrives(self):
        pending = self.api.getUpdates(timeout=10)
        reactor.callLater(0.1, self.fake.user_sends, 8, "/start")
        updates = await pending
        self.assertEqual(updates[0]["message"]["text"], "/start")
        self.assertEqual(await self.api.getUpdates(offset=updates[0]["update_id"] + 1, timeout=0), [])

    async def test_error_from_answer_bounds_hostile_values(self):
        e = errors.error_from_answer("m", 429, {"ok": False, "error_code": 429, "parameters": {"retry_after": 10**9}})
        self.assertEqual(e.retry_after, errors.MAX_RETRY_AFTER)
        e = errors.error_from_answer("m", 429, {"ok": False, "error_code": 429, "parameters": {"retry_after": "soon"}})
        self.assertEqual(e.retry_after, 1)
        e = errors.error_from_answer("m", 429, {"ok": False, "error_code": 429, "parameters": {"retry_after": -5}})
        self.assertEqual(e.retry_after, 0)
        e = errors.error_from_answer("m", 400, {"ok": False, "error_code": True, "description": "x" * 10000})
        self.assertIsInstance(e, errors.BadRequest)
        self.assertLessEqual(len(e.description), 300)
