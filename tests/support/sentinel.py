"""A replicated Redis watched by Sentinel, on loopback, for failover tests.

:class:`SentinelGroup` starts, in one temp dir, a master, one replica (``--replicaof``) and
three sentinels (``redis-server --sentinel``, the same binary) that monitor the master as
``service`` with a quorum of 2.  Failure detection is quick (``down_after_ms`` 1000,
``failover_timeout_ms`` 3000) so a test sees a promotion within a few seconds.

``kill_master()`` SIGKILLs the current master (a crash: no shutdown save, no last
replication); ``wait_for_promotion(old)`` waits until the sentinels name another server and
that server answers ``ROLE`` as master.  ``url`` is the ``redis+sentinel://`` URL ymds uses;
``command()`` talks to whichever server is master now (for assertions).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time

from tests.support.processes import wait_for_state
from tests.support.redis_server import free_port
from tests.support.resp import command


def _binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: apt-get install redis-server")
    return binary


def _wait_ping(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if command(port, "PING") == "PONG":
                return
        except (OSError, RuntimeError):
            pass
        time.sleep(0.02)
    raise RuntimeError(f"redis on port {port} did not answer PING within {timeout}s")


class _Process:
    def __init__(self, name: str, port: int, argv: list[str]):
        self.name, self.port, self.argv = name, port, argv
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_ping(self.port)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None


class SentinelGroup:
    """``SentinelGroup().start()``; ``cleanup()`` kills everything and removes the dir."""

    def __init__(self, service: str = "ymds", down_after_ms: int = 1000, failover_timeout_ms: int = 3000,
                 appendonly: bool = True, sentinels: int = 3, replicas: int = 1):
        self.service = service
        self.sentinel_count = sentinels  # 0: just the master and its replica(s)
        self.replica_count = replicas
        self.dir = tempfile.mkdtemp(prefix="ymds-sentinel-")
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.appendonly = appendonly
        self.servers: list[_Process] = []  # [0] starts as master, the others as its replicas
        self.sentinels: list[_Process] = []

    # --- start / stop -------------------------------------------------------------------

    def _server_argv(self, name: str, port: int, replica_of: int | None) -> list[str]:
        data = os.path.join(self.dir, name)
        os.makedirs(data, exist_ok=True)
        argv = [_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", data, "--save", "",
                "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
                "--loglevel", "notice", "--logfile", os.path.join(data, "redis.log"),
                "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"]
        if replica_of is not None:
            argv += ["--replicaof", "127.0.0.1", str(replica_of)]
        return argv

    def _sentinel_argv(self, i: int, port: int, master_port: int) -> list[str]:
        path = os.path.join(self.dir, f"sentinel{i}.conf")
        with open(path, "w") as f:  # sentinel rewrites its config file: it must be writable
            f.write(f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                    f"logfile {os.path.join(self.dir, f'sentinel{i}.log')}\n"
                    f"sentinel monitor {self.service} 127.0.0.1 {master_port} 2\n"
                    f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}\n"
                    f"sentinel failover-timeout {self.service} {self.failover_timeout_ms}\n"
                    f"sentinel parallel-syncs {self.service} 1\n")
        return [_binary(), path, "--sentinel"]

    def start(self) -> "SentinelGroup":
        master_port = free_port()
        master = _Process("redis-a", master_port, self._server_argv("redis-a", master_port, None))
        master.start()
        self.servers = [master]
        for i in range(self.replica_count):
            name, port = f"redis-{'bcd'[i]}", free_port()
            replica = _Process(name, port, self._server_argv(name, port, master_port))
            replica.start()
            self.servers.append(replica)
        self.wait_replicated(master_port, self.replica_count)
        for i in range(self.sentinel_count):
            port = free_port()
            sentinel = _Process(f"sentinel{i}", port, self._sentinel_argv(i, port, master_port))
            sentinel.start()
            self.sentinels.append(sentinel)
        # every sentinel has found the replica and the other sentinels (through hello messages)
        others = str(self.sentinel_count - 1)
        wait_for_state(lambda: all(self._sentinel_view(s).get("num-slaves") == str(self.replica_count) and
                               self._sentinel_view(s).get("num-other-sentinels") == others
                               for s in self.sentinels), 30, "sentinels discovering each other and the replica")
        return self

    def cleanup(self) -> None:
        for p in self.sentinels + self.servers:
            p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- looking --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}/0"

    def _sentinel_view(self, sentinel: _Process) -> dict:
        try:
            flat = command(sentinel.port, "SENTINEL", "MASTER", self.service)
        except (OSError, RuntimeError):
            return {}
        return dict(zip(flat[::2], flat[1::2]))

    def master_port(self) -> int:
        """The master the sentinels agree on now (the majority answer)."""
        if not self.sentinels:
            return self.servers[0].port
        votes: dict[int, int] = {}
        for s in self.sentinels:
            if not s.alive():
                continue
            try:
                host, port = command(s.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
            except (OSError, RuntimeError, TypeError, ValueError):
                continue
            votes[int(port)] = votes.get(int(port), 0) + 1
        if not votes:
            raise RuntimeError("no sentinel answered")
        return max(votes, key=lambda p: votes[p])

    def server(self, port: int) -> _Process:
        return next(p for p in self.servers if p.port == port)

    def role(self, port: int) -> str | None:
        try:
            return command(port, "ROLE")[0]
        except (OSError, RuntimeError):
            return None

    def command(self, *args):
        """One command on the current master (for assertions)."""
        return command(self.master_port(), *args)

    def replicas_in_sync(self, port: int) -> int:
        """How many replicas the server on ``port`` has that are online."""
        info = command(port, "INFO", "replication")
        return sum(1 for line in info.splitlines() if line.startswith("slave") and "state=online" in line)

    def wait_replicated(self, master_port: int, n: int, timeout: float = 30) -> None:
        """The master counts ``n`` replicas online and each of them says its link is up."""
        def linked() -> bool:
            ports = [p.port for p in self.servers if p.port != master_port and p.alive()]
            up = 0
            for port in ports:
                try:
                    up += "master_link_status:up" in command(port, "INFO", "replication")
                except (OSError, RuntimeError):
                    pass
            return up >= n
        wait_for_state(lambda: self.role(master_port) == "master" and self.replicas_in_sync(master_port) >= n
                   and linked(), timeout, f"{n} replica(s) online at port {master_port}")

    # --- faults ---------------------------------------------------------------------------

    def kill_master(self) -> int:
        """SIGKILL the current master; returns its port."""
        port = self.master_port()
        self.server(port).kill()
        return port

    def wait_for_promotion(self, old_port: int, timeout: float = 30) -> int:
        """Wait until every live sentinel names a new master that says it is master; its port."""
        def promoted():
            try:
                port = self.master_port()
            except RuntimeError:
                return None
            if port == old_port or self.role(port) != "master":
                return None
            for s in self.sentinels:
                if s.alive():
                    host_port = command(s.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
                    if int(host_port[1]) != port:
                        return None
            return port
        return wait_for_state(promoted, timeout, f"a replica promoted after the master on {old_port} died")

    def stall_replicas(self) -> list["_Process"]:
        """Cut the master's links to its replicas and freeze them (SIGSTOP): the master goes
        on taking writes that no replica has, as in a network partition.  Writes a replica
        had received stay with it (its own buffers are read once it resumes)."""
        master = self.master_port()
        replicas = [p for p in self.servers if p.port != master and p.alive()]
        for replica in replicas:
            replica.process.send_signal(signal.SIGSTOP)
        command(master, "CLIENT", "KILL", "TYPE", "replica")
        return replicas

    @staticmethod
    def resume(process: "_Process") -> None:
        process.process.send_signal(signal.SIGCONT)

    def restart_as_replica(self, port: int, timeout: float = 60) -> None:
        """Start a killed server again; the sentinels turn it into a replica of the new master
        (they check a returning instance's role every few seconds: expect 10-20 s)."""
        old = self.server(port)
        old.start()
        wait_for_state(lambda: self.role(port) == "slave", timeout, f"the old master on {port} rejoining as a replica")

