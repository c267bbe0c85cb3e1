"""Configuration: frozen objects loaded from TOML, environment and command line.

Precedence (lowest first): built-in defaults, the TOML file, ``YMDS_<SECTION>_<KEY>``
environment variables, command-line overrides.  Secrets may be given inline or through
a ``<key>_file`` that holds them.  Every problem is a :class:`ConfigError` whose text is
one line naming the key, what is wrong and how to fix it.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from typing import Any, Mapping

# ConfigError, parse_duration and is_loopback_url are re-exported: callers import them from here
from ymds.config_values import (
    ConfigError, check_endpoint, check_http_url, check_ledger_url, check_redis_url, is_loopback_url, parse_bool,
    parse_duration, parse_float, parse_int, parse_list, parse_money, parse_rate, parse_text, parse_timezone,
)
from ymds.billing.access_config import parse_chat_ids, parse_grace
from ymds.overlay.settings import OverlayConfig, donation_extras, overlay_config

# [shop] and the Telegram identities live in their own module (this one stays under 600 lines)
from ymds.config_shop import ShopConfig, parse_bot_username, parse_channel_id, parse_shop


@dataclass(frozen=True)
class ServerConfig:
    endpoint: str = "ssl:8443:privateKey=key.pem:certKey=cert.pem"
    public_url: str = "https://localhost:8443"
    max_body: int = 65536
    trusted_proxies: tuple[str, ...] = ()
    metrics_endpoint: str = ""  # the /metrics listener; keep it on loopback, e.g. tcp:9464:interface=127.0.0.1
    metrics_public: bool = False  # also answer /metrics on server.endpoint (revenue figures: off by default)
    timezone: str = "UTC"  # the owner's IANA zone: times shown by the dashboard, the pages, the bot and the CLI
    workers: int = 1  # web processes sharing server.endpoint (ymds.workers); "auto" = CPUs


@dataclass(frozen=True)
class YooMoneyConfig:
    wallet: str = ""
    notification_secret: str = ""
    signature: str = "auto"  # auto | sign | sha1
    api_token: str = ""
    api_url: str = "https://yoomoney.ru"
    confirm_with_api: bool = False
    payment_types: tuple[str, ...] = ("AC", "PC")
    quickpay_url: str = "https://yoomoney.ru/quickpay/confirm"
    sandbox: bool = False
    # The recipient pays the fee; rates change, so they are configuration.
    card_fee: Decimal = Decimal("0.03")
    wallet_fee: Decimal = Decimal("0.01")


@dataclass(frozen=True)
class LinksConfig:
    secret: bytes = b""
    ttl: int = 3 * 86400  # seconds


@dataclass(frozen=True)
class RedisConfig:
    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "ymds"
    # enqueues answer only once this many replicas have the job (WAIT); 0: the master's word
    min_replicas: int = 0
    replica_timeout: float = 1.0


@dataclass(frozen=True)
class QueueConfig:
    concurrency: int = 16
    batch: int = 50
    visibility_timeout: float = 60.0
    max_deliveries: int = 10
    max_attempts: int = 8
    retry_base: float = 1.0
    retry_max: float = 3600.0
    stop_timeout: float = 10.0


@dataclass(frozen=True)
class LedgerConfig:
    url: str = "sqlite:///var/lib/ymds/ledger.sqlite3"


@dataclass(frozen=True)
class TelegramConfig:
    token: str = ""
    api_url: str = "https://api.telegram.org"
    channel_id: int = 0
    grace: int = 0  # seconds a member stays in paid chats after the subscription ends (issue 15)
    admins: tuple[int, ...] = ()
    language: str = "ru"
    poll_timeout: int = 50
    sale_alerts: bool = False  # one owner message per paid sale (batched when many arrive at once)
    bot_username: str = ""  # the bot's @username: the thanks page links back to https://t.me/<it>


@dataclass(frozen=True)
class Plan:
    id: str
    title: str
    price: Decimal
    days: int
    trial_days: int = 0  # 0: no trial (issue 19)
    trial_price: Decimal | None = None  # None: a free trial; else the paid first period's price
    chats: tuple[int, ...] = ()  # paid chats it opens; () = telegram.channel_id (issue 15)
    titles: tuple[tuple[str, str], ...] = ()  # (language, title) when title is a table (issue 19)

    def title_in(self, language: str) -> str:
        """The title in ``language`` (``title = {ru = "...", en = "..."}``), else ``title``."""
        return dict(self.titles).get(language) or self.title


@dataclass(frozen=True)
class DonationsConfig:
    enabled: bool = True
    min: Decimal = Decimal("10.00")
    max: Decimal = Decimal("100000.00")
    # creators (issue 17; parsed by ymds.overlay.settings.donation_extras)
    presets: tuple[Decimal, ...] = ()
    goal: Decimal | None = None
    goal_title: str = ""
    goal_until: str = ""   # ISO date or ""
    goal_since: str = ""   # ISO date or "": the goal counts donations paid from that day (UTC)
    show_supporters: bool = False
    max_open: int = 5000   # open (unpaid, unexpired) donation invoices from the public form, all donors together


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    yoomoney: YooMoneyConfig = field(default_factory=YooMoneyConfig)
    links: LinksConfig = field(default_factory=LinksConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    telegram: TelegramConfig = field(default_factory=TelegramConfig)
    plans: tuple[Plan, ...] = ()
    donations: DonationsConfig = field(default_factory=DonationsConfig)
    shop: ShopConfig = field(default_factory=ShopConfig)
    overlay: OverlayConfig = field(default_factory=OverlayConfig)

    def plan(self, plan_id: str) -> Plan | None:
        for p in self.plans:
            if p.id == plan_id:
                return p
        return None


_PLAN_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


# --- loading ------------------------------------------------------------------------------

_SECRET_KEYS = {
    ("yoomoney", "notification_secret"),
    ("yoomoney", "api_token"),
    ("links", "secret"),
    ("telegram", "token"),
}

_SECTIONS = ("server", "yoomoney", "links", "redis", "queue", "ledger", "telegram", "donations", "shop", "overlay")


def _read_secret_file(key: str, path: str, base: str) -> str:
    if not path:
        return ""
    full = os.path.join(base, os.path.expanduser(path))
    try:
        with open(full, encoding="utf-8") as f:
            return f.read().strip()
    except OSError as e:
        raise ConfigError(key, f"cannot read {full}: {e.strerror}", "create the file or correct the path") from None


def _known_keys(section: str) -> set[str]:
    cls = {
        "server": ServerConfig, "yoomoney": YooMoneyConfig, "links": LinksConfig, "redis": RedisConfig,
        "queue": QueueConfig, "ledger": LedgerConfig, "telegram": TelegramConfig, "donations": DonationsConfig,
        "shop": ShopConfig, "overlay": OverlayConfig,
    }[section]
    keys = {f.name for f in fields(cls)}
    keys |= {f"{k}_file" for (s, k) in _SECRET_KEYS if s == section}
    return keys


def load_toml(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("--config", f"{path} does not exist", "give the path of your ymds.toml (see contrib/ymds.example.toml)") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("--config", f"{path} is not valid TOML ({e})", "fix the syntax at that line") from None


def _env_layer(env: Mapping[str, str]) -> dict:
    layer: dict[str, dict] = {}
    for name, value in env.items():
        if not name.startswith("YMDS_"):
            continue
        rest = name[5:].lower()
        for section in _SECTIONS:
            if rest.startswith(section + "_"):
                layer.setdefault(section, {})[rest[len(section) + 1:]] = value
                break
    return layer


def load_config(
    path: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    raw: Mapping[str, Any] | None = None,
) -> Config:
    """Build a validated :class:`Config`.

    ``raw`` is an already-parsed TOML document (the demo uses it); ``overrides`` maps
    ``"section.key"`` to values from the command line.
    """
    env = os.environ if env is None else env
    doc: dict[str, Any] = {}
    base = os.getcwd()
    if path is not None:
        doc = load_toml(path)
        base = os.path.dirname(os.path.abspath(path))
    if raw is not None:
        doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for section, values in _env_layer(env).items():
        doc.setdefault(section, {}).update(values)
    for dotted, value in (overrides or {}).items():
        apply_override(doc, dotted, value)
    return build_config(doc, base)


def apply_override(doc: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``section.key`` (or ``plans.N.key``, a list entry) in ``doc``; a ConfigError naming
    the key when the path does not lead to a table."""
    section, _, key = dotted.partition(".")
    if section == "plans":
        index, _, plan_key = key.partition(".")
        plans = doc.get("plans")
        if not index.isdigit() or not plan_key or not isinstance(plans, list) or int(index) >= len(plans) \
                or not isinstance(plans[int(index)], dict):
            count = len(plans) if isinstance(plans, list) else 0
            raise ConfigError(dotted, f"is not a plan key (the file has {count} plan(s), counted from 0)",
                              "write plans.N.key=value for an existing plan, e.g. --set plans.0.price=199, "
                              "or add the plan to the file")
        plans = list(plans)  # the caller's raw document stays as it was
        plans[int(index)] = {**plans[int(index)], plan_key: value}
        doc["plans"] = plans
        return
    table = doc.setdefault(section, {})
    if not isinstance(table, dict) or not key:
        raise ConfigError(dotted, "does not name a key of a table",
                          "write section.key=value, e.g. --set redis.url=redis://10.0.0.5:6379/0")
    table[key] = value


def build_config(doc: Mapping[str, Any], base: str = ".") -> Config:
    """A validated Config from a merged document (TOML, environment and overrides).

    Raises ConfigError naming the first wrong key; ``base`` resolves relative paths.
    """
    _check_sections(doc)
    server = _server(_section(doc, "server", base))
    return Config(
        server=server,
        yoomoney=_yoomoney(_section(doc, "yoomoney", base), server),
        links=_links(_section(doc, "links", base)),
        redis=_redis(_section(doc, "redis", base)),
        queue=_queue(_section(doc, "queue", base)),
        ledger=_ledger(_section(doc, "ledger", base), base),
        telegram=_telegram(_section(doc, "telegram", base)),
        plans=_plans(doc),
        donations=_donations(_section(doc, "donations", base)),
        shop=parse_shop(_section(doc, "shop", base)),
        overlay=overlay_config(_section(doc, "overlay", base), base),
    )


def _check_sections(doc: Mapping[str, Any]) -> None:
    """Every section and key of ``doc`` is one ymds knows."""
    for section, values in doc.items():
        if section in ("plans",):
            continue
        if section not in _SECTIONS:
            raise ConfigError(section, "is not a known section", f"use one of: {', '.join(_SECTIONS)}, [[plans]]")
        if not isinstance(values, dict):
            raise ConfigError(section, "must be a table", f"write [{section}] followed by its keys")
        unknown = set(values) - _known_keys(section)
        if unknown:
            key = sorted(unknown)[0]
            raise ConfigError(f"{section}.{key}", "is not a known key", f"remove it or use one of: {', '.join(sorted(_known_keys(section)))}")


def _section(doc: Mapping[str, Any], name: str, base: str) -> dict:
    """The keys of section ``name``, with each ``<secret>_file`` replaced by the file's content."""
    values = dict(doc.get(name, {}))
    for (s, k) in _SECRET_KEYS:
        if s == name and f"{k}_file" in values:
            file_value = _read_secret_file(f"{s}.{k}_file", parse_text(f"{s}.{k}_file", values.pop(f"{k}_file")), base)
            if file_value:
                values[k] = file_value
    return values


def _workers(raw: Any) -> int:
    if isinstance(raw, str) and raw.strip().lower() == "auto":
        return max(1, os.cpu_count() or 1)
    return parse_int("server.workers", raw, 1, 64)


def _server(s: dict) -> ServerConfig:
    d = ServerConfig()
    server = ServerConfig(
        endpoint=check_endpoint("server.endpoint", s.get("endpoint", d.endpoint)),
        public_url=check_http_url("server.public_url", s.get("public_url", d.public_url)),
        max_body=parse_int("server.max_body", s.get("max_body", d.max_body), 1024, 16 * 1024 * 1024),
        trusted_proxies=tuple(parse_text("server.trusted_proxies", x) for x in parse_list("server.trusted_proxies", s.get("trusted_proxies", []))),
        metrics_endpoint=(check_endpoint("server.metrics_endpoint", s["metrics_endpoint"])
                          if str(s.get("metrics_endpoint", "")).strip() else ""),
        metrics_public=parse_bool("server.metrics_public", s.get("metrics_public", d.metrics_public)),
        timezone=parse_timezone("server.timezone", s.get("timezone", d.timezone)),
        workers=_workers(s.get("workers", d.workers)),
    )
    if server.public_url.startswith("http://") and not is_loopback_url(server.public_url):
        # YooMoney would send notifications (and buyers their pay links) in clear text.
        raise ConfigError("server.public_url", f"{server.public_url!r} is plain http on a public address",
                          "use the https:// address your TLS endpoint or proxy serves")
    return server


def _payment_types(y: dict, dy: YooMoneyConfig) -> list[str]:
    """yoomoney.payment_types: AC and/or PC, each once, in the given order."""
    types = []
    for t in parse_list("yoomoney.payment_types", y.get("payment_types", list(dy.payment_types))):
        t = parse_text("yoomoney.payment_types", t).strip().upper()
        if t == "MC":
            raise ConfigError("yoomoney.payment_types", '"MC" (phone balance) is no longer accepted by YooMoney', 'remove it and keep ["AC", "PC"]')
        if t not in ("AC", "PC"):
            raise ConfigError("yoomoney.payment_types", f"{t!r} is not a payment type", 'use "AC" (bank card) and/or "PC" (YooMoney wallet)')
        if t not in types:
            types.append(t)
    if not types:
        raise ConfigError("yoomoney.payment_types", "is empty", 'list at least one of "AC", "PC"')
    return types


def _yoomoney(y: dict, server: ServerConfig) -> YooMoneyConfig:
    """[yoomoney]; the sandbox and its URLs depend on server.public_url."""
    dy = YooMoneyConfig()
    signature = parse_text("yoomoney.signature", y.get("signature", dy.signature)).strip().lower()
    if signature not in ("auto", "sign", "sha1"):
        raise ConfigError("yoomoney.signature", f"{signature!r} is not a scheme", 'use "auto", "sign" or "sha1"')
    types = _payment_types(y, dy)
    wallet = parse_text("yoomoney.wallet", y.get("wallet", dy.wallet)).strip()
    if wallet and not re.fullmatch(r"41001\d{6,14}|4100\d{7,16}", wallet):
        raise ConfigError("yoomoney.wallet", f"{wallet!r} is not a YooMoney wallet number", "copy the 41001... number from your wallet page")
    sandbox = parse_bool("yoomoney.sandbox", y.get("sandbox", dy.sandbox))
    if sandbox and not is_loopback_url(server.public_url):
        # The sandbox is a fake wallet that marks invoices paid: never on a reachable address.
        raise ConfigError("yoomoney.sandbox", f"is true while server.public_url {server.public_url!r} is not a loopback address",
                          "set yoomoney.sandbox = false (and unset YMDS_YOOMONEY_SANDBOX) before going live")
    quickpay_url = check_http_url("yoomoney.quickpay_url", y.get("quickpay_url", dy.quickpay_url))
    api_url = check_http_url("yoomoney.api_url", y.get("api_url", dy.api_url))
    if sandbox:
        # A dry run must never send a buyer or a token to the real YooMoney: a URL that is not
        # on this machine (the example's yoomoney.ru ones) gives way to our own sandbox's.
        if not is_loopback_url(quickpay_url):
            quickpay_url = server.public_url + "/sandbox/quickpay/confirm"
        if not is_loopback_url(api_url):
            api_url = server.public_url + "/sandbox"
    yoomoney = YooMoneyConfig(
        wallet=wallet,
        notification_secret=parse_text("yoomoney.notification_secret", y.get("notification_secret", "")),
        signature=signature,
        api_token=parse_text("yoomoney.api_token", y.get("api_token", "")).strip(),
        api_url=api_url,
        confirm_with_api=parse_bool("yoomoney.confirm_with_api", y.get("confirm_with_api", dy.confirm_with_api)),
        payment_types=tuple(types),
        quickpay_url=quickpay_url,
        sandbox=sandbox,
        card_fee=parse_rate("yoomoney.card_fee", y.get("card_fee", str(dy.card_fee))),
        wallet_fee=parse_rate("yoomoney.wallet_fee", y.get("wallet_fee", str(dy.wallet_fee))),
    )
    if yoomoney.confirm_with_api and not yoomoney.api_token:
        raise ConfigError("yoomoney.confirm_with_api", "is true but no API token is configured", "set yoomoney.api_token_file or set confirm_with_api = false")
    return yoomoney


def _links(lk: dict) -> LinksConfig:
    return LinksConfig(
        secret=parse_text("links.secret", lk.get("secret", "")).encode("utf-8"),
        ttl=parse_duration("links.ttl", lk.get("ttl", "3d")),
    )


def _redis(r: dict) -> RedisConfig:
    prefix = parse_text("redis.prefix", r.get("prefix", "ymds")).strip()
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", prefix):
        raise ConfigError("redis.prefix", f"{prefix!r} is not a key prefix", "use letters, digits, '_', '-', '.', ':' (at most 64)")
    redis = RedisConfig(url=check_redis_url("redis.url", r.get("url", RedisConfig.url)), prefix=prefix,
                        min_replicas=parse_int("redis.min_replicas", r.get("min_replicas", 0), 0, 16),
                        replica_timeout=parse_float("redis.replica_timeout", r.get("replica_timeout", 1.0)))
    if redis.replica_timeout <= 0 or redis.replica_timeout > 60:
        raise ConfigError("redis.replica_timeout", f"{redis.replica_timeout:g} s is outside 0-60 s",
                          "use e.g. 1 (seconds a notification waits for a replica before 503)")
    return redis


def _queue(q: dict) -> QueueConfig:
    dq = QueueConfig()
    return QueueConfig(
        concurrency=parse_int("queue.concurrency", q.get("concurrency", dq.concurrency), 1, 10000),
        batch=parse_int("queue.batch", q.get("batch", dq.batch), 1, 1000),
        visibility_timeout=parse_float("queue.visibility_timeout", q.get("visibility_timeout", dq.visibility_timeout), 1.0),
        max_deliveries=parse_int("queue.max_deliveries", q.get("max_deliveries", dq.max_deliveries), 1, 1000),
        max_attempts=parse_int("queue.max_attempts", q.get("max_attempts", dq.max_attempts), 1, 1000),
        retry_base=parse_float("queue.retry_base", q.get("retry_base", dq.retry_base), 0.001),
        retry_max=parse_float("queue.retry_max", q.get("retry_max", dq.retry_max), 0.001),
        stop_timeout=parse_float("queue.stop_timeout", q.get("stop_timeout", dq.stop_timeout), 0.0),
    )


def _ledger(lg: dict, base: str) -> LedgerConfig:
    """[ledger]; a relative SQLite path is relative to the config file."""
    ledger_url = check_ledger_url("ledger.url", lg.get("url", LedgerConfig.url))
    if ledger_url.startswith("sqlite:///"):
        rel = ledger_url[len("sqlite:///"):]
        if rel and not os.path.isabs(rel) and rel != ":memory:":
            ledger_url = "sqlite:///" + os.path.join(base, rel)
    ledger = LedgerConfig(url=ledger_url)
    return ledger


def _telegram(t: dict) -> TelegramConfig:
    dt = TelegramConfig()
    language = parse_text("telegram.language", t.get("language", dt.language)).strip().lower()
    if language not in ("ru", "en"):
        raise ConfigError("telegram.language", f"{language!r} is not supported", 'use "ru" or "en"')
    token = parse_text("telegram.token", t.get("token", "")).strip()
    if token and not re.fullmatch(r"\d{3,20}:[A-Za-z0-9_-]{20,80}", token):
        raise ConfigError("telegram.token", "does not look like a bot token", "copy the token from @BotFather, e.g. 123456:ABC-DEF...")
    return TelegramConfig(
        token=token,
        api_url=check_http_url("telegram.api_url", t.get("api_url", dt.api_url)),
        channel_id=parse_channel_id(t.get("channel_id", 0)),
        admins=tuple(parse_int("telegram.admins", a) for a in parse_list("telegram.admins", t.get("admins", []))),
        language=language,
        grace=parse_grace(t.get("grace", 0)),
        poll_timeout=parse_int("telegram.poll_timeout", t.get("poll_timeout", dt.poll_timeout), 0, 100),
        sale_alerts=parse_bool("telegram.sale_alerts", t.get("sale_alerts", dt.sale_alerts)),
        bot_username=parse_bot_username(t.get("bot_username", "")),
    )


def _plan_title(key: str, raw: Any) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A plan's title: text, or a table of texts by language (ru, en); the first is the
    default (Plan.title), the table gives Plan.title_in."""
    fix = 'write title = "1 month" or title = {ru = "1 месяц", en = "1 month"}'
    if isinstance(raw, dict):
        unknown = sorted(set(raw) - {"ru", "en"})
        if unknown or not raw:
            raise ConfigError(f"{key}.title.{unknown[0]}" if unknown else f"{key}.title", "is not ru or en", fix)
        titles = tuple((lang, parse_text(f"{key}.title.{lang}", raw[lang]).strip()) for lang in ("ru", "en")
                       if lang in raw)
    else:
        titles = (("", parse_text(f"{key}.title", raw).strip()),)
    for lang, text in titles:
        if not text or len(text) > 100:
            raise ConfigError(f"{key}.title" + (f".{lang}" if lang else ""), "must be 1-100 characters", fix)
    return titles[0][1], tuple(t for t in titles if t[0])


def _plans(doc: Mapping[str, Any]) -> tuple[Plan, ...]:
    """[[plans]]: each with a unique id, a title, a price and days."""
    raw_plans = doc.get("plans", [])
    if not isinstance(raw_plans, list):
        raise ConfigError("plans", "must be an array of tables", "write each plan as [[plans]] with id, title, price, days")
    plans: list[Plan] = []
    for i, p in enumerate(raw_plans):
        key = f"plans[{i}]"
        if not isinstance(p, dict):
            raise ConfigError(key, "must be a table", "write [[plans]] followed by id, title, price, days")
        for needed in ("id", "title", "price", "days"):
            if needed not in p:
                raise ConfigError(f"{key}.{needed}", "is missing", "every plan needs id, title, price and days")
        unknown = set(p) - {"id", "title", "price", "days", "trial_days", "trial_price", "chats"}
        if unknown:
            raise ConfigError(f"{key}.{sorted(unknown)[0]}", "is not a known key",
                              "a plan has only id, title, price, days, trial_days, trial_price and chats")
        pid = parse_text(f"{key}.id", p["id"])
        if not _PLAN_ID.fullmatch(pid):
            raise ConfigError(f"{key}.id", f"{pid!r} is not a plan id", "use 1-32 letters, digits, '-' or '_'")
        if any(x.id == pid for x in plans):
            raise ConfigError(f"{key}.id", f"{pid!r} is used twice", "give every plan its own id")
        title, titles = _plan_title(key, p["title"])
        trial_days = parse_int(f"{key}.trial_days", p.get("trial_days", 0), 0, 3660)
        trial_price = parse_money(f"{key}.trial_price", p["trial_price"]) if "trial_price" in p else None
        if trial_price is not None and not trial_days:
            raise ConfigError(f"{key}.trial_price", "is set without trial_days", "add trial_days = N or remove trial_price")
        plans.append(Plan(pid, title, parse_money(f"{key}.price", p["price"]), parse_int(f"{key}.days", p["days"], 1, 3660),
                          trial_days, trial_price, parse_chat_ids(f"{key}.chats", p.get("chats", [])), titles))
    return tuple(plans)


def _donations(dn: dict) -> DonationsConfig:
    dd = DonationsConfig()
    donations = DonationsConfig(
        enabled=parse_bool("donations.enabled", dn.get("enabled", dd.enabled)),
        min=parse_money("donations.min", dn.get("min", str(dd.min))),
        max=parse_money("donations.max", dn.get("max", str(dd.max))),
        max_open=parse_int("donations.max_open", dn.get("max_open", dd.max_open)),
    )
    if donations.max_open < 1:
        raise ConfigError("donations.max_open", f"is {donations.max_open}", "set at least 1 (e.g. 5000)")
    if donations.min > donations.max:
        raise ConfigError("donations.min", f"{donations.min} is above donations.max {donations.max}", "make min at most max")
    return replace(donations, **donation_extras(dn, donations.min, donations.max))


def require_secrets(config: Config, roles: set[str]) -> None:
    """Secrets that the chosen roles cannot run without."""
    if "web" in roles and not config.yoomoney.notification_secret:
        raise ConfigError("yoomoney.notification_secret", "is not set", "copy the secret from YooMoney's HTTP notifications page into yoomoney.notification_secret_file")
    if ("web" in roles or "billing" in roles) and len(config.links.secret) < 16:
        raise ConfigError("links.secret", "is missing or shorter than 16 bytes", "put a long random string in links.secret_file (e.g. openssl rand -hex 32)")
    if ("web" in roles or "billing" in roles) and not config.yoomoney.wallet:
        raise ConfigError("yoomoney.wallet", "is not set", "write your wallet number, e.g. wallet = \"4100xxxxxxxxxxxx\"")
    if "bot" in roles and not config.telegram.token:
        raise ConfigError("telegram.token", "is not set but the bot role was asked for", "put the token from @BotFather in telegram.token_file, or leave bot out of --roles")


__all__ = [
    "Config", "ConfigError", "ServerConfig", "YooMoneyConfig", "LinksConfig", "RedisConfig", "QueueConfig",
    "LedgerConfig", "TelegramConfig", "ShopConfig", "Plan", "DonationsConfig", "load_config", "build_config",
    "parse_duration", "require_secrets", "replace",
]
