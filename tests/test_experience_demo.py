"""Issue 20, the demo as real processes: it writes its effective configuration to
<data-dir>/ymds.toml and prints the admin command; that command reads it; a payment whose
notification was lost before a restart is still in the sandbox's history afterwards and
``ymds reconcile`` (trusting the demo's own certificate) credits it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from twisted.trial import unittest

from tests.support import webflow
from tests.support.processes import TWISTD, Child, test_env
from tests.support.redis_server import RedisServer, free_port

YMDS = [sys.executable, "-m", "ymds.cli"]


class DemoRestartReconcile(unittest.TestCase):
    def setUp(self):
        self.redis = RedisServer(appendonly=False).start()
        self.addCleanup(self.redis.cleanup)
        self.data_dir = tempfile.mkdtemp(prefix="ymds-demo-")  # short: unix socket names are limited
        self.addCleanup(shutil.rmtree, self.data_dir, True)
        self.port = free_port()
        self.base = f"https://localhost:{self.port}"

    def start(self, name: str) -> Child:
        child = Child(TWISTD + ["-n", "ymds", "--demo", "--data-dir", self.data_dir, "--port", str(self.port)],
                      env=test_env(YMDS_REDIS_URL=self.redis.url), name=name)
        self.addCleanup(child.close)
        child.start()
        child.wait_for("billing role started", timeout=60)
        return child

    def ymds(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(YMDS + ["-c", os.path.join(self.data_dir, "ymds.toml"), *argv], env=test_env(),
                              capture_output=True, text=True, timeout=120, cwd=self.data_dir)

    def test_lost_notification_reconciled_after_restart(self):
        first = self.start("demo-1")
        config_path = os.path.join(self.data_dir, "ymds.toml")
        line = next(x for x in first.output().splitlines() if "configuration written to" in x)
        self.assertIn(f"configuration written to {config_path}; admin command: ymds -c ", line)
        self.assertTrue(line.rstrip().endswith("ymds.toml payments"), line)
        self.assertEqual(os.stat(config_path).st_mode & 0o777, 0o600)
        linked = self.ymds("link", "--plan", "month", "--chat", "777", "--json")  # the admin command reads the file
        self.assertEqual(linked.returncode, 0, linked.stderr)
        pay_url = json.loads(linked.stdout)["url"]
        # the first delivery fails; the retry ten minutes later dies with the process
        webflow.pay_in_sandbox(pay_url, "AC", switches=("fail_first",))
        first.terminate()
        self.start("demo-2")  # its billing role may reconcile it first: then the command finds it known
        reconciled = self.ymds("reconcile", "--since", "1h")
        self.assertEqual(reconciled.returncode, 0, reconciled.stderr)
        self.assertRegex(reconciled.stdout, r"seen 1 incoming operations since .*: (0 already in the ledger, 1 applied"
                                            r"|1 already in the ledger, 0 applied)")
        listed = self.ymds("payments", "--json")
        payments = json.loads(listed.stdout)
        self.assertEqual([(p["status"], p["purpose"], p["source"]) for p in payments],
                         [("paid", "plan month", "reconcile")])
        self.assertEqual(payments[0]["chat_id"], 777)
        self.assertTrue(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", payments[0]["paid_at"]), payments[0])
        self.assertLessEqual(payments[0]["paid_at"], payments[0]["received_at"])
        webflow.wait_for_status(pay_url, "paid")
        # the demo's own notification URL over its self-signed TLS: trusted without --cafile
        tested = self.ymds("test-notification", "--timeout", "20")
        self.assertEqual(tested.returncode, 0, tested.stdout + tested.stderr)
        self.assertIn(f"POST {self.base}/yoomoney/notify: HTTP 200", tested.stdout)
        # without the sandbox the certificate is checked: the error line says what to give
        live = self.ymds("test-notification", "--timeout", "20", "--set", "yoomoney.sandbox=false")
        self.assertEqual(live.returncode, 2, live.stdout + live.stderr)
        self.assertIn("give --cafile", live.stderr)
        self.assertEqual(live.stderr.count("\n"), 1, live.stderr)
        trusted = self.ymds("test-notification", "--timeout", "20", "--set", "yoomoney.sandbox=false",
                            "--cafile", os.path.join(self.data_dir, "cert.pem"))
        self.assertEqual(trusted.returncode, 0, trusted.stdout + trusted.stderr)
