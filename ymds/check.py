"""``--check``: validate the configuration and reach Redis and the ledger, blocking.

It runs before the reactor starts, so it uses plain sockets and drivers: a short
report on stdout and an exit status scripts can use.
"""
from __future__ import annotations

import os
import socket
import sqlite3
from urllib.parse import parse_qs, unquote, urlsplit

from ymds.config import Config


def _resp(*args: str) -> bytes:
    out = b"*%d\r\n" % len(args)
    for a in args:
        b = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(b), b)
    return out


def check_redis(url: str, timeout: float = 2.0) -> tuple[bool, str]:
    parts = urlsplit(url)
    try:
        if parts.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(timeout)
            sock.connect(parts.path)
        elif parts.scheme in ("redis", "rediss"):
            if parts.scheme == "rediss":
                import ssl
                query = parse_qs(parts.query)
                ca_file = (query.get("ca_file") or query.get("ssl_ca_certs") or [None])[0]
                raw = socket.create_connection((parts.hostname, parts.port or 6379), timeout=timeout)
                context = ssl.create_default_context(cafile=ca_file)
                sock = context.wrap_socket(raw, server_hostname=parts.hostname)
            else:
                sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=timeout)
        else:
            return True, f"{parts.scheme} not checked here"
        with sock:
            f = sock.makefile("rb")
            password = parts.password or (parse_qs(parts.query).get("password") or [None])[0]
            if password:
                # An ACL user (redis://user:password@...) logs in as itself, not as "default".
                user = [unquote(parts.username)] if parts.username else []
                sock.sendall(_resp("AUTH", *user, unquote(password)))
                line = f.readline()
                if not line.startswith(b"+OK"):
                    return False, "AUTH refused: check the password in redis.url"
            sock.sendall(_resp("PING"))
            line = f.readline()
            if not line.startswith(b"+PONG"):
                return False, f"unexpected answer {line[:60]!r}"
            sock.sendall(_resp("INFO", "server"))
            header = f.readline()
            info = f.read(int(header[1:]) + 2).decode(errors="replace")
            version = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("redis_version:")), "?")
            return True, f"redis {version}"
    except OSError as e:
        return False, f"cannot reach {parts.hostname or parts.path}: {e.strerror or e}"


def redis_exposure_warning(url: str) -> str | None:
    """A warning when redis.url reaches a Redis beyond this host without a password or TLS
    (the queue carries payments: anyone on that network could read or inject jobs)."""
    from ymds.config import is_loopback_url

    parts = urlsplit(url)
    if parts.scheme != "redis" or is_loopback_url(url):
        return None
    has_password = bool(parts.password) or bool(parse_qs(parts.query).get("password"))
    if has_password:
        return "plain TCP to a Redis on another host: prefer rediss:// (TLS)"
    return ("a Redis on another host without a password or TLS: set an ACL user and password "
            "(redis://ymds:PASSWORD@host) and prefer rediss:// (see docs/OPERATIONS.md)")


def check_ledger(url: str) -> tuple[bool, str]:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = url[len("sqlite:///"):]
        directory = os.path.dirname(path) or "."
        if not os.path.exists(path):
            if os.access(directory, os.W_OK):
                return True, f"{path} will be created"
            return False, f"{directory} is not writable: create it or change ledger.url"
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
            conn.execute("select 1")
            conn.close()
            return True, f"sqlite {path}"
        except sqlite3.Error as e:
            return False, f"sqlite {path}: {e}"
    if parts.scheme in ("postgresql", "postgres"):
        try:
            import psycopg
        except ImportError:
            return False, "psycopg is not installed: pip install 'ymds[postgres]'"
        try:
            with psycopg.connect(url, connect_timeout=3) as conn:
                version = conn.execute("show server_version").fetchone()[0]
            return True, f"postgresql {version}"
        except psycopg.Error as e:
            return False, f"postgresql: {str(e).strip().splitlines()[0]}"
    return True, f"third-party ledger {url} (not checked)"


def run_check(config: Config, roles: set[str], write) -> int:
    ok = True
    write(f"roles: {', '.join(sorted(roles))}")
    write(f"endpoint: {config.server.endpoint.split(':privateKey')[0]}  public_url: {config.server.public_url}")
    write(f"plans: {', '.join(f'{p.id} {p.price} RUB/{p.days}d' for p in config.plans) or 'none'}")
    if config.yoomoney.sandbox:
        write(f"SANDBOX: fake wallet, no real money; pay forms go to {config.yoomoney.quickpay_url}, "
              f"the wallet API is {config.yoomoney.api_url}")
    else:
        write(f"yoomoney: LIVE wallet {config.yoomoney.wallet or '(not set)'}; pay forms go to {config.yoomoney.quickpay_url}")
    good, detail = check_redis(config.redis.url)
    ok &= good
    write(f"redis: {'ok' if good else 'FAILED'} ({detail})")
    warning = redis_exposure_warning(config.redis.url)
    if warning:
        write(f"redis: WARNING {warning}")
    if "billing" in roles:
        good, detail = check_ledger(config.ledger.url)
        ok &= good
        write(f"ledger: {'ok' if good else 'FAILED'} ({detail})")
    if "bot" in roles:  # issue 15: the bot's rights in every paid chat, one line per problem
        from ymds.bot.access.probe import probe_rights
        good, lines = probe_rights(config)
        ok &= good
        for line in lines:
            write(f"telegram: {line}")
    write("check: ok" if ok else "check: FAILED")
    return 0 if ok else 1
