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
