"""Queue plumbing: Redis URLs, the JSON codec, connections (unix socket, password, db,
Sentinel), timeouts, and surviving a Redis restart in the middle of a stream of jobs."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from decimal import Decimal

from twisted.internet import defer, protocol, reactor, task
from twisted.trial import unittest

from ymds.config import QueueConfig, RedisConfig
from ymds.queue import RedisUnavailable, codec
from ymds.queue.client import RedisJobQueue
from ymds.queue.redis import ConnectionLost, RedisAddress, RedisConnection, RedisURLError, parse_redis_url
from ymds.queue.registry import TaskRegistry
from ymds.queue.worker import Worker
from tests.support.redis_server import RedisServer, free_port
from tests.test_queue import scan, wait_until


class URLs(unittest.TestCase):
    def test_tcp(self):
        a = parse_redis_url("redis://127.0.0.1:6380/2")
        self.assertEqual((a.kind, a.host, a.port, a.db, a.tls, a.password), ("tcp", "127.0.0.1", 6380, 2, False, None))
        self.assertEqual(parse_redis_url("redis://localhost").port, 6379)
        self.assertEqual(parse_redis_url("redis://localhost").db, 0)

    def test_password_and_tls(self):
        a = parse_redis_url("rediss://:s3cr%40t@redis.example.org:6390/1")
        self.assertEqual((a.tls, a.password, a.username, a.db), (True, "s3cr@t", None, 1))
        self.assertNotIn("s3cr", repr(a))
        self.assertNotIn("s3cr", a.describe())
        b = parse_redis_url("redis://app:pw@h/0")
        self.assertEqual((b.username, b.password), ("app", "pw"))

    def test_unix(self):
        a = parse_redis_url("unix:///run/redis/redis.sock?db=3&password=pw")
        self.assertEqual((a.kind, a.path, a.db, a.password), ("unix", "/run/redis/redis.sock", 3, "pw"))
        self.assertEqual(parse_redis_url("unix:///tmp/r.sock").db, 0)

    def test_sentinel(self):
        a = parse_redis_url("redis+sentinel://:pw@h1:26379,h2:26380,h3/mymaster/4")
        self.assertEqual(a.kind, "sentinel")
        self.assertEqual(a.sentinels, (("h1", 26379), ("h2", 26380), ("h3", 26379)))
        self.assertEqual((a.service, a.db, a.password), ("mymaster", 4, "pw"))

    def test_bad_urls(self):
        for url in ["", "http://x", "redis://", "redis://h:99999/0", "redis://h/x",
                    "unix://", "redis+sentinel://h1:26379", "redis+sentinel://h1:abc/m"]:
            with self.assertRaises(RedisURLError, msg=url):
                parse_redis_url(url)


class Codec(unittest.TestCase):
    def test_decimal_round_trip(self):
        value = {"amount": Decimal("12.50"), "list": [Decimal("-0.01"), 1, "x", None, True],
                 "nested": {"sum": Decimal("1E+3")}, "text": "Привет"}
        back = codec.loads(codec.dumps(value))
        self.assertEqual(back, value)
        self.assertIsInstance(back["amount"], Decimal)
        self.assertEqual(str(back["amount"]), "12.50")  # the exponent survives: 12.50, not 12.5
        self.assertEqual(codec.dumps(Decimal("12.50")), '{"$dec":"12.50"}')

    def test_refusals(self):
        for bad in ['{"$dec": "NaN"}', '{"$dec": "Infinity"}', '{"$dec": 5}', '{"$dec": "1e99999"}',
                    '{"$dec": "12,50"}', '{"$dec": "' + "9" * 100 + '"}', "{bad", b"\xff\xfe"]:
            with self.assertRaises(codec.CodecError, msg=bad):
                codec.loads(bad)
        with self.assertRaises(codec.CodecError):
            codec.dumps(Decimal("sNaN"))
        with self.assertRaises(codec.CodecError):
            codec.dumps(float("inf"))
        with self.assertRaises(TypeError):
            codec.dumps({"when": object()})
        # a dict that merely contains the tag among other keys is ordinary data
        self.assertEqual(codec.loads('{"$dec": "1", "x": 2}'), {"$dec": "1", "x": 2})


class _CustomRedis:
    """A redis-server with a unix socket, a password and no TCP port."""

    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="ymds-redis-unix-")
        self.socket = os.path.join(self.dir, "redis.sock")
        self.process = subprocess.Popen(
            [shutil.which("redis-server"), "--port", "0", "--unixsocket", self.socket, "--dir", self.dir,
             "--save", "", "--appendonly", "no", "--requirepass", "pw-unix", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.socket):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not create its socket")
            time.sleep(0.02)

    def cleanup(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Connections(unittest.TestCase):
    async def test_unix_socket_password_db(self):
        server = _CustomRedis()
        self.addCleanup(server.cleanup)
        url = f"unix://{server.socket}?db=5&password=pw-unix"
        conn = RedisConnection(reactor, parse_redis_url(url), "t")
        self.addCleanup(conn.close)
        self.assertEqual(await conn.execute("SET", "k", "v"), "OK")
        self.assertEqual(await conn.execute("CLIENT", "INFO"), (await conn.execute("CLIENT", "INFO")))
        info = await conn.execute("CLIENT", "INFO")
        self.assertIn("db=5", info)
        # and the whole queue works over it
        ran = []

        async def job(args):
            ran.append(args["amount"])
            return args["amount"]

        cfg = RedisConfig(url=url, prefix="u")
        q = RedisJobQueue(reactor, cfg)
        self.addCleanup(q.stopService)
        q.startService()
        w = Worker(reactor, cfg, QueueConfig(), "billing", TaskRegistry({"job": job}), block=0.2)
        w.startService()
        self.addCleanup(lambda: w.running and w.stopService())
        self.assertEqual(await q.call("billing", "job", {"amount": Decimal("3.30")}), Decimal("3.30"))

    async def test_wrong_password_times_out_clearly(self):
        server = _CustomRedis()
        self.addCleanup(server.cleanup)
        conn = RedisConnection(reactor, parse_redis_url(f"unix://{server.socket}?password=wrong"), "t",
                               command_timeout=0.3)
        self.addCleanup(conn.close)
        with self.assertRaises(RedisUnavailable) as caught:
            await conn.execute("PING")
        self.assertIn("no reply to PING", str(caught.exception))
        self.assertNotIn("wrong", str(caught.exception))
        self.flushLoggedErrors()

    async def test_silent_server_times_out_and_reconnects(self):
        """A server that accepts and never answers: the command fails with a clear timeout
        and the connection is dropped (its replies would be out of step)."""
        connections = []

        class Silent(protocol.Protocol):
            def connectionMade(self):
                connections.append(self)

        port = reactor.listenTCP(0, protocol.Factory.forProtocol(Silent), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        conn = RedisConnection(reactor, RedisAddress("tcp", "127.0.0.1", port.getHost().port), "t",
                               command_timeout=0.2)
        self.addCleanup(conn.close)
        with self.assertRaises(RedisUnavailable):
            await conn.execute("GET", "x")
        await wait_until(lambda: len(connections) >= 2)  # dropped and made afresh
        for c in connections:
            c.transport.loseConnection()

    async def test_sentinel(self):
        """redis+sentinel:// asks Sentinel for the master and talks to it."""
        master = RedisServer(appendonly=False).start()
        self.addCleanup(master.cleanup)
        sdir = tempfile.mkdtemp(prefix="ymds-sentinel-")
        sport = free_port()
        conf = os.path.join(sdir, "sentinel.conf")
        with open(conf, "w") as f:
            f.write(f"port {sport}\nbind 127.0.0.1\ndir {sdir}\n"
                    f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n")
        proc = subprocess.Popen([shutil.which("redis-server"), conf, "--sentinel"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def stop_sentinel():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            shutil.rmtree(sdir, ignore_errors=True)

        self.addCleanup(stop_sentinel)
        for _ in range(500):
            try:
                socket.create_connection(("127.0.0.1", sport), timeout=0.2).close()
                break
            except OSError:
                await task.deferLater(reactor, 0.02)
        url = f"redis+sentinel://127.0.0.1:{sport}/mymaster/2"
        conn = RedisConnection(reactor, parse_redis_url(url), "t", command_timeout=10)
        self.addCleanup(conn.close)
        self.assertEqual(await conn.execute("SET", "via-sentinel", "1"), "OK")
        self.assertEqual(master.command("SELECT", "2"), "OK")
        self.assertEqual(master.command("DBSIZE"), 0)  # the raw helper is on db 0
        self.assertIn("via-sentinel", await conn.execute("KEYS", "*"))


class RedisRestart(unittest.TestCase):
    async def test_jobs_survive_kill_and_restart(self):
        """Redis is killed (SIGKILL, appendonly on) and restarted during a stream of jobs:
        every enqueue succeeds and every job completes; nothing is left behind."""
        server = RedisServer(appendonly=True).start()
        self.addCleanup(server.cleanup)
        cfg = RedisConfig(url=server.url, prefix="r")
        done: dict[int, int] = {}

        async def job(args):
            done[args["i"]] = done.get(args["i"], 0) + 1
            return args["i"]

        q = RedisJobQueue(reactor, cfg, command_timeout=1.0)
        q.startService()
        self.addCleanup(q.stopService)
        qc = QueueConfig(concurrency=16, batch=20, visibility_timeout=2.0, stop_timeout=5.0)
        w = Worker(reactor, cfg, qc, "billing", TaskRegistry({"job": job}), "w1",
                   block=0.2, command_timeout=1.0, reclaim_interval=0.5, lease_interval=0.5)
        w.startService()
        self.addCleanup(lambda: w.running and w.stopService())
        total = 600
        enqueued = []
        for i in range(total):
            enqueued.append(q.enqueue("billing", "job", {"i": i}))
            if i % 20 == 19:
                await task.deferLater(reactor, 0.005)
            if i == 250:
                server.kill()
                await task.deferLater(reactor, 0.3)  # Redis is down for a moment
                server.start()
        ids = await defer.gatherResults(enqueued)
        self.assertTrue(all(ids))
        # calls work again as well
        self.assertEqual(await q.call("billing", "job", {"i": total}, timeout=10), total)
        await wait_until(lambda: len(done) == total + 1, timeout=60)
        self.assertEqual(set(done), set(range(total + 1)))
        stream = "r:q:billing"
        await wait_until(lambda: server.command("XLEN", stream) == 0, timeout=30)
        self.assertEqual(int(server.command("XPENDING", stream, "workers")[0]), 0)
        await w.stopService()
        self.assertEqual([k for k in scan(server, "r") if not k.startswith("r:reply:")], [stream])
        self.flushLoggedErrors()


class SkewedClocks(unittest.TestCase):
    async def test_hosts_with_wrong_clocks(self):
        """A worker host an hour fast and a client host an hour slow: RPC calls are not taken
        for expired and delayed jobs are not run early (all times are Redis's)."""
        server = RedisServer(appendonly=False).start()
        self.addCleanup(server.cleanup)
        cfg = RedisConfig(url=server.url, prefix="s")
        fast, slow = task.Clock(), task.Clock()
        fast.advance(time.time() + 3600)
        slow.advance(time.time() - 3600)
        ran = []

        async def job(args):
            ran.append(args["k"])
            return args["k"]

        q = RedisJobQueue(reactor, cfg, clock=slow)
        q.startService()
        self.addCleanup(q.stopService)
        w = Worker(reactor, cfg, QueueConfig(), "billing", TaskRegistry({"job": job}), clock=fast, block=0.2)
        w.startService()
        self.addCleanup(w.stopService)
        self.assertEqual(await q.call("billing", "job", {"k": "rpc"}, timeout=5), "rpc")
        await q.enqueue("billing", "job", {"k": "later"}, delay=30)
        fast.advance(1)
        await wait_until(lambda: not w.promoter.busy)
        fast.advance(1)
        await wait_until(lambda: not w.promoter.busy)
        self.assertEqual(ran, ["rpc"])
        fast.advance(30)
        await wait_until(lambda: ran == ["rpc", "later"])


class SentinelFailover(unittest.TestCase):
    async def test_failover_moves_to_the_new_master(self):
        """After a Sentinel failover the old master answers READONLY: the connection is
        dropped, Sentinel is asked again, and commands go to the new master."""
        master = RedisServer(appendonly=False).start()
        self.addCleanup(master.cleanup)
        replica = RedisServer(appendonly=False).start()
        self.addCleanup(replica.cleanup)
        replica.command("REPLICAOF", "127.0.0.1", str(master.port))
        sdir = tempfile.mkdtemp(prefix="ymds-sentinel-")
        sport = free_port()
        conf = os.path.join(sdir, "sentinel.conf")
        with open(conf, "w") as f:
            f.write(f"port {sport}\nbind 127.0.0.1\ndir {sdir}\n"
                    f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
                    "sentinel down-after-milliseconds mymaster 1000\n")
        proc = subprocess.Popen([shutil.which("redis-server"), conf, "--sentinel"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def stop_sentinel():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            shutil.rmtree(sdir, ignore_errors=True)

        self.addCleanup(stop_sentinel)
        url = f"redis+sentinel://127.0.0.1:{sport}/mymaster/0"
        conn = RedisConnection(reactor, parse_redis_url(url), "t", command_timeout=10)
        self.addCleanup(conn.close)
        self.assertEqual(await conn.execute("SET", "before", "1"), "OK")

        def sentinel(*args):
            from tests.support.resp import command
            return command(sport, *args)

        # wait until Sentinel knows the replica, then force a failover to it
        for _ in range(600):
            if sentinel("SENTINEL", "REPLICAS", "mymaster"):
                break
            await task.deferLater(reactor, 0.05)
        for _ in range(100):
            try:
                sentinel("SENTINEL", "FAILOVER", "mymaster")
                break
            except RuntimeError:  # "INPROG" or no good replica yet
                await task.deferLater(reactor, 0.1)
        for _ in range(600):
            if int(sentinel("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")[1]) == replica.port \
                    and master.command("ROLE")[0] == "slave":
                break
            await task.deferLater(reactor, 0.05)
        self.assertEqual(master.command("ROLE")[0], "slave")  # the old master was demoted
        written = None
        for _ in range(300):
            try:
                written = await conn.execute("SET", "after", "2")
                break
            except Exception:  # READONLY from the old master until we reconnect
                await task.deferLater(reactor, 0.05)
        self.assertEqual(written, "OK")
        self.assertEqual(replica.command("GET", "after"), "2")  # the old replica is the master now
        self.flushLoggedErrors()

    async def test_readonly_reply_drops_the_connection(self):
        """A server that turned replica (READONLY) is not kept: the connection is made afresh
        (through Sentinel that reaches the new master)."""
        master = RedisServer(appendonly=False).start()
        self.addCleanup(master.cleanup)
        server = RedisServer(appendonly=False).start()
        self.addCleanup(server.cleanup)
        conn = RedisConnection(reactor, parse_redis_url(server.url), "t")
        self.addCleanup(conn.close)
        self.assertEqual(await conn.execute("SET", "k", "v"), "OK")
        first = conn._protocol
        server.command("REPLICAOF", "127.0.0.1", str(master.port))
        with self.assertRaises(Exception) as caught:
            await conn.execute("SET", "k", "w")
        self.assertIn("READONLY", str(caught.exception))
        await wait_until(lambda: conn._protocol is not None and conn._protocol is not first)
        self.flushLoggedErrors()


def _make_tls_files(directory: str) -> tuple[str, str, str]:
    """A CA and a server certificate for localhost, as PEM files: (ca, cert, key)."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ymds test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = [os.path.join(directory, n) for n in ("ca.pem", "cert.pem", "key.pem")]
    with open(paths[0], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    return paths[0], paths[1], paths[2]


class TLS(unittest.TestCase):
    def start_tls_redis(self):
        directory = tempfile.mkdtemp(prefix="ymds-redis-tls-")
        self.addCleanup(shutil.rmtree, directory, True)
        ca, cert, key = _make_tls_files(directory)
        port = free_port()
        proc = subprocess.Popen(
            [shutil.which("redis-server"), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
             "--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", ca,
             "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def stop():
            proc.send_signal(signal.SIGKILL)
            proc.wait()

        self.addCleanup(stop)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return port, ca
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    async def test_rediss_with_private_ca(self):
        port, ca = self.start_tls_redis()
        conn = RedisConnection(reactor, parse_redis_url(f"rediss://localhost:{port}/0?ca_file={ca}"), "t")
        self.addCleanup(conn.close)
        self.assertEqual(await conn.execute("PING"), "PONG")

    async def test_rediss_refuses_an_unknown_certificate(self):
        """Without the CA the server's certificate is not trusted: no connection, a clear timeout."""
        port, _ = self.start_tls_redis()
        conn = RedisConnection(reactor, parse_redis_url(f"rediss://localhost:{port}/0"), "t",
                               command_timeout=1.0)
        self.addCleanup(conn.close)
        with self.assertRaises((RedisUnavailable, ConnectionLost)):
            await conn.execute("PING")
        self.assertFalse(conn.connected)
        self.flushLoggedErrors()

    def test_ca_file_needs_tls(self):
        with self.assertRaises(RedisURLError):
            parse_redis_url("redis://localhost/0?ca_file=/x.pem")
        self.assertEqual(parse_redis_url("rediss://h/0?ca_file=/x.pem").ca_file, "/x.pem")
