"""``[server] workers = 2``: real twistd processes sharing one TLS socket.

Both children accept (each one alone serves while the other is frozen with SIGSTOP), a
child killed with SIGKILL is started again, and SIGTERM to the parent drains and stops
both children, then the parent exits and the port is free again.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile

from twisted.trial import unittest

from tests.support import webflow
from tests.support.processes import TWISTD, Child, descendants, test_env, wait_for_state, write_config
from tests.support.redis_server import RedisServer, free_port
from ymds.config import load_config
from ymds.config_values import ConfigError




def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class WorkersConfig(unittest.TestCase):
    def test_parsed(self):
        base = {"yoomoney": {"wallet": "4100123456789012", "notification_secret": "x"}}
        self.assertEqual(load_config(raw=base, env={}).server.workers, 1)
        self.assertEqual(load_config(raw={**base, "server": {"workers": 3}}, env={}).server.workers, 3)
        self.assertEqual(load_config(raw={**base, "server": {"workers": "auto"}}, env={}).server.workers,
                         os.cpu_count())
        with self.assertRaises(ConfigError):
            load_config(raw={**base, "server": {"workers": 0}}, env={})


class SharedSocket(unittest.TestCase):
    def test_endpoints_that_can_be_shared(self):
        from ymds.workers import _port_and_interface
        self.assertEqual(_port_and_interface("tls:/etc/ymds/tls:port=8443:interface=127.0.0.1"),
                         (8443, "127.0.0.1", 50))
        self.assertEqual(_port_and_interface("tls:/etc/ymds/tls"), (443, "", 50))
        self.assertEqual(_port_and_interface("ssl:8443:privateKey=k.pem"), (8443, "", 50))
        self.assertEqual(_port_and_interface("tcp:port=8080:backlog=200"), (8080, "", 200))
        self.assertEqual(_port_and_interface("tcp6:8080"), (8080, "::", 50))

    def test_endpoints_that_cannot(self):
        from ymds.workers import WorkersError, listen_socket
        for description in ("unix:/run/ymds.sock", "tcp:interface=127.0.0.1"):
            with self.assertRaises(WorkersError) as raised:
                listen_socket(description)
            self.assertIn("server", str(raised.exception))

    def test_the_parent_socket_is_listening_and_non_blocking(self):
        from ymds.workers import listen_socket
        sock = listen_socket("tcp:0:interface=127.0.0.1")
        self.addCleanup(sock.close)
        self.assertFalse(sock.getblocking())  # a child's accept loop must never block
        with socket.create_connection(sock.getsockname(), timeout=2):
            pass


class TwoWorkers(unittest.TestCase):
    timeout = 180

    def setUp(self):
        from ymds.demo import ensure_certificate
        self.redis = RedisServer(appendonly=False).start()
        self.addCleanup(self.redis.cleanup)
        self.dir = tempfile.mkdtemp(prefix="ymds-workers-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        certs = os.path.join(self.dir, "certs")
        os.makedirs(certs)
        ensure_certificate(certs)
        self.port = free_port()
        config = write_config(self.dir, self.redis.url,
                              server=f'endpoint = "tls:{certs}:port={self.port}:interface=127.0.0.1"\n'
                                     f'workers = 2\n')
        self.parent = Child(TWISTD + ["-n", "ymds", "--config", config, "--roles", "web"], env=test_env(),
                            cwd=self.dir, name="workers")
        self.addCleanup(self.parent.close)
        self.parent.start()
        self.parent.wait_for("web worker 1 started", timeout=60)
        wait_for_state(lambda: self.parent.output().count("web role listening on") >= 2, 60, "both children listening")

    def children(self) -> list[int]:
        return [p for p in descendants(self.parent.process.pid) if _alive(p)]

    def served(self) -> int:
        status, _, _ = webflow.request(f"https://localhost:{self.port}/healthz", timeout=10)
        return status

    def test_both_accept_a_crash_is_restarted_and_sigterm_drains_both(self):
        children = wait_for_state(lambda: len(self.children()) == 2 and self.children(), 30, "two children")
        self.assertIn(self.served(), (200, 503))  # answered (the ledger heartbeat may be missing)
        # each child alone: the other one frozen, new connections still answered
        for frozen, other in (children, children[::-1]):
            os.kill(frozen, signal.SIGSTOP)
            try:
                for _ in range(5):
                    self.assertIn(self.served(), (200, 503), f"pid {other} serves alone")
            finally:
                os.kill(frozen, signal.SIGCONT)
        # a crashed child is started again, the other one keeps serving meanwhile
        os.kill(children[0], signal.SIGKILL)
        self.parent.wait_for("exited (status None, signal 9)", timeout=30)
        self.assertIn(self.served(), (200, 503))
        again = wait_for_state(lambda: (lambda now: len(now) == 2 and children[0] not in now and now)(self.children()),
                      60, "a new child in place of the killed one")
        self.assertIn(children[1], again)
        wait_for_state(lambda: self.parent.output().count("web role listening on") >= 3, 60, "the new child listening")
        self.assertIn(self.served(), (200, 503))
        # SIGTERM: both children stop, then the parent (twistd ends by its own SIGTERM again,
        # so that systemd sees the signal) and the port is free
        self.assertIn(self.parent.terminate(timeout=60), (0, -signal.SIGTERM))
        wait_for_state(lambda: not any(_alive(p) for p in again), 30, "both children gone")
        self.assertIn("web workers: all stopped", self.parent.output())
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", self.port))  # nothing listens there any more
