"""End-to-end harness: real ``twistd ymds`` nodes and their real neighbours on loopback.

A :class:`Cluster` owns, for one test:

- a redis-server with appendonly on (tests.support.redis_server), killable and restartable;
- the ledger: a SQLite file, a fresh database on the shared PostgreSQL (``ledger="pg"``), or a
  PostgreSQL server of its own that may be stopped (``ledger="own-pg"``,
  tests.support.pg_instance) — the shared server on 5432 is never stopped;
- the fake Telegram Bot API as a separate process (tests.support.fake_telegram_process);
- any number of :class:`Node` s: ``twistd -n ymds --config <generated toml> --roles ...``, each
  killable with SIGKILL, stoppable with SIGTERM and restartable on the same port;
- YooMoney: the sandbox mounted in web nodes (its notifier posts to the node), and
  :class:`tests.support.notify_sender.NotificationSender` for bursts.

Assertions read the ledger directly (sqlite3 / psycopg), Redis (XLEN, XPENDING, SCAN) and
the fake Bot API's record of what was sent.

Long versions of the slow scenarios run with ``YMDS_LONG=1`` (see docs/RELIABILITY.md).
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
import urllib.request
from collections import Counter

from twisted.internet import defer, reactor, task

from tests.fakes.fake_telegram import DEFAULT_TOKEN
from tests.support.processes import TWISTD, Child, test_env
from tests.support.redis_server import RedisServer, free_port

LONG = os.environ.get("YMDS_LONG", "") not in ("", "0")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NOTIFICATION_SECRET = "e2e-notification-secret-0123456789"
LINK_SECRET = "e2e-link-secret-0123456789abcdef"
WALLET = "4100117000000001"
CHANNEL = -1001234567890
OWNER = 9001
PLANS = [{"id": "month", "title": "1 month", "price": "199.00", "days": 30},
         {"id": "year", "title": "1 year", "price": "1990.00", "days": 365}]
# Retries fast enough for a test, and enough of them to outlast every outage we cause.
QUEUE = {"visibility_timeout": 5, "retry_base": 0.2, "retry_max": 2, "max_attempts": 200,
         "max_deliveries": 50, "stop_timeout": 5}


# --- small helpers ---------------------------------------------------------------------------

def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def toml_dumps(doc: dict) -> str:
    lines = []
    for section, values in doc.items():
        if section == "plans":
            continue
        lines.append(f"[{section}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
        lines.append("")
    for plan in doc.get("plans", []):
        lines.append("[[plans]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in plan.items()]
        lines.append("")
    return "\n".join(lines)


async def wait_until(predicate, timeout: float = 60.0, what: str = "condition", step: float = 0.05):
    """Poll ``predicate`` while the reactor runs (other work in this process goes on)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await task.deferLater(reactor, step)


def as_deferred(test):
    def run(self):
        return defer.Deferred.fromCoroutine(test(self))
    run.__name__ = test.__name__
    run.__doc__ = test.__doc__
    return run


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# --- the fake Bot API process -----------------------------------------------------------------

class FakeTelegram:
    def __init__(self, workdir: str, channel: int = CHANNEL, limits: bool = True):
        self.port = 0  # the fake picks a free port and prints it
        argv = [sys.executable, "-m", "tests.support.fake_telegram_process", "--port", "0",
                "--channel", str(channel)]
        if not limits:
            argv.append("--no-limits")
        self.child = Child(argv, cwd=REPO, name="fake-telegram")
        self.token = DEFAULT_TOKEN

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeTelegram":
        self.child.start()
        out = self.child.wait_for('"port"', timeout=30)
        line = next(line for line in out.splitlines() if line.startswith('{"port"'))
        self.port = json.loads(line)["port"]
        return self

    def control(self, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.api_url}/_control/{path}", data=data,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def user_sends(self, chat_id: int, text: str, language_code: str = "en") -> dict:
        return self.control("user_sends", {"chat_id": chat_id, "text": text, "language_code": language_code})

    def sent(self, chat_id: int | None = None) -> list[dict]:
        return self.control("sent" + (f"?chat_id={chat_id}" if chat_id is not None else ""))["sent"]

    def stats(self) -> dict:
        return self.control("stats")

    def fault_window(self, seconds: float, codes=(429, 500), method: str = "*", retry_after: int = 1) -> None:
        self.control("fault_window", {"seconds": seconds, "codes": list(codes), "method": method,
                                      "retry_after": retry_after})

    def window(self) -> dict:
        return self.control("window")

    def close(self) -> None:
        self.child.close()


# --- one ymds node -------------------------------------------------------------------------

READY = {"web": "web role listening on", "billing": "worker billing started", "bot": "worker bot started"}


class Node:
    def __init__(self, cluster: "Cluster", name: str, roles: str, port: int | None = None, **sections):
        self.cluster = cluster
        self.name = name
        self.roles = roles
        if port is None and "web" in roles.split(",") and not cluster.public_port_taken:
            port, cluster.public_port_taken = cluster.public_port, True
        self.port = port or free_port()
        self.sections = sections
        self.config_path = os.path.join(cluster.dir, f"{name}.toml")
        self.child: Child | None = None
        self.starts = 0

    @property
    def base(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def pid(self) -> int:
        return self.child.process.pid

    def write_config(self) -> None:
        doc = self.cluster.config_document(self)
        with open(self.config_path, "w") as f:
            f.write(toml_dumps(doc))

    def start(self, wait: bool = True) -> "Node":
        self.write_config()
        if self.child is None:
            self.child = Child(TWISTD + ["-n", "ymds", "--config", self.config_path, "--roles", self.roles],
                               env=test_env(), cwd=self.cluster.dir, name=self.name)
        self._log_offset = len(self.child.output())
        self.child.start()
        self.starts += 1
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        for role in self.roles.split(","):
            self.wait_for(READY[role], timeout=timeout)

    def new_output(self) -> str:
        return self.child.output()[self._log_offset:]

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            out = self.new_output()
            if text in out:
                return out
            if self.child.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.child.process.returncode}) before {text!r}:\n"
                                   f"{out[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no {text!r} within {timeout}s:\n{out[-3000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, like a crash or the OOM killer."""
        self.child.kill()

    def terminate(self) -> int:
        return self.child.terminate()

    def restart(self) -> "Node":
        self.kill()
        return self.start()

    def alive(self) -> bool:
        return self.child is not None and self.child.process is not None and self.child.process.poll() is None

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def count(self, text: str) -> int:
        return self.child.output().count(text)

    def close(self) -> None:
        if self.child is not None:
            self.child.close()


# --- the ledger, read directly ---------------------------------------------------------------

class LedgerReader:
    def __init__(self, url: str):
        self.url = url

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self.url.startswith("sqlite:///"):
            conn = sqlite3.connect(self.url[len("sqlite:///"):], timeout=30)
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as e:
                if "no such table" in str(e):
                    return []
                raise
            finally:
                conn.close()
        import psycopg
        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                return conn.execute(sql.replace("?", "%s"), params).fetchall()
        except psycopg.errors.UndefinedTable:
            return []

    def scalar(self, sql: str, params: tuple = ()):
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def payments(self) -> int:
        return self.scalar("SELECT count(*) FROM payments") or 0

    def payment_rows(self) -> list[tuple]:
        return self.query("SELECT operation_id, label, status, source, chat_id, notified FROM payments ORDER BY seq")

    def invoice_statuses(self) -> dict[str, int]:
        return dict(self.query("SELECT status, count(*) FROM invoices GROUP BY status"))

    def quarantined(self) -> list[tuple]:
        return self.query("SELECT reason, body, count FROM quarantine ORDER BY id")

    def events(self, kind: str | None = None) -> int:
        if kind is None:
            return self.scalar("SELECT count(*) FROM events") or 0
        return self.scalar("SELECT count(*) FROM events WHERE kind = ?", (kind,)) or 0


# --- the whole thing -------------------------------------------------------------------------

class Cluster:
    """``Cluster(testcase, ledger="sqlite"|"pg"|"own-pg", telegram=True)``; cleaned up by the test."""

    def __init__(self, testcase, ledger: str = "sqlite", telegram: bool = True, prefix: str = "ymds",
                 telegram_limits: bool = True):
        self.dir = tempfile.mkdtemp(prefix="ymds-e2e-")
        testcase.addCleanup(shutil.rmtree, self.dir, True)
        self.prefix = prefix
        from ymds.demo import ensure_certificate
        self.cert_dir = os.path.join(self.dir, "certs")
        os.makedirs(self.cert_dir)
        ensure_certificate(self.cert_dir)
        self.redis = RedisServer(appendonly=True).start()
        testcase.addCleanup(self.redis.cleanup)
        self.pg = None
        self.ledger_kind = ledger
        if ledger == "sqlite":
            self.ledger_url = "sqlite:///" + os.path.join(self.dir, "ledger.sqlite3")
        elif ledger == "pg":
            from tests.support.postgres import create_database, drop_database
            self.ledger_url = create_database()
            testcase.addCleanup(drop_database, self.ledger_url)
        elif ledger == "own-pg":
            from tests.support.pg_instance import PostgresInstance
            self.pg = PostgresInstance().start()
            testcase.addCleanup(self.pg.cleanup)
            self.ledger_url = self.pg.url
        else:
            raise ValueError(ledger)
        self.ledger = LedgerReader(self.ledger_url)
        self.telegram = None
        if telegram:
            self.telegram = FakeTelegram(self.dir, limits=telegram_limits).start()
            testcase.addCleanup(self.telegram.close)
        self.nodes: dict[str, Node] = {}
        # Every node puts the same public URL in links: that of the first web node.
        self.public_port = free_port()
        self.public_port_taken = False
        self._testcase = testcase
        self._queue = None
        self.redis_url_override: str | None = None

    # -- nodes --

    def config_document(self, node: Node) -> dict:
        doc = {
            "server": {"endpoint": f"tls:{self.cert_dir}:port={node.port}:interface=127.0.0.1",
                       "public_url": f"https://localhost:{self.public_port}", "max_body": 65536},
            "yoomoney": {"wallet": WALLET, "notification_secret": NOTIFICATION_SECRET, "sandbox": True,
                         "signature": "auto"},
            "links": {"secret": LINK_SECRET, "ttl": "3d"},
            "redis": {"url": node.sections.get("redis_url") or self.redis.url, "prefix": self.prefix},
            "queue": dict(QUEUE),
            "ledger": {"url": self.ledger_url},
            "telegram": {"language": "en", "admins": [OWNER], "channel_id": CHANNEL},
            "plans": PLANS,
            "donations": {"enabled": True, "min": "10.00", "max": "100000.00"},
        }
        if self.telegram is not None:
            doc["telegram"].update({"token": self.telegram.token, "api_url": self.telegram.api_url,
                                    "poll_timeout": 2})
        for section, values in node.sections.items():
            if isinstance(values, dict):
                doc.setdefault(section, {}).update(values)
        return doc

    def node(self, name: str, roles: str, start: bool = True, **sections) -> Node:
        node = Node(self, name, roles, **sections)
        self.nodes[name] = node
        self._testcase.addCleanup(node.close)
        if start:
            node.start()
        return node

    # -- Redis, read directly --

    def r(self, *args):
        return self.redis.command(*args)

    def queue_state(self, queue: str) -> dict:
        stream = f"{self.prefix}:q:{queue}"
        pending = 0
        try:
            summary = self.r("XPENDING", stream, "workers")
            pending = int(summary[0]) if summary else 0
        except RuntimeError:  # no group yet
            pending = 0
        return {"length": int(self.r("XLEN", stream)), "pending": pending,
                "delayed": int(self.r("ZCARD", stream + ":delayed")),
                "dead": int(self.r("XLEN", stream + ":dead"))}

    def drained(self, queue: str) -> bool:
        return self.queue_state(queue) == {"length": 0, "pending": 0, "delayed": 0, "dead": 0}

    def stream_jobs(self, queue: str) -> list[dict]:
        """The jobs waiting in a queue's stream (task and args), for queues nobody consumes."""
        entries = self.r("XRANGE", f"{self.prefix}:q:{queue}", "-", "+") or []
        jobs = []
        for _, fields in entries:
            values = dict(zip(fields[::2], fields[1::2]))
            job = json.loads(values["j"])
            jobs.append({"task": job.get("t"), "args": job.get("a")})
        return jobs

    def keys(self) -> list[str]:
        out, cursor = [], "0"
        while True:
            cursor, batch = self.r("SCAN", cursor, "MATCH", f"{self.prefix}:*", "COUNT", "1000")
            out += batch
            if cursor == "0":
                return out

    def stray_keys(self, sample_per_family: int = 500) -> list[str]:
        """Keys that should not be there once the work is done.

        Allowed: the queue streams (holding their consumer group), the bot's offset, its
        username (for the web role) and language choices, and keys that expire: idempotency keys, RPC reply lists, the ledger
        heartbeat, the bot's dedup/invite/lease/pace/flood records.  Delayed sets and
        dead-letter streams must be gone.  The expiry is checked on up to
        ``sample_per_family`` keys of each family (a soak leaves hundreds of thousands).
        """
        p = self.prefix
        ttl_families = ("q:billing:key:", "q:bot:key:", "reply:", "health:", "bot:sent:", "bot:invite:",
                        "bot:lease", "bot:in:", "bot:pace", "overlay:once:")
        checked: Counter = Counter()
        stray = []
        for key in self.keys():
            rest = key[len(p) + 1:]
            if rest in ("q:billing", "q:bot"):
                if self.r("TYPE", key) == "stream":
                    continue
            elif rest in ("bot:offset", "bot:username") or rest.startswith("bot:lang:"):
                continue
            elif rest == "overlay:events" and self.r("TYPE", key) == "stream":
                continue  # the overlay's event stream: capped (XADD MAXLEN ~), kept by design
            else:
                family = next((f for f in ttl_families if rest.startswith(f)), None)
                if family is not None:
                    if checked[family] >= sample_per_family:
                        continue
                    checked[family] += 1
                    if int(self.r("PTTL", key)) > 0:
                        continue
            stray.append(f"{key} ({self.r('TYPE', key)}, ttl {self.r('PTTL', key)})")
        return stray

    # -- RPC into billing, as the bot would --

    async def queue(self):
        if self._queue is None:
            from ymds.config import RedisConfig
            from ymds.queue.client import RedisJobQueue
            self._queue = RedisJobQueue(reactor, RedisConfig(url=self.redis.url, prefix=self.prefix))
            self._queue.startService()
            self._testcase.addCleanup(self._queue.stopService)
        return self._queue

    async def create_invoices(self, chat_ids, plan: str = "month", parallel: int = 50) -> dict[int, dict]:
        """chat id -> the ``plan`` invoice billing made for it (billing.create_invoices)."""
        queue = await self.queue()
        out: dict[int, dict] = {}
        chat_ids = list(chat_ids)
        for i in range(0, len(chat_ids), parallel):
            batch = chat_ids[i:i + parallel]
            results = await defer.gatherResults([
                queue.call("billing", "create_invoices", {"chat_id": c, "user_id": c}, timeout=30) for c in batch])
            for chat, result in zip(batch, results):
                out[chat] = next(inv for inv in result["invoices"] if inv["plan"] == plan)
        return out

    def sender(self, node: Node, **kw):
        from tests.support.notify_sender import NotificationSender
        sender = NotificationSender("127.0.0.1", node.port, **kw)
        self._testcase.addCleanup(sender.close)
        return sender


def record(scenario: str, **counts) -> None:
    """Append the counts a scenario showed to $YMDS_E2E_REPORT (JSON lines), for RELIABILITY.md."""
    path = os.environ.get("YMDS_E2E_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"scenario": scenario, "long": LONG, **counts}, default=str) + "\n")
