"""Issue 14: the demo's start-up lines never print a Redis password."""

from __future__ import annotations

import os
import tempfile

from twisted.internet import reactor
from twisted.trial import unittest

from tests.support.redis_server import RedisServer
from ymds.tap import Options, prepare, redacted_url

PASSWORD = "hunter2-very-secret"


class RedactionTests(unittest.TestCase):
    def test_redacted_url(self):
        self.assertEqual(redacted_url(f"redis://:{PASSWORD}@10.0.0.5:6379/0"), "redis://:***@10.0.0.5:6379/0")
        self.assertEqual(redacted_url(f"rediss://ymds:{PASSWORD}@r.example:6380/1"), "rediss://ymds:***@r.example:6380/1")
        self.assertEqual(redacted_url("redis://127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0")
        self.assertEqual(redacted_url("unix:///run/redis.sock"), "unix:///run/redis.sock")

    def test_demo_start_lines_hide_the_password(self):
        redis = RedisServer(appendonly=False).start()
        self.addCleanup(redis.cleanup)
        redis.command("CONFIG", "SET", "requirepass", PASSWORD)
        options = Options()
        options.parseOptions(["--demo", "--data-dir", tempfile.mkdtemp(prefix="ymds-demo-redact-")])
        said: list[str] = []
        old = os.environ.get("YMDS_REDIS_URL")
        os.environ["YMDS_REDIS_URL"] = f"redis://:{PASSWORD}@127.0.0.1:{redis.port}/0"
        try:
            prepare(options, reactor, said.append)
        finally:
            if old is None:
                del os.environ["YMDS_REDIS_URL"]
            else:
                os.environ["YMDS_REDIS_URL"] = old
        self.assertTrue(any(f"redis://:***@127.0.0.1:{redis.port}/0" in line for line in said), said)
        self.assertFalse([line for line in said if PASSWORD in line])
