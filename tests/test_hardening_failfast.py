"""Issue 14, fail fast: a web role that cannot listen exits 1 within seconds with one line
naming the endpoint and the fix (a real twistd process)."""

from __future__ import annotations

import os
import socket
import time

from twisted.trial import unittest

from tests.support.processes import TWISTD, Child, run_twistd, test_env, write_config
from tests.support.redis_server import RedisServer


class CannotListenTests(unittest.TestCase):
    def start(self, endpoint: str) -> tuple[int, list[str], float]:
        path = write_config(os.path.abspath(self.mktemp()), "redis://127.0.0.1:1/0", server=f'endpoint = "{endpoint}"')
        began = time.monotonic()
        result = run_twistd(["-n", "ymds", "--config", path, "--roles", "web"], env=test_env(), timeout=60)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        return result.returncode, lines, time.monotonic() - began

    def test_port_in_use_exits_1_with_one_line(self):
        holder = socket.socket()
        self.addCleanup(holder.close)
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        code, lines, took = self.start(f"tcp:{port}:interface=127.0.0.1")
        self.assertEqual(code, 1, lines)
        self.assertEqual(len(lines), 1, lines)
        self.assertIn(f"cannot listen on tcp:{port}:interface=127.0.0.1", lines[0])
        self.assertIn("choose another port in server.endpoint", lines[0])
        self.assertLess(took, 30)  # bounded by the subprocess timeout too; not a wall-clock claim

    def test_missing_certificate_is_one_line(self):
        empty = os.path.abspath(self.mktemp())
        os.makedirs(empty)
        code, lines, _ = self.start(f"tls:{empty}:port=0:interface=127.0.0.1")
        self.assertEqual(code, 1, lines)
        self.assertEqual(len(lines), 1, lines)
        self.assertIn(f"cannot listen on tls:{empty}", lines[0])
        self.assertIn("server.endpoint", lines[0])


class QuietStartTests(unittest.TestCase):
    def test_no_starting_factory_noise_at_info(self):
        redis = RedisServer(appendonly=False).start()
        self.addCleanup(redis.cleanup)
        path = write_config(os.path.abspath(self.mktemp()), redis.url, server='endpoint = "tcp:0:interface=127.0.0.1"')
        child = Child(TWISTD + ["-n", "ymds", "--config", path, "--roles", "web"], name="quiet").start()
        self.addCleanup(child.close)
        child.wait_for("web role listening")  # logged once the port is open (before the reactor runs)
        child.terminate()
        out = child.output()
        self.assertIn("web role listening", out)  # the log was captured
        self.assertNotIn("Starting factory", out)
