"""``--check``: validate the configuration and reach Redis and the ledger, blocking.

Also (issue 14) it builds every endpoint as the web role will (certificates loaded, no
port bound), calls Telegram's getMe when a bot token is set, and tries the wallet API token
when one is set: a configuration that passes ``--check`` starts.

It runs before the reactor starts, so it uses plain sockets and drivers: a short
report on stdout and an exit status scripts can use.
"""
from __future__ import annotations

import os
import socket
import sqlite3
from typing import Any
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


def check_endpoint(description: str) -> tuple[bool, str]:
    """Build a server endpoint as the web role will (this loads its certificate and key)
    without listening: a running instance may hold the port."""
    from twisted.internet import reactor

    from ymds.tlsendpoint import server_endpoint
    shown = description.split(":privateKey")[0]
    try:
        server_endpoint(reactor, description)
    except Exception as e:  # a bad description, a missing or broken certificate
        return False, f"{shown}: {' '.join(str(e).split())[:300] or type(e).__name__}; fix server.endpoint or its certificate files"
    return True, shown


def _json_post(url: str, data: bytes, headers: dict[str, str], timeout: float) -> tuple[int, Any]:
    """(HTTP status, parsed JSON or None); OSError when nothing answered."""
    import json
    import ssl
    import urllib.error
    import urllib.request
    request = urllib.request.Request(url, data=data, headers=headers)
    context = None
    if urlsplit(url).hostname in ("localhost", "127.0.0.1", "::1"):
        # the demo's sandbox serves a self-signed certificate for localhost only
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def check_telegram_token(config: Config, timeout: float = 5.0) -> tuple[bool, str]:
    """getMe with telegram.token: the token works and names the bot."""
    url = f"{config.telegram.api_url.rstrip('/')}/bot{config.telegram.token}/getMe"
    try:
        status, body = _json_post(url, b"{}", {"Content-Type": "application/json"}, timeout)
    except OSError as e:
        return False, f"getMe: {e}; check the network and telegram.api_url"
    if status == 200 and isinstance(body, dict) and body.get("ok") and isinstance(body.get("result"), dict):
        return True, f"getMe: @{body['result'].get('username', '?')}"
    description = body.get("description") if isinstance(body, dict) else None
    return False, f"getMe: HTTP {status} {str(description or '')[:100]}; check telegram.token_file (from @BotFather)"


def check_wallet_token(config: Config, timeout: float = 5.0) -> tuple[bool, str]:
    """operation-history (one record) with the wallet API token: it is valid and has the scope ymds uses."""
    url = f"{config.yoomoney.api_url.rstrip('/')}/api/operation-history"
    headers = {"Authorization": f"Bearer {config.yoomoney.api_token}",
               "Content-Type": "application/x-www-form-urlencoded"}
    try:
        status, body = _json_post(url, b"records=1", headers, timeout)
    except OSError as e:
        return False, f"wallet API: {e}; check the network and yoomoney.api_url"
    if status == 200 and isinstance(body, dict) and "error" not in body:
        return True, "wallet API token: ok (operation-history)"
    if status in (401, 403):
        return False, (f"wallet API token refused (HTTP {status}); make a new token with the operation-history and "
                       "operation-details scopes and put it in yoomoney.api_token_file")
    error = body.get("error") if isinstance(body, dict) else None
    return False, f"wallet API: HTTP {status} {str(error or '')[:100]}"


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
    if "web" in roles:  # issue 14: every endpoint is built and its certificate loaded
        for name, description in (("server.endpoint", config.server.endpoint),
                                  ("server.metrics_endpoint", config.server.metrics_endpoint)):
            if description:
                good, detail = check_endpoint(description)
                ok &= good
                write(f"{name}: {'ok' if good else 'FAILED'} ({detail})")
    if config.telegram.token:
        good, detail = check_telegram_token(config)
        ok &= good
        write(f"telegram: {'ok' if good else 'FAILED'} ({detail})")
    if config.yoomoney.api_token:
        good, detail = check_wallet_token(config)
        ok &= good
        write(f"yoomoney: {'ok' if good else 'FAILED'} ({detail})")
    if "bot" in roles:  # issue 15: the bot's rights in every paid chat, one line per problem
        from ymds.bot.access.probe import probe_rights
        good, lines = probe_rights(config)
        ok &= good
        for line in lines:
            write(f"telegram: {line}")
    write("check: ok" if ok else "check: FAILED")
    return 0 if ok else 1
