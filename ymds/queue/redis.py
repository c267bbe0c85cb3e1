"""Redis connections for the queue: URL parsing, reconnecting connections, timeouts, scripts.

Built on txredisapi's protocol (hiredis-accelerated when hiredis is installed) with our
own connection management so that:

- every command has a timeout driven by the injected reactor; a command that times out
  drops its connection (the reply stream can no longer be trusted) and a fresh one is made;
- a lost connection or a restarted Redis is reconnected with backoff, for ever;
- blocking commands (XREADGROUP BLOCK, BLMPOP) run on connections of their own.

URL forms (DESIGN.md section 4)::

    redis://[[user]:password@]host[:port][/db]
    rediss://...[?ca_file=/path/ca.pem]            (TLS, certificate verified)
    unix:///path/redis.sock?db=0&password=...
    redis+sentinel://[:password@]h1:26379,h2:26379/mymaster[/db]
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

import txredisapi
from twisted.application.internet import ClientService
from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint, wrapClientTLS
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.internet.interfaces import IStreamClientEndpoint

from ymds.queue.errors import RedisUnavailable
from ymds.queue.fastwrite import direct_writer
from ymds.queue.sentinel import SentinelMasterEndpoint

log = Logger()

ResponseError = txredisapi.ResponseError
ConnectionLost = txredisapi.ConnectionError


class RedisURLError(ValueError):
    """The Redis URL cannot be used; the text says what to write instead."""


@dataclass(frozen=True)
class RedisAddress:
    """Where Redis is and how to log in.  ``repr`` never shows the password."""

    kind: str  # "tcp" | "unix" | "sentinel"
    host: str = "127.0.0.1"
    port: int = 6379
    path: str = ""
    tls: bool = False
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = ""
    ca_file: str = ""  # rediss:// with a private CA: ?ca_file=/etc/ymds/redis-ca.pem

    def describe(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path} db {self.db}"
        if self.kind == "sentinel":
            hosts = ",".join(f"{h}:{p}" for h, p in self.sentinels)
            return f"sentinel {hosts} service {self.service} db {self.db}"
        return f"{'rediss' if self.tls else 'redis'}://{self.host}:{self.port}/{self.db}"


def _db(text: str, url: str) -> int:
    if text in ("", None):
        return 0
    if not text.isdigit() or int(text) > 100000:
        raise RedisURLError(f"{url!r}: database {text!r} is not a number; write e.g. /0")
    return int(text)


def _port(text: str | None, default: int, url: str) -> int:
    if not text:
        return default
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise RedisURLError(f"{url!r}: port {text!r} is not a TCP port")
    return int(text)


def parse_redis_url(url: str) -> RedisAddress:
    """Parse the URL forms of DESIGN.md section 4; raises RedisURLError."""
    if not isinstance(url, str) or not url.strip():
        raise RedisURLError("empty Redis URL; write e.g. redis://127.0.0.1:6379/0")
    url = url.strip()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if "password" in query:
        password = query["password"]
    if scheme in ("redis", "rediss"):
        if not parts.hostname:
            raise RedisURLError(f"{url!r} has no host; write redis://host:6379/0")
        db = _db(parts.path.lstrip("/") or query.get("db", ""), url)
        try:
            port = parts.port or 6379
        except ValueError:
            raise RedisURLError(f"{url!r}: the port is not a TCP port number") from None
        ca_file = query.get("ca_file") or query.get("ssl_ca_certs") or ""
        if ca_file and scheme != "rediss":
            raise RedisURLError(f"{url!r}: ca_file needs TLS; write rediss://")
        return RedisAddress("tcp", host=parts.hostname, port=port, tls=scheme == "rediss", db=db,
                            username=username or None, password=password, ca_file=ca_file)
    if scheme == "unix":
        path = unquote(parts.path)
        if not path:
            raise RedisURLError(f"{url!r} has no socket path; write unix:///run/redis.sock?db=0")
        return RedisAddress("unix", path=path, db=_db(query.get("db", ""), url),
                            username=username or None, password=password)
    if scheme == "redis+sentinel":
        netloc = parts.netloc.rsplit("@", 1)[-1]
        sentinels = []
        for item in netloc.split(","):
            s_host, _, s_port = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "")
            if not s_host:
                raise RedisURLError(f"{url!r}: bad sentinel address {item!r}; write host:26379")
            sentinels.append((s_host.strip("[]"), _port(s_port, 26379, url)))
        names = [p for p in parts.path.split("/") if p]
        if not names:
            raise RedisURLError(f"{url!r} names no master; write redis+sentinel://h1:26379,h2:26379/mymaster/0")
        db = _db(names[1] if len(names) > 1 else query.get("db", ""), url)
        return RedisAddress("sentinel", sentinels=tuple(sentinels), service=unquote(names[0]), db=db,
                            username=username or None, password=password)
    raise RedisURLError(f"{url!r} is not a Redis URL; use redis://host:6379/0, rediss://..., "
                        "unix:///run/redis.sock?db=0 or redis+sentinel://h1:26379/mymaster/0")


def make_endpoint(reactor, address: RedisAddress, connect_timeout: float = 5.0):
    if address.kind == "unix":
        return UNIXClientEndpoint(reactor, address.path, timeout=connect_timeout)
    if address.kind == "sentinel":
        return SentinelMasterEndpoint(reactor, address.sentinels, address.service, connect_timeout)
    endpoint: IStreamClientEndpoint = HostnameEndpoint(reactor, address.host, address.port, timeout=connect_timeout)
    if address.tls:
        from twisted.internet.ssl import Certificate, optionsForClientTLS
        trust = None
        if address.ca_file:
            try:
                with open(address.ca_file, "rb") as f:
                    trust = Certificate.loadPEM(f.read())
            except (OSError, ValueError) as e:
                raise RedisURLError(f"cannot read the Redis CA certificate {address.ca_file}: {e}") from None
        # the server's certificate is verified (system CAs, or ca_file) against the URL's host
        endpoint = wrapClientTLS(optionsForClientTLS(address.host, trustRoot=trust), endpoint)
    return endpoint


class _Protocol(txredisapi.RedisProtocol):
    """txredisapi's protocol with a leaner command encoder (it runs for every command).

    ``on_lost`` (set by the connection that uses it) is told when the connection is lost.
    """

    on_lost: Callable[[Failure], None] | None = None

    def connectionLost(self, reason: Failure) -> None:
        on_lost, self.on_lost = self.on_lost, None
        if on_lost is not None:
            on_lost(reason)
        return super().connectionLost(reason)

    def _build_command(self, *args, **kwargs):
        out = [b"*%d\r\n" % len(args)]
        append = out.append
        for arg in args:
            if isinstance(arg, str):
                data = arg.encode("utf-8")
            elif isinstance(arg, bytes):
                data = arg
            elif isinstance(arg, float):
                data = format(arg, "f").encode()
            else:
                data = str(arg).encode()
            append(b"$%d\r\n%s\r\n" % (len(data), data))
        return b"".join(out)

    def connectionMade(self):
        self.transport: Any = direct_writer(self.transport)
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            try:
                set_no_delay(True)  # small pipelined commands must not wait for Nagle
            except OSError:
                pass
        return super().connectionMade()


class _ProtocolFactory(Factory):
    """Builds txredisapi protocols (convertNumbers=False) that log in and select the db,
    and tells the connection about each one that becomes usable."""

    noisy = False
    isLazy = True

    def __init__(self, reactor, address: RedisAddress, connection: "RedisConnection"):
        self._reactor = reactor
        self._address = address
        self._connection = connection
        self._error_logged = False

    def buildProtocol(self, addr):
        a = self._address
        p = _Protocol(charset="utf-8", password=a.password, dbid=a.db or None,
                      convertNumbers=False, username=a.username)
        p.factory = self
        p.callLater = self._reactor.callLater
        p.whenConnected().addCallback(self._connection._logged_in)
        return p

    # txredisapi's connectionMade calls these when AUTH or SELECT fail; the connection is
    # then closed and retried with backoff, so an operator's fix is picked up
    def stopTrying(self):
        pass

    def connectionError(self, why):
        if not self._error_logged:  # once per outage, not every retry
            self._error_logged = True
            log.error("redis {name}: {why}; retrying", name=self._connection.name, why=why)


def _retry_delay(attempt: int) -> float:
    # quick first retries (a restart is usually short), then at most every 2 s
    return min(2.0, 0.05 * (2 ** min(attempt, 10)))


class RedisConnection:
    """One reconnecting connection; ``execute`` pipelines commands on it.

    Commands sent while disconnected wait for the connection until their timeout.
    """

    def __init__(self, reactor, address: RedisAddress, name: str = "redis",
                 command_timeout: float = 5.0, connect_timeout: float = 5.0):
        self.reactor = reactor
        self.address = address
        self.name = name
        self.command_timeout = command_timeout
        self._protocol = None
        self._waiters: list[defer.Deferred] = []
        self._was_connected = False
        # +1 on every new server connection: commands that must share one (a write, then
        # WAIT for its replication) check it did not change between them
        self.generation = 0
        self._endpoint = make_endpoint(reactor, address, connect_timeout)
        self._factory = _ProtocolFactory(reactor, address, self)
        # readiness (AUTH, SELECT, the Sentinel role check) is tracked here rather than
        # through prepareConnection: ClientService cannot cope with a connection that is
        # closed while being prepared (a refused password)
        self._service = ClientService(self._endpoint, self._factory, retryPolicy=_retry_delay,
                                      clock=reactor)
        self._started = False
        self._stopped = False

    def start(self) -> None:
        if not self._started and not self._stopped:
            self._started = True
            self._service.startService()

    def _logged_in(self, protocol):
        if self.address.kind == "sentinel":
            def check(role):
                if not role or role[0] != "master":
                    log.warn("redis {name}: Sentinel named a server that is not a master", name=self.name)
                    protocol.transport.loseConnection()
                    return
                self._ready(protocol)

            protocol.execute_command("ROLE").addCallbacks(check, lambda f: protocol.transport.loseConnection())
            return
        self._ready(protocol)

    def _ready(self, protocol):
        if self._stopped or not protocol.connected:
            protocol.transport.loseConnection()
            return
        self._protocol = protocol
        self.generation += 1
        self._factory._error_logged = False

        def connection_lost(reason: Failure) -> None:
            if self._protocol is protocol:
                self._protocol = None
                if not self._stopped:
                    log.warn("redis {name}: connection lost ({reason}); reconnecting",
                             name=self.name, reason=reason.getErrorMessage())

        protocol.on_lost = connection_lost
        if self._was_connected:
            log.info("redis {name}: reconnected to {where}", name=self.name, where=self.address.describe())
        self._was_connected = True
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            w.callback(protocol)

    @property
    def connected(self) -> bool:
        return self._protocol is not None

    def execute(self, *args, timeout: float | None = None) -> defer.Deferred:
        """Send one command; fails with RedisUnavailable on timeout or ConnectionLost."""
        if self._stopped:
            return defer.fail(RedisUnavailable(f"redis {self.name} is closed"))
        if not self._started:
            self.start()
        timeout = self.command_timeout if timeout is None else timeout
        protocol = self._protocol
        if protocol is not None:
            try:
                sent = protocol.execute_command(*args)
            except ConnectionLost:
                sent = None
            if sent is not None:
                return self._bounded(sent, protocol, None, timeout, args[0])
        # not connected: wait for the connection, then send, all within the timeout
        box = [None]
        waiter: defer.Deferred[Any] = defer.Deferred()
        self._waiters.append(waiter)

        def send(protocol):
            box[0] = protocol
            return protocol.execute_command(*args)

        waiter.addCallback(send)
        return self._bounded(waiter, box, waiter, timeout, args[0])

    def _bounded(self, sent: defer.Deferred, protocol, waiter, timeout: float, command) -> defer.Deferred:
        result: defer.Deferred[Any] = defer.Deferred()

        def expire():
            if result.called:
                return
            result.errback(RedisUnavailable(f"redis {self.name}: no reply to {command} within {timeout:g}s"))
            p = protocol[0] if isinstance(protocol, list) else protocol
            if p is None:
                # still waiting for a connection: nothing was sent
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            elif p.transport is not None:
                # the reply of this command may still come: the stream is out of step
                p.transport.abortConnection()

        timer = self.reactor.callLater(timeout, expire)

        def done(outcome):
            if timer.active():
                timer.cancel()
            if isinstance(outcome, Failure) and outcome.check(ResponseError) and \
                    str(outcome.value).startswith("READONLY"):
                # the server became a replica (a Sentinel failover): connect afresh, which
                # asks Sentinel for the new master
                p = protocol[0] if isinstance(protocol, list) else protocol
                if p is not None and p.transport is not None:
                    p.transport.loseConnection()
            if result.called:
                return None
            if isinstance(outcome, Failure):
                result.errback(outcome)
            else:
                result.callback(outcome)
            return None

        sent.addBoth(done)
        return result

    def close(self) -> defer.Deferred:
        self._stopped = True
        if not self._started:
            return defer.succeed(None)
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            w.errback(RedisUnavailable(f"redis {self.name} is closed"))
        ds = [self._service.stopService()]
        if isinstance(self._endpoint, SentinelMasterEndpoint):
            ds.append(self._endpoint.close())
        return defer.gatherResults(ds, consumeErrors=True).addBoth(lambda _: None)


class RedisPool:
    """A few ordinary (non-blocking) connections used round robin; pipelining does the rest."""

    def __init__(self, reactor, address: RedisAddress, size: int = 1, name: str = "pool",
                 command_timeout: float = 5.0):
        self.reactor = reactor
        self.address = address
        self.command_timeout = command_timeout
        self._connections = [RedisConnection(reactor, address, f"{name}{i}", command_timeout)
                             for i in range(max(1, size))]
        self._next = 0

    def start(self) -> None:
        """Connect every connection now (otherwise each connects on its first command)."""
        for conn in self._connections:
            conn.start()

    def connection(self) -> "RedisConnection":
        """The next connection, round robin, preferring connected ones."""
        conns = self._connections
        self._next = (self._next + 1) % len(conns)
        conn = conns[self._next]
        if not conn.connected:
            for other in conns:
                if other.connected:
                    conn = other
                    break
        return conn

    def execute(self, *args, timeout: float | None = None) -> defer.Deferred:
        return self.connection().execute(*args, timeout=timeout)

    def run(self, script: "Script", keys, args, timeout: float | None = None) -> defer.Deferred:
        return script.run(self, keys, args, timeout)

    def close(self) -> defer.Deferred:
        return defer.gatherResults([c.close() for c in self._connections], consumeErrors=True)


class Script:
    """A Lua script run by EVALSHA, loaded again with EVAL after NOSCRIPT (e.g. a restart)."""

    def __init__(self, source: str):
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def run(self, conn, keys, args, timeout: float | None = None) -> defer.Deferred:
        d = conn.execute("EVALSHA", self.sha, len(keys), *keys, *args, timeout=timeout)

        def noscript(failure):
            failure.trap(ResponseError)
            if "NOSCRIPT" not in str(failure.value):
                return failure
            return conn.execute("EVAL", self.source, len(keys), *keys, *args, timeout=timeout)

        return d.addErrback(noscript)


class RedisTime:
    """Redis's own clock, estimated as ``clock.seconds() + offset``.

    Delayed jobs, retries and RPC deadlines are compared across hosts whose clocks may
    disagree; measuring them all against Redis's TIME keeps a skewed host from firing jobs
    early or expiring every call.  The offset is kept unless it moves by more than
    ``tolerance`` seconds, so a task.Clock in tests stays in charge of what is due.
    """

    def __init__(self, clock, tolerance: float = 0.5):
        self.clock = clock
        self.tolerance = tolerance
        self.offset = 0.0
        self.synced = False
        self.synced_at: float | None = None  # reactor seconds of the last sync

    def now(self) -> float:
        return self.clock.seconds() + self.offset

    def stale(self, reactor, every: float = 300.0) -> bool:
        return self.synced_at is None or reactor.seconds() - self.synced_at > every

    async def sync(self, conn) -> None:
        self.synced_at = conn.reactor.seconds()
        before = self.clock.seconds()
        seconds, micros = await conn.execute("TIME")
        local = (before + self.clock.seconds()) / 2
        offset = int(seconds) + int(micros) / 1e6 - local
        if not self.synced or abs(offset - self.offset) > self.tolerance:
            self.offset = offset
        self.synced = True


def is_transient(failure_or_error) -> bool:
    """Errors worth retrying: timeouts, lost connections, a Redis still loading its data."""
    e = failure_or_error.value if isinstance(failure_or_error, Failure) else failure_or_error
    if isinstance(e, (RedisUnavailable, ConnectionLost, defer.CancelledError)):
        return True
    if isinstance(e, ResponseError):
        text = str(e)
        return any(word in text for word in ("LOADING", "TRYAGAIN", "READONLY", "MASTERDOWN", "BUSY"))
    from twisted.internet.error import ConnectionLost as TCPConnectionLost, ConnectionDone
    return isinstance(e, (TCPConnectionLost, ConnectionDone))


def process_token() -> str:
    """Random, unique enough to name one process's reply list or consumer."""
    return os.urandom(6).hex()
