"""Test harness for the bot role: a private redis-server, the fake Bot API on loopback,
the real job queue, and (when asked) the real billing role on a SQLite ledger."""

from __future__ import annotations

import atexit
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile

import treq
from twisted.internet import defer, reactor, task

from tests.fakes.fake_telegram import DEFAULT_TOKEN, FakeBotAPI, make_site
from tests.support.redis_server import RedisServer
from ymds.config import load_config
from ymds.queue.redis import RedisPool, parse_redis_url

_server: RedisServer | None = None
_prefixes = itertools.count(1)

CHANNEL = -1001234567890
ADMIN = 9001
LINK_SECRET = "bot-tests-link-secret-0123456789"


def shared_redis() -> RedisServer:
    """One redis-server per test process; each test uses its own key prefix."""
    global _server
    if _server is None:
        _server = RedisServer().start()
        atexit.register(_server.cleanup)
    return _server


def new_prefix() -> str:
    return f"bt{os.getpid()}x{next(_prefixes)}"


async def wait_until(predicate, timeout: float = 20.0, step: float = 0.01, what: str = "condition") -> None:
    """Wait for real IO (HTTP on loopback, Redis) until ``predicate()`` holds."""
    waited = 0.0
    while not predicate():
        if waited > timeout:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await task.deferLater(reactor, step)
        waited += step


async def pause(seconds: float) -> None:
    """Let real IO happen for a while (only where the assertion is that nothing happens)."""
    await task.deferLater(reactor, seconds)


def as_deferred(test):
    def run(self):
        return defer.Deferred.fromCoroutine(test(self))
    run.__name__ = test.__name__
    run.__doc__ = test.__doc__
    return run


def start_fake_process(testcase, module: str, *arguments: str) -> str:
    """``python -m <module> --port 0 <arguments>`` (a fake Bot API program) as a child process,
    stopped when ``testcase`` ends; returns its base URL."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    process = subprocess.Popen([sys.executable, "-m", module, "--port", "0", *arguments], cwd=root,
                               stdout=subprocess.PIPE, text=True)

    def stop():
        process.send_signal(signal.SIGTERM)
        process.wait(10)
        process.stdout.close()
    testcase.addCleanup(stop)
    return f"http://127.0.0.1:{json.loads(process.stdout.readline())['port']}"


async def fake_control(base: str, path: str, body=None) -> tuple[int, object]:
    """(HTTP status, JSON answer) of the fake's control API at ``base``: GET, or POST ``body``."""
    if body is None:
        response = await treq.get(f"{base}/_control/{path}", persistent=False)
    else:
        response = await treq.post(f"{base}/_control/{path}", json=body, persistent=False)
    return response.code, json.loads(await response.content())


def start_fake(testcase, **kw) -> tuple[FakeBotAPI, str]:
    """The fake Bot API on a loopback port, real clock; returns (fake, api_url)."""
    kw.setdefault("channels", [CHANNEL])
    fake = FakeBotAPI(reactor, **kw)
    port = reactor.listenTCP(0, make_site(fake), interface="127.0.0.1")
    testcase.addCleanup(port.stopListening)
    testcase.addCleanup(fake.close)
    return fake, f"http://127.0.0.1:{port.getHost().port}"


def start_world(testcase, **fake_options) -> None:
    """What a bot test runs against, set on ``testcase``: ``redis_server`` (shared), a fresh
    ``prefix``, the fake Bot API (``fake`` at ``url``, made with ``fake_options``) and
    ``redis``, a pool on that server closed when the test ends."""
    testcase.redis_server = shared_redis()
    testcase.prefix = new_prefix()
    testcase.fake, testcase.url = start_fake(testcase, **fake_options)
    testcase.redis = RedisPool(reactor, parse_redis_url(testcase.redis_server.url), name="test:")
    testcase.addCleanup(testcase.redis.close)


def make_config(api_url: str, redis_url: str, prefix: str, channel: int = CHANNEL, language: str = "en",
                poll_timeout: int = 2, **extra):
    raw = {
        "server": {"public_url": "https://pay.example.org"},
        "links": {"secret": LINK_SECRET, "ttl": "3d"},
        "yoomoney": {"wallet": "4100111122223333", "notification_secret": "s3cret"},
        "redis": {"url": redis_url, "prefix": prefix},
        "queue": {"retry_base": 0.05, "retry_max": 0.2, "visibility_timeout": 5},
        "telegram": {"token": DEFAULT_TOKEN, "api_url": api_url, "channel_id": channel, "admins": [ADMIN],
                     "language": language, "poll_timeout": poll_timeout},
        "plans": [{"id": "month", "title": "1 month", "price": "199.00", "days": 30},
                  {"id": "year", "title": "1 year <best>", "price": "1990.00", "days": 365}],
    }
    for section, values in extra.items():
        raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) else values
    return load_config(raw=raw, env={})


async def start_queue(testcase, config):
    from ymds.queue.client import RedisJobQueue
    queue = RedisJobQueue(reactor, config.redis)
    queue.startService()
    testcase.addCleanup(queue.stopService)
    return queue


async def start_billing(testcase, config, queue):
    """The real billing role (tasks + worker + timers) on a fresh SQLite ledger."""
    from ymds.billing.open import open_ledger
    from ymds.billing.service import make_billing_service
    directory = tempfile.mkdtemp(prefix="ymds-bot-billing-")
    ledger = open_ledger("sqlite:///" + os.path.join(directory, "ledger.sqlite3"), reactor)
    await ledger.migrate()
    billing = make_billing_service(reactor, config, queue, ledger)
    billing.startService()
    testcase.addCleanup(billing.stopService)
    # MultiService stops the ledger without waiting for a timer sweep in progress, which
    # then never finishes: let the first sweep (run at start) complete before any stop.
    await wait_until(lambda: billing.timers._running is None, what="first billing sweep")
    return billing
