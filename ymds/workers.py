"""``[server] workers = N``: N web processes on one host sharing one listening socket.

The parent (``twistd ymds`` itself) binds ``server.endpoint`` once (or takes the socket
systemd passed it) and starts N children, each ``twistd -n ymds --roles web`` with the
socket as file descriptor 3 (``YMDS_WORKER_FD``).  A child serves exactly as a single
process would — same site, same TLS policy and certificate reloading — but adopts the
socket instead of binding (:class:`InheritedWebListener`); the kernel hands each new
connection to one of the children.  The parent accepts nothing itself and keeps any other
role it was given (billing, bot) in-process.

- A child that exits while the parent runs is started again (after 1 s, doubling up to
  30 s while it keeps dying within 10 s of its start).
- SIGTERM to the parent: every child gets SIGTERM and drains as a single process does
  (stop accepting, finish requests in flight); a child still there after ``stop_timeout``
  seconds is killed; then the socket is closed.
- Billing workers are several processes already: run more ``--roles billing`` processes on
  any host (docs/SCALING.md).
"""
from __future__ import annotations

import os
import socket
import sys
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, error
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from ymds.util.endpoints import parse_endpoint_description
from ymds.web.listener import WebListener

log = Logger()

WORKER_FD_ENV = "YMDS_WORKER_FD"
WORKER_INDEX_ENV = "YMDS_WORKER_INDEX"
CHILD_FD = 3


class WorkersError(ValueError):
    """server.endpoint cannot be shared by worker processes; the text says what to use."""


# --- the parent's socket -------------------------------------------------------------------

def _port_and_interface(description: str) -> tuple[int, str, int]:
    """(port, interface, backlog) of a tls:/ssl:/tcp:/tcp6: description."""
    args, kwargs = parse_endpoint_description(description)
    kind = args[0].lower()
    if kind == "tls":
        port = kwargs.get("port", "443")
    elif kind in ("ssl", "tcp", "tcp6"):
        port = args[1] if len(args) > 1 else kwargs.get("port", "")
    else:
        raise WorkersError(f"server.workers > 1 cannot share a {kind}: endpoint; use tls:, ssl:, tcp: or "
                           "systemd: (socket activation), or set server.workers = 1")
    if not str(port).isdigit():
        raise WorkersError(f"server.endpoint {description!r} has no port number; write e.g. tcp:8080")
    default_interface = "::" if kind == "tcp6" else ""
    return int(port), kwargs.get("interface", default_interface), int(kwargs.get("backlog", "50"))


def listen_socket(description: str) -> socket.socket:
    """Bind and listen on ``description``'s address (systemd: the socket systemd passed)."""
    args, kwargs = parse_endpoint_description(description)
    if args[0].lower() == "systemd":
        from twisted.python.systemd import ListenFDs
        fds = ListenFDs.fromEnvironment().inheritedDescriptors()
        index = int(kwargs.get("index", "0"))
        if index >= len(fds):
            raise WorkersError(f"systemd passed {len(fds)} socket(s), no index {index}; check the .socket unit")
        return socket.socket(fileno=fds[index])
    port, interface, backlog = _port_and_interface(description)
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((interface, port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


# --- the children's listener -----------------------------------------------------------------

def _tls_context_factory(description: str) -> Any:
    """The TLS context factory ``server.endpoint`` uses (None for plain TCP)."""
    from ymds import tlsendpoint
    args, kwargs = parse_endpoint_description(description)
    kind = args[0].lower()
    if kind == "tls":
        return tlsendpoint.DirectoryContextFactory(args[1], float(kwargs.get("reload", "60")))
    if kind == "ssl":
        tlsendpoint.ssl_file_endpoint(None, *args[1:], **kwargs)  # the same option checks
        private_key = kwargs["privateKey"]
        context = tlsendpoint._load_context(kwargs.get("certKey") or private_key, private_key,
                                            kwargs.get("extraCertChain"))
        return tlsendpoint.FixedContextFactory(context)
    return None


@implementer(IStreamServerEndpoint)
class InheritedEndpoint:
    """Listens on an already-listening socket (file descriptor ``fd``), TLS or not."""

    def __init__(self, reactor: Any, fd: int, tls_context_factory: Any = None):
        self._reactor = reactor
        self._fd = fd
        self._tls = tls_context_factory

    def listen(self, factory: Any) -> defer.Deferred:
        probe = socket.socket(fileno=os.dup(self._fd))
        family = probe.family
        probe.close()
        # adoptStreamPort needs a non-blocking socket: a blocking accept() would hang the
        # reactor once the queue is empty (the flag is shared with the parent's socket)
        os.set_blocking(self._fd, False)
        wrapped = factory if self._tls is None else TLSMemoryBIOFactory(self._tls, False, factory)
        try:
            port = self._reactor.adoptStreamPort(self._fd, family, wrapped)
        except Exception:
            return defer.fail()
        return defer.succeed(port)


class InheritedWebListener(WebListener):
    """The web listener of a worker child: same site and draining, the parent's socket."""

    def __init__(self, reactor: Any, original: WebListener, endpoint: IStreamServerEndpoint):
        super().__init__(reactor, "", original.site, drain_timeout=original.drain_timeout)
        self.listening = original.listening  # whoever waits for the original (sd_notify) is told
        self._inherited = endpoint

    def endpoint(self) -> IStreamServerEndpoint:
        return self._inherited


def adopt_in_child(reactor: Any, top: Any, description: str, fd: int) -> None:
    """In a worker child: make ``top``'s web listener use the inherited socket ``fd``."""
    original = top.web_listener
    parent = original.parent
    endpoint = InheritedEndpoint(reactor, fd, _tls_context_factory(description))
    replacement = InheritedWebListener(reactor, original, endpoint)
    original.disownServiceParent()
    replacement.setServiceParent(parent)
    top.web_listener = replacement


# --- the parent's supervisor -----------------------------------------------------------------

class _Child(ProcessProtocol):
    def __init__(self, supervisor: "WebWorkers", index: int):
        self.supervisor = supervisor
        self.index = index
        self.ended: defer.Deferred = defer.Deferred()
        self.started_at = supervisor.reactor.seconds()

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)
        self.supervisor.child_ended(self, reason)


class WebWorkers(Service):
    """Starts ``count`` web children on one shared socket and keeps them running."""

    name = "web-workers"

    def __init__(self, reactor: Any, count: int, argv: list[str], sock: socket.socket,
                 env: dict[str, str] | None = None, stop_timeout: float = 30.0):
        self.reactor = reactor
        self.count = count
        self.argv = argv
        self.sock = sock
        self.env = dict(os.environ if env is None else env)
        self.env.pop("NOTIFY_SOCKET", None)  # the parent alone talks to systemd
        self.env.pop("LISTEN_FDS", None)
        self.env.pop("LISTEN_PID", None)
        self.stop_timeout = stop_timeout
        self.children: dict[int, tuple[Any, _Child]] = {}  # index -> (process transport, protocol)
        self.restarts = 0
        self._delays: dict[int, float] = {}

    def startService(self) -> None:
        super().startService()
        host = self.sock.getsockname()
        log.info("web workers: {count} processes sharing {host}:{port}", count=self.count, host=host[0], port=host[1])
        for i in range(self.count):
            self._spawn(i)

    def _spawn(self, index: int) -> None:
        if not self.running:
            return
        protocol = _Child(self, index)
        env = {**self.env, WORKER_FD_ENV: str(CHILD_FD), WORKER_INDEX_ENV: str(index)}
        process = self.reactor.spawnProcess(protocol, self.argv[0], self.argv, env=env, path=os.getcwd(),
                                            childFDs={0: 0, 1: 1, 2: 2, CHILD_FD: self.sock.fileno()})
        self.children[index] = (process, protocol)
        log.info("web worker {index} started (pid {pid})", index=index, pid=process.pid)

    def child_ended(self, child: _Child, reason: Failure) -> None:
        current = self.children.get(child.index)
        if current is not None and current[1] is child:
            del self.children[child.index]
        if not self.running:
            return
        status = getattr(reason.value, "exitCode", None)
        signal_number = getattr(reason.value, "signal", None)
        quick = self.reactor.seconds() - child.started_at < 10
        delay = min(30.0, self._delays.get(child.index, 0.5) * 2) if quick else 1.0
        self._delays[child.index] = delay
        self.restarts += 1
        log.warn("web worker {index} exited (status {status}, signal {signal}); starting it again in {delay:g}s",
                 index=child.index, status=status, signal=signal_number, delay=delay)
        self.reactor.callLater(delay, self._spawn, child.index)

    def pids(self) -> list[int]:
        return [process.pid for process, _ in self.children.values() if process.pid is not None]

    async def _stop(self) -> None:
        children = list(self.children.values())
        for process, _ in children:
            try:
                process.signalProcess("TERM")
            except error.ProcessExitedAlready:
                pass
        ended = defer.DeferredList([protocol.ended for _, protocol in children], consumeErrors=True)
        timer = self.reactor.callLater(self.stop_timeout, self._kill_left, children)
        await ended
        if timer.active():
            timer.cancel()
        self.sock.close()
        log.info("web workers: all stopped")

    @staticmethod
    def _kill_left(children: list) -> None:
        for process, protocol in children:
            if not protocol.ended.called:
                log.warn("web worker {index} did not stop in time; killing it", index=protocol.index)
                try:
                    process.signalProcess("KILL")
                except error.ProcessExitedAlready:
                    pass

    def stopService(self) -> defer.Deferred:
        super().stopService()
        return defer.Deferred.fromCoroutine(self._stop())


def child_argv(options: Any) -> list[str]:
    """``twistd -n ymds --roles web`` with this process's --config, --set and --log-format."""
    twistd = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
    argv = [sys.executable, "-c", twistd, "--nodaemon", "--pidfile=", "ymds", "--roles", "web"]
    if options["config"]:
        argv += ["--config", os.path.abspath(options["config"])]
    for key, value in options["set"].items():
        argv += ["--set", f"{key}={value}"]
    # one metrics listener per host port: the children have none (docs/SCALING.md)
    argv += ["--set", "server.metrics_endpoint=", "--log-format", options["log-format"]]
    return argv



def build_parent(reactor: Any, config: Any, roles: set[str], options: Any, build_service: Any,
                 **build_kw: Any) -> Any:
    """The parent's service: the socket, the supervisor, and the roles other than web."""
    from twisted.application.service import MultiService

    from ymds import sdnotify
    try:
        sock = listen_socket(config.server.endpoint)
    except OSError as e:
        raise WorkersError(f"cannot listen on server.endpoint {config.server.endpoint!r}: {e.strerror or e}; "
                           "free the port or choose another") from None
    others = roles - {"web"}
    if others:
        top = build_service(reactor, config, others, **build_kw)
    else:
        top = MultiService()
        reactor.callWhenRunning(sdnotify.ready)
    top.web_workers = WebWorkers(reactor, config.server.workers, child_argv(options), sock)
    top.web_workers.setServiceParent(top)
    return top
