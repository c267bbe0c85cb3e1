"""What a ``ymds`` command runs in: the reactor, the configuration, the parsed arguments,
the output streams, and the ledger, queue and wallet API, each opened on first use and
closed by :meth:`Context.close`."""

from __future__ import annotations

import argparse
from typing import IO, Any

from ymds.cli.errors import unreachable, usage
from ymds.config import Config


class Context:
    """The reactor, the config, the output streams and lazily opened collaborators.

    ``say`` writes a result line to ``out`` (what scripts read); ``note`` writes a remark or
    a progress line to ``err`` at once.  Collaborators that fail to open raise
    :class:`~ymds.cli.errors.CommandError` with one line naming what to fix.
    """

    def __init__(self, reactor: Any, config: Config, args: argparse.Namespace, out: IO[str], err: IO[str]):
        self.reactor = reactor
        self.config = config
        self.args = args
        self.out = out
        self.err = err
        self._ledger: Any = None
        self._queue: Any = None
        self._wallet_api: Any = None

    def say(self, line: str = "") -> None:
        self.out.write(line + "\n")

    def note(self, line: str) -> None:
        self.err.write(line + "\n")
        self.err.flush()

    def now(self) -> float:
        return float(self.reactor.seconds())

    async def ledger(self) -> Any:
        """The migrated ledger of ``ledger.url``."""
        if self._ledger is None:
            self._ledger = await open_ledger_checked(self.reactor, self.config.ledger.url)
        return self._ledger

    def queue(self) -> Any:
        """The Redis job queue of ``redis.url`` (connects on first use)."""
        if self._queue is None:
            from ymds.queue.client import RedisJobQueue
            self._queue = RedisJobQueue(self.reactor, self.config.redis)
        return self._queue

    def wallet_api(self, required: bool) -> Any:
        """The wallet API client, or None without ``yoomoney.api_token`` (a usage error if ``required``)."""
        if self._wallet_api is None and self.config.yoomoney.api_token:
            from ymds.sandbox.trust import local_tls_options
            from ymds.yoomoney.wallet_api import WalletAPI
            # the demo's sandbox: its certificate is trusted like the billing role does;
            # otherwise --cafile/--insecure where the command offers them
            trust: dict[str, Any] = dict(local_tls_options(self.config, self.config.yoomoney.api_url))
            cafile = getattr(self.args, "cafile", None)
            if cafile:
                trust["trust_pem"] = read_cafile(cafile)
            if getattr(self.args, "insecure", False):
                trust["insecure_local_tls"] = True
            self._wallet_api = WalletAPI(self.reactor, self.config.yoomoney.api_url, self.config.yoomoney.api_token,
                                         **trust)
        if self._wallet_api is None and required:
            raise usage("yoomoney.api_token is not set: this command needs the wallet API; put an OAuth token "
                        "with operation-history and operation-details in yoomoney.api_token_file "
                        "(docs/OWNER-GUIDE.md, step 4)")
        return self._wallet_api

    async def close(self) -> None:
        """Close whatever was opened, wallet API first, ledger last."""
        from twisted.internet.defer import Deferred
        if self._wallet_api is not None:
            await self._wallet_api.close()
        if self._queue is not None:
            await Deferred.fromCoroutine(self._queue.close())
        if self._ledger is not None:
            await self._ledger.close()


def read_cafile(path: str) -> bytes:
    """The PEM of ``--cafile``, or a usage error naming the file."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise usage(f"--cafile: cannot read {path}: {e.strerror}") from None


async def open_ledger_checked(reactor: Any, url: str) -> Any:
    """Open and migrate the ledger, turning driver failures into one clear line."""
    from ymds.billing.ledger import LedgerError, SchemaTooNew
    from ymds.billing.open import open_ledger
    try:
        ledger = open_ledger(url, reactor)
    except LedgerError as e:
        raise unreachable(f"ledger unavailable: {e}") from None
    try:
        await ledger.migrate()
    except SchemaTooNew as e:
        await ledger.close()
        raise usage(f"ledger: {e}") from None
    except Exception as e:  # the driver's own errors: sqlite3 / psycopg OperationalError ...
        await ledger.close()
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise unreachable(f"ledger unreachable ({describe_ledger(url)}): {first}") from None
    return ledger


def describe_ledger(url: str) -> str:
    """The ledger URL without a password."""
    if url.startswith(("postgresql:", "postgres:")):
        from urllib.parse import urlsplit
        parts = urlsplit(url)
        return f"postgresql://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}{parts.path}"
    return url


def describe_redis(url: str) -> str:
    """The Redis URL without a password (or just "redis.url" if it does not parse)."""
    try:
        from ymds.queue.redis import parse_redis_url
        return str(parse_redis_url(url).describe())
    except Exception:
        return "redis.url"
