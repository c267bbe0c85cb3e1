"""Issue 14, fail-fast configuration: no sandbox on a reachable address (not even switched on
by an environment variable), no plain-http public_url outside loopback."""
import os

from twisted.trial import unittest

from tests.support.processes import run_twistd, test_env, write_config
from ymds.config import ConfigError, is_loopback_url, load_config

BASE = {"yoomoney": {"wallet": "4100123456789012", "notification_secret": "x"},
        "links": {"secret": "0123456789abcdef0123"}}


def config(public_url: str, **yoomoney):
    raw = {"server": {"public_url": public_url}, "yoomoney": dict(BASE["yoomoney"], **yoomoney), "links": BASE["links"]}
    return load_config(raw=raw, env={})


class SandboxRefusedInProductionTests(unittest.TestCase):
    def test_sandbox_with_public_address_refused(self):
        for url in ("https://pay.example.org", "https://10.0.0.5:8443", "https://[2001:db8::1]"):
            with self.assertRaises(ConfigError) as caught:
                config(url, sandbox=True)
            self.assertEqual(caught.exception.key, "yoomoney.sandbox")
            self.assertNotIn("\n", str(caught.exception))

    def test_sandbox_on_loopback_allowed(self):
        for url in ("https://localhost:8443", "https://127.0.0.1:8443", "http://[::1]:8080", "https://demo.localhost"):
            self.assertTrue(config(url, sandbox=True).yoomoney.sandbox, url)

    def test_environment_variable_alone_cannot_enable_it(self):
        raw = {"server": {"public_url": "https://pay.example.org"}, **BASE}
        with self.assertRaises(ConfigError):
            load_config(raw=raw, env={"YMDS_YOOMONEY_SANDBOX": "true"})

    def test_check_and_start_fail_in_one_line(self):
        path = write_config(os.path.abspath(self.mktemp()), "redis://127.0.0.1:1/0")
        env = test_env(YMDS_YOOMONEY_SANDBOX="true")
        for extra in (["--check"], []):
            result = run_twistd(["-n", "ymds", "--config", path, *extra], env=env, timeout=60)
            self.assertEqual(result.returncode, 1, result.stderr)
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            self.assertEqual(len(lines), 1, result.stderr)
            self.assertIn("yoomoney.sandbox", lines[0])


class PublicUrlSchemeTests(unittest.TestCase):
    def test_plain_http_on_public_address_refused(self):
        with self.assertRaises(ConfigError) as caught:
            config("http://pay.example.org")
        self.assertEqual(caught.exception.key, "server.public_url")

    def test_plain_http_on_loopback_allowed(self):
        self.assertEqual(config("http://127.0.0.1:8080").server.public_url, "http://127.0.0.1:8080")

    def test_loopback_detection(self):
        self.assertTrue(is_loopback_url("https://127.1.2.3"))
        self.assertFalse(is_loopback_url("https://localhost.evil.example"))
        self.assertFalse(is_loopback_url("https://0.0.0.0"))
