"""Start ``twistd ymds`` and helper programs as real child processes for tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

# No pid file: tests run several twistd processes at once from the same directory.
TWISTD = [sys.executable, "-c", "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()",
          "--pidfile", ""]


def test_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YMDS_")}
    env.update(extra)
    return env


def run_twistd(args: list[str], env: dict | None = None, cwd: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(TWISTD + args, env=env or test_env(), cwd=cwd or tempfile.gettempdir(),
                          capture_output=True, text=True, timeout=timeout)


class Child:
    """A long-running child with its output captured to a file we can poll."""

    def __init__(self, argv: list[str], env: dict | None = None, cwd: str | None = None, name: str = "child"):
        self.argv = argv
        self.env = env or test_env()
        self.cwd = cwd or tempfile.gettempdir()
        fd, self.log_path = tempfile.mkstemp(prefix=f"ymds-{name}-", suffix=".log")
        os.close(fd)
        self.process: subprocess.Popen | None = None

    def start(self) -> "Child":
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def output(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.output()
            if text in out:
                return out
            if self.process.poll() is not None:
                raise RuntimeError(f"process exited ({self.process.returncode}) before printing {text!r}:\n{out[-3000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"no {text!r} within {timeout}s:\n{self.output()[-3000:]}")

    def terminate(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()

    def close(self) -> None:
        self.kill()
        if getattr(self, "_log", None):
            self._log.close()


def wait_for_state(predicate, timeout: float, what: str):
    """Poll ``predicate`` (a check of another process or server, which runs by itself) until it
    returns something true; that value is returned.  Blocking: only for code that is not inside
    the reactor (process and server harnesses)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)


def descendants(pid: int) -> list[int]:
    """Child pids of ``pid`` (recursively), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def write_config(directory: str, redis_url: str, server: str = "") -> str:
    """A minimal ymds.toml for a web/billing process in ``directory`` (SQLite ledger beside it).

    ``server`` holds extra ``[server]`` lines, e.g. ``endpoint = "tcp:8080"``.
    """
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "ymds.toml")
    with open(path, "w") as f:
        f.write(f'[server]\npublic_url = "https://pay.example.org"\n{server}\n'
                f'[yoomoney]\nwallet = "4100123456789012"\nnotification_secret = "x"\n'
                f'[links]\nsecret = "0123456789abcdef0123"\n[redis]\nurl = "{redis_url}"\n'
                f'[ledger]\nurl = "sqlite:///ledger.sqlite3"\n')
    return path


def start_demo(test, *extra: str, name: str = "demo") -> tuple[Child, str, str]:
    """A ``twistd -n ymds --demo`` child for ``test`` with a Redis of its own.

    Returns (child, base https URL, redis URL); everything is cleaned up with the test.
    """
    import shutil

    from tests.support.redis_server import RedisServer, free_port
    redis = RedisServer(appendonly=False).start()
    test.addCleanup(redis.cleanup)
    data_dir = tempfile.mkdtemp(prefix="ymds-demo-")  # short path: unix socket names are limited
    test.addCleanup(shutil.rmtree, data_dir, True)
    port = free_port()
    child = Child(TWISTD + ["-n", "ymds", "--demo", "--data-dir", data_dir, "--port", str(port), *extra],
                  env=test_env(YMDS_REDIS_URL=redis.url), name=name)
    test.addCleanup(child.close)
    child.start()
    return child, f"https://localhost:{port}", redis.url
