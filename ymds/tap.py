"""``twistd ymds``: options and makeService.

makeService turns the options into a validated Config (or one line on stderr and exit
status 1), then ``build_service`` assembles one MultiService per role from injected parts.
This is the only module that imports the global reactor.
"""

from __future__ import annotations

import os
import secrets
import sys

from twisted.python import usage

from ymds.cli import common_options
from ymds.config import Config, ConfigError, load_config, require_secrets


class Options(usage.Options):
    synopsis = "[--config ymds.toml] [--roles web,billing,bot] [--demo [--data-dir DIR]] [--check]"
    longdesc = ("Accept money into a personal YooMoney wallet and sell access to a Telegram bot or channel. "
                "Roles: web (pages and the notification endpoint), billing (the ledger), bot (Telegram).")
    # --config, --roles and --set: names, help and parsing shared with the ymds command
    optParameters = [
        common_options.usage_parameter(common_options.CONFIG),
        common_options.usage_parameter(common_options.ROLES_OPTION),
        ["data-dir", None, "ymds-demo", "demo: the data directory"],
        ["port", "p", "8443", "demo: the HTTPS port"],
        ["log-format", None, "text", "text or json (one JSON object per line)"],
    ]
    optFlags = [
        ["demo", None, "zero-configuration demo: self-signed TLS, sandbox YooMoney, SQLite, private Redis if needed"],
        ["check", None, "validate the configuration, reach Redis and the ledger, print a report and exit"],
    ]

    def __init__(self):
        super().__init__()
        self["set"] = {}

    def opt_set(self, value: str) -> None:
        try:
            key, raw = common_options.parse_override(value)
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        self["set"][key] = raw

    opt_set.__doc__ = common_options.SET.help  # usage.Options shows an opt_ method's docstring as its help

    def postOptions(self):
        if self["log-format"] not in ("text", "json"):
            raise usage.UsageError("--log-format must be text or json")
        if self["log-format"] == "json" and self.parent is not None:
            # twistd builds its logger from the parent's "logger" after parsing.
            self.parent["logger"] = "ymds.logs.json_observer"
        if self["roles"] is not None:
            try:
                self["roles"] = common_options.parse_roles(self["roles"])
            except ValueError as e:
                raise usage.UsageError(str(e)) from None
        try:
            int(self["port"])
        except ValueError:
            raise usage.UsageError("--port must be a number") from None


def _fail(message: str) -> None:
    sys.stderr.write(message.rstrip() + "\n")
    sys.stderr.flush()
    raise SystemExit(1)


def _choose_roles(options, config: Config, say) -> set[str]:
    if options["roles"] is not None:
        roles = set(options["roles"])
    else:
        roles = common_options.default_roles(config)
        if "bot" not in roles:
            say("no telegram.token configured: running without the bot role (web and billing only)")
    require_secrets(config, roles)
    return roles


def redacted_url(url: str) -> str:
    """``url`` fit for a log line: any password in its userinfo replaced by ``***``
    (``redis://:secret@host`` → ``redis://:***@host``)."""
    from urllib.parse import urlsplit, urlunsplit
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def prepare(options, reactor, say=print):
    """Options -> (config, roles, extra services started first). Raises ConfigError."""
    from ymds import demo

    private_redis = None
    if options["demo"]:
        data_dir = os.path.abspath(options["data-dir"])
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
        candidate = os.environ.get("YMDS_REDIS_URL", "redis://127.0.0.1:6379/0")
        prefix_path = os.path.join(data_dir, "redis_prefix")
        if demo.redis_reachable(candidate):
            redis_url = candidate
            if not os.path.exists(prefix_path):
                with open(prefix_path, "w") as f:
                    f.write("ymds-demo-" + secrets.token_hex(4))
            with open(prefix_path) as f:
                prefix = f.read().strip()
            say(f"demo: using the Redis at {redacted_url(candidate)} (keys under {prefix}:)")
        else:
            if demo.find_redis_server() is None:
                raise demo.RedisNotInstalled()
            private_redis = demo.PrivateRedisService(reactor, data_dir)
            redis_url, prefix = private_redis.url, "ymds"
            say(f"demo: no Redis at {redacted_url(candidate)}; starting a private redis-server on {private_redis.socket_path}")
        document = demo.demo_document(data_dir, int(options["port"]), redis_url, prefix)
        env = {k: v for k, v in os.environ.items() if k != "YMDS_REDIS_URL"}
        config = load_config(raw=document, env=env, overrides=options["set"])
        config_base = data_dir
        config_path = demo.write_config_file(data_dir, document, options["set"])
        say(f"demo: configuration written to {config_path}; admin command: {demo.admin_command(config_path)}")
    else:
        path = options["config"] or os.environ.get("YMDS_CONFIG")
        config = load_config(path=path, overrides=options["set"])
        config_base = os.path.dirname(os.path.abspath(path)) if path else os.getcwd()
    roles = _choose_roles(options, config, say)
    return config, roles, private_redis, config_base


def makeService(options, reactor=None):
    if reactor is None:
        from twisted.internet import reactor
    from ymds.demo import RedisNotInstalled

    say = lambda line: (sys.stdout.write(line + "\n"), sys.stdout.flush())  # noqa: E731
    try:
        config, roles, private_redis, _ = prepare(options, reactor, say)
    except (ConfigError, RedisNotInstalled) as e:
        _fail(str(e))
    if options["check"]:
        from ymds.check import run_check
        raise SystemExit(run_check(config, roles, say))
    from ymds.roles import build_service
    from ymds import workers
    try:
        inherited = os.environ.get(workers.WORKER_FD_ENV)
        if inherited is not None and roles == {"web"}:  # a child of [server] workers = N
            top = build_service(reactor, config, roles, say=say)
            workers.adopt_in_child(reactor, top, config.server.endpoint, int(inherited))
            return top
        if config.server.workers > 1 and "web" in roles and not options["demo"]:
            return workers.build_parent(reactor, config, roles, options, build_service, say=say)
        return build_service(reactor, config, roles, private_redis=private_redis, say=say,
                             demo=bool(options["demo"]))
    except (ConfigError, workers.WorkersError) as e:
        _fail(str(e))
