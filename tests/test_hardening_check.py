"""Issue 14: --check warns about a Redis on another host without a password or TLS."""
from twisted.trial import unittest

from ymds.check import redis_exposure_warning, run_check
from ymds.config import load_config


class RedisExposureTests(unittest.TestCase):
    def test_warnings(self):
        self.assertIn("password", redis_exposure_warning("redis://10.0.0.5:6379/0"))
        self.assertIn("rediss://", redis_exposure_warning("redis://ymds:pw@10.0.0.5:6379/0"))
        self.assertIn("rediss://", redis_exposure_warning("redis://10.0.0.5:6379/0?password=pw"))
        for quiet in ("redis://127.0.0.1:6379/0", "redis://localhost:6379/0", "redis://[::1]:6379/0",
                      "rediss://ymds:pw@redis.example:6380/0", "unix:///run/redis.sock?db=0"):
            self.assertIsNone(redis_exposure_warning(quiet), quiet)

    def test_check_prints_the_warning(self):
        config = load_config(raw={"server": {"public_url": "https://pay.example.org"},
                                  "redis": {"url": "redis://0.0.0.0:1/0"}}, env={})
        lines: list[str] = []
        run_check(config, {"web"}, lines.append)
        self.assertTrue(any(line.startswith("redis: WARNING") and "password" in line for line in lines), lines)


class RemoteChecksTests(unittest.TestCase):
    """--check builds every endpoint (certificate loaded), calls getMe when a token is set
    (the fake Bot API) and checks the wallet token when one is set (the sandbox's API)."""

    def base(self, **sections):
        raw = {"server": {"public_url": "http://127.0.0.1:1"},
               "yoomoney": {"wallet": "4100117000000000", "notification_secret": "x"},
               "links": {"secret": "0123456789abcdef0123"}, "redis": {"url": "redis://127.0.0.1:1/0"}}
        for name, values in sections.items():
            raw[name] = {**raw.get(name, {}), **values}
        return load_config(raw=raw, env={})

    async def report(self, config, roles=frozenset({"web"})) -> list[str]:
        from twisted.internet import threads
        lines: list[str] = []
        await threads.deferToThread(run_check, config, set(roles), lines.append)  # blocking probes
        return lines

    async def test_missing_certificate_fails_the_check(self):
        empty = self.mktemp()
        import os
        os.makedirs(empty)
        lines = await self.report(self.base(server={"endpoint": f"tls:{os.path.abspath(empty)}:port=8443"}))
        [line] = [line for line in lines if line.startswith("server.endpoint:")]
        self.assertTrue(line.startswith("server.endpoint: FAILED"), line)
        self.assertIn("no fullchain.pem", line)
        self.assertEqual(lines[-1], "check: FAILED")

    async def test_get_me_against_the_fake_bot_api(self):
        from tests.fakes.bot_harness import start_fake
        from tests.fakes.fake_telegram import DEFAULT_TOKEN
        fake, url = start_fake(self)
        lines = await self.report(self.base(telegram={"token": DEFAULT_TOKEN, "api_url": url}))
        self.assertIn("telegram: ok (getMe: @ymds_test_bot)", lines)
        lines = await self.report(self.base(telegram={"token": "123:wrong-token-wrong-token", "api_url": url}))
        self.assertTrue(any(line.startswith("telegram: FAILED (getMe: HTTP 401") for line in lines), lines)

    async def test_wallet_token_against_the_sandbox(self):
        from twisted.internet import reactor
        from twisted.internet.defer import Deferred
        from twisted.web.resource import Resource
        from twisted.web.server import Site
        from ymds.sandbox import SandboxResource
        token = "sandbox-api-token-4100117000000000.ABCDEF"
        sandbox_config = self.base(yoomoney={"sandbox": True, "api_token": token})
        sandbox = SandboxResource(reactor, sandbox_config)
        self.addCleanup(lambda: Deferred.fromCoroutine(sandbox.stop()))
        root = Resource()
        root.putChild(b"sandbox", sandbox)
        port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        api_url = f"http://127.0.0.1:{port.getHost().port}/sandbox"
        lines = await self.report(self.base(yoomoney={"sandbox": True, "api_token": token, "api_url": api_url}))
        self.assertIn("yoomoney: ok (wallet API token: ok (operation-history))", lines)
        lines = await self.report(self.base(yoomoney={"sandbox": True, "api_token": "wrong", "api_url": api_url}))
        self.assertTrue(any(line.startswith("yoomoney: FAILED (wallet API token refused (HTTP 401)") for line in lines),
                        lines)
