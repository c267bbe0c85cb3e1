"""A private PostgreSQL server for fault tests: initdb + pg_ctl on a free port in a temp dir.

The shared server on 5432 is used by other tests and must never be stopped; fault tests
that stop the database start one of these instead.  Trust authentication on 127.0.0.1
only; the unix socket lives in the instance's own directory.  As root, the server runs as
the ``postgres`` user (initdb refuses to run as root).
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

from tests.support.redis_server import free_port


def _bindir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: "
                           "apt-get install postgresql")
    return os.path.dirname(found[-1])


class PostgresInstance:
    """``start()``, ``stop()`` (clean), ``crash()`` (immediate), ``url`` of database ``ymds``."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.bindir = _bindir()
        self.dir = tempfile.mkdtemp(prefix="ymds-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "server.log")
        self._user = None
        if os.geteuid() == 0:
            self._user = pwd.getpwnam("postgres")
            os.chown(self.dir, self._user.pw_uid, self._user.pw_gid)
        os.chmod(self.dir, 0o755)
        self._initialised = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/ymds"

    def _run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        argv = list(args)
        if self._user is not None:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=self.dir)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n"
                               f"{self.server_log()[-2000:]}")
        return result

    def server_log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def start(self) -> "PostgresInstance":
        if not self._initialised:
            self._run(os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", "postgres", "--auth=trust",
                      "--no-sync", "-E", "UTF8", "--locale=C")
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.dir} "
                   f"-c max_connections=60 -c shared_buffers=32MB -c fsync=on")
        self._run(os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", self.log_path, "-o", options,
                  "-w", "-t", "60", "start")
        self._wait_accepting()
        if not self._initialised:
            self.sql("CREATE DATABASE ymds", database="postgres")
            self._initialised = True
        return self

    def _wait_accepting(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self._run(os.path.join(self.bindir, "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port),
                               check=False)
            if result.returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL on {self.port} did not accept connections:\n{self.server_log()[-2000:]}")

    def stop(self, mode: str = "fast") -> None:
        """fast: disconnect clients and shut down cleanly; immediate: like a crash."""
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._run(os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", mode, "-w", "-t", "60", "stop",
                      check=False)

    def crash(self) -> None:
        self.stop("immediate")

    def reachable(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def sql(self, statement: str, database: str = "ymds") -> list[tuple]:
        import psycopg
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/{database}", autocommit=True,
                             connect_timeout=5) as conn:
            cur = conn.execute(statement)
            return cur.fetchall() if cur.description else []

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
