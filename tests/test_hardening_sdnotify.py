"""ymds.sdnotify against a real unix datagram socket, as systemd listens."""
import os
import socket
import tempfile

from twisted.trial import unittest

from ymds import sdnotify


class SdNotifyTests(unittest.TestCase):
    def listen(self, path):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(5)
        self.addCleanup(sock.close)
        return sock

    def test_ready_reaches_the_socket(self):
        directory = tempfile.mkdtemp()
        self.addCleanup(os.rmdir, directory)
        path = os.path.join(directory, "notify")
        sock = self.listen(path)
        self.addCleanup(os.unlink, path)
        self.assertTrue(sdnotify.ready({"NOTIFY_SOCKET": path}))
        self.assertEqual(sock.recv(256), b"READY=1")
        self.assertTrue(sdnotify.stopping({"NOTIFY_SOCKET": path}))
        self.assertEqual(sock.recv(256), b"STOPPING=1")

    def test_abstract_socket(self):
        name = f"ymds-test-{os.getpid()}-{id(self)}"
        sock = self.listen("\0" + name)
        self.assertTrue(sdnotify.ready({"NOTIFY_SOCKET": "@" + name}))
        self.assertEqual(sock.recv(256), b"READY=1")

    def test_not_under_systemd(self):
        self.assertFalse(sdnotify.ready({}))

    def test_unreachable_socket_is_not_fatal(self):
        self.assertFalse(sdnotify.ready({"NOTIFY_SOCKET": os.path.join(tempfile.gettempdir(), "ymds-no-such-socket")}))


class ProcessReadinessTests(unittest.TestCase):
    """A real twistd ymds process sends READY=1 only once its web listener is up
    (systemd Type=notify); a billing role also waits for the ledger migration."""

    def test_ready_after_listeners(self):
        import urllib.request

        from tests.support.processes import TWISTD, Child, test_env, write_config
        from tests.support.redis_server import RedisServer, free_port

        redis = RedisServer(appendonly=False).start()
        self.addCleanup(redis.cleanup)
        directory = tempfile.mkdtemp(prefix="ymds-sd-")
        self.addCleanup(__import__("shutil").rmtree, directory, True)
        sock = self.listen_at(os.path.join(directory, "notify"))
        port = free_port()
        path = write_config(os.path.join(directory, "cfg"), redis.url,
                            f'endpoint = "tcp:{port}:interface=127.0.0.1"')
        child = Child(TWISTD + ["-n", "ymds", "--config", path, "--roles", "web"],
                      env=test_env(NOTIFY_SOCKET=os.path.join(directory, "notify")), name="sdnotify")
        self.addCleanup(child.close)
        child.start()
        sock.settimeout(60)
        self.assertEqual(sock.recv(256), b"READY=1")
        # Ready means ready: the web listener already answers.
        self.assertIn("web role listening", child.output())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/style.css", timeout=10) as r:
            self.assertEqual(r.status, 200)

    def listen_at(self, path):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        self.addCleanup(sock.close)
        return sock


class SystemdUnitTests(unittest.TestCase):
    """contrib/systemd units wait for READY=1 and take secrets from LoadCredential=."""

    UNITS = ("ymds.service", "ymds-web.service", "ymds-billing@.service")

    def unit(self, name):
        path = os.path.join(os.path.dirname(__file__), "..", "contrib", "systemd", name)
        with open(path) as f:
            return [line.strip() for line in f if line.strip() and not line.startswith("#")]

    def test_type_notify_and_credentials(self):
        from ymds.config import load_config

        for name in self.UNITS:
            lines = self.unit(name)
            self.assertIn("Type=notify", lines, name)
            credentials = {line.split("=", 1)[1].split(":", 1)[0] for line in lines if line.startswith("LoadCredential=")}
            self.assertTrue(credentials, name)
            env = {}
            for line in lines:
                if line.startswith("Environment=YMDS_") and "=%d/" in line:
                    variable, value = line[len("Environment="):].split("=", 1)
                    credential = value[len("%d/"):]
                    self.assertIn(credential, credentials, (name, line))
                    directory = tempfile.mkdtemp()
                    self.addCleanup(__import__("shutil").rmtree, directory, True)
                    with open(os.path.join(directory, credential), "w") as f:
                        f.write("123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11\n" if credential == "telegram_token"
                                else f"secret-from-{credential}-0123456789\n")
                    env[variable] = os.path.join(directory, credential)
            self.assertEqual(len(env), len(credentials), name)
            config = load_config(raw={"server": {"public_url": "https://pay.example.org"},
                                      "yoomoney": {"wallet": "4100123456789012"}}, env=env)
            if "link_secret" in credentials:
                self.assertEqual(config.links.secret, b"secret-from-link_secret-0123456789")
            if "notification_secret" in credentials:
                self.assertEqual(config.yoomoney.notification_secret, "secret-from-notification_secret-0123456789")
