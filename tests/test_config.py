"""Configuration: defaults, every key's validation, env overrides, *_file secrets."""
import os
import tempfile
from decimal import Decimal

from twisted.trial import unittest

from ymds.config import ConfigError, load_config, parse_duration, require_secrets

GOOD = {
    "server": {"endpoint": "tcp:8080:interface=127.0.0.1", "public_url": "https://pay.example.org"},
    "yoomoney": {"wallet": "4100123456789012", "notification_secret": "s3cret"},
    "links": {"secret": "0123456789abcdef0123456789abcdef"},
    "plans": [{"id": "month", "title": "1 month", "price": "199.00", "days": 30}],
}


def doc(**sections):
    d = {k: (dict(v) if isinstance(v, dict) else list(v)) for k, v in GOOD.items()}
    for name, values in sections.items():
        if name == "plans":
            d["plans"] = values
        else:
            d.setdefault(name, {}).update(values)
    return d


class DefaultsTests(unittest.TestCase):
    def test_defaults_from_design(self):
        c = load_config(raw={}, env={})
        self.assertEqual(c.server.max_body, 65536)
        self.assertEqual(c.yoomoney.signature, "auto")
        self.assertEqual(c.yoomoney.payment_types, ("AC", "PC"))
        self.assertEqual(c.yoomoney.quickpay_url, "https://yoomoney.ru/quickpay/confirm")
        self.assertEqual(c.links.ttl, 3 * 86400)
        self.assertEqual(c.redis.url, "redis://127.0.0.1:6379/0")
        self.assertEqual(c.redis.prefix, "ymds")
        self.assertEqual(c.telegram.api_url, "https://api.telegram.org")
        self.assertEqual(c.telegram.language, "ru")
        self.assertEqual(c.donations.min, Decimal("10.00"))
        self.assertEqual(c.donations.max, Decimal("100000.00"))
        self.assertFalse(c.yoomoney.sandbox)

    def test_good_document(self):
        c = load_config(raw=doc(), env={})
        self.assertEqual(c.plans[0].price, Decimal("199.00"))
        self.assertIsInstance(c.plans[0].price, Decimal)
        self.assertEqual(c.plan("month").days, 30)
        self.assertIsNone(c.plan("nope"))

    def test_sandbox_points_quickpay_at_itself(self):
        c = load_config(raw=doc(server={"public_url": "https://localhost:8443"}, yoomoney={"sandbox": True}), env={})
        self.assertEqual(c.yoomoney.quickpay_url, "https://localhost:8443/sandbox/quickpay/confirm")


# (section, key, bad value, words the one-line message must contain)
BAD_VALUES = [
    ("server", "endpoint", "http://x", "server.endpoint"),
    ("server", "endpoint", "", "server.endpoint"),
    ("server", "public_url", "ftp://pay.example.org", "server.public_url"),
    ("server", "public_url", "not a url", "server.public_url"),
    ("server", "max_body", "lots", "whole number"),
    ("server", "max_body", 10, "minimum"),
    ("server", "max_body", 10**9, "maximum"),
    ("server", "trusted_proxies", 5, "list"),
    ("yoomoney", "signature", "md5", 'use "auto", "sign" or "sha1"'),
    ("yoomoney", "payment_types", ["MC"], "no longer accepted"),
    ("yoomoney", "payment_types", ["XX"], "not a payment type"),
    ("yoomoney", "payment_types", [], "is empty"),
    ("yoomoney", "wallet", "12345", "wallet number"),
    ("yoomoney", "confirm_with_api", "maybe", "boolean"),
    ("yoomoney", "sandbox", "perhaps", "boolean"),
    ("yoomoney", "quickpay_url", "yoomoney.ru", "yoomoney.quickpay_url"),
    ("yoomoney", "card_fee", "1.5", "between 0 and 1"),
    ("yoomoney", "wallet_fee", "x", "not a rate"),
    ("links", "ttl", "3 weeks", "not a duration"),
    ("links", "ttl", "0s", "positive duration"),
    ("redis", "url", "http://localhost", "not a Redis URL"),
    ("redis", "prefix", "has space", "redis.prefix"),
    ("queue", "concurrency", 0, "minimum"),
    ("queue", "visibility_timeout", "soon", "not a number"),
    ("ledger", "url", "mysql://x/y", "not a ledger URL"),
    ("ledger", "url", "sqlite://", "no file path"),
    ("telegram", "api_url", "telegram", "telegram.api_url"),
    ("telegram", "channel_id", "@mychannel", "-1001234567890"),
    ("telegram", "admins", ["bob"], "whole number"),
    ("telegram", "language", "de", 'use "ru" or "en"'),
    ("telegram", "token", "not-a-token", "@BotFather"),
    ("donations", "enabled", "sometimes", "boolean"),
    ("donations", "min", "-5", "positive amount"),
    ("donations", "max", 100.5, "float"),
    ("donations", "min", "1.001", "two decimal places"),
    ("donations", "min", "200000.00", "above donations.max"),
]


class ValidationTests(unittest.TestCase):
    def test_every_bad_value_is_one_clear_line(self):
        for section, key, value, words in BAD_VALUES:
            with self.subTest(key=f"{section}.{key}", value=value):
                e = self.assertRaises(ConfigError, load_config, raw=doc(**{section: {key: value}}), env={})
                text = str(e)
                self.assertNotIn("\n", text)
                self.assertIn(words, text)
                self.assertTrue(text.startswith("configuration error: "), text)

    def test_unknown_key_and_section(self):
        e = self.assertRaises(ConfigError, load_config, raw=doc(server={"prot": 1}), env={})
        self.assertIn("server.prot: is not a known key", str(e))
        e = self.assertRaises(ConfigError, load_config, raw={"serve": {}}, env={})
        self.assertIn("serve: is not a known section", str(e))

    def test_plans(self):
        cases = [
            ([{"id": "m", "title": "t", "price": "1.00"}], "plans[0].days: is missing"),
            ([{"id": "bad id", "title": "t", "price": "1.00", "days": 1}], "not a plan id"),
            ([{"id": "m", "title": "", "price": "1.00", "days": 1}], "1-100 characters"),
            ([{"id": "m", "title": "t", "price": 1.5, "days": 1}], "float"),
            ([{"id": "m", "title": "t", "price": "0", "days": 1}], "positive amount"),
            ([{"id": "m", "title": "t", "price": "1.00", "days": 0}], "minimum"),
            ([{"id": "m", "title": "t", "price": "1.00", "days": 1, "color": "red"}], "plans[0].color"),
            ([{"id": "m", "title": "t", "price": "1", "days": 1}, {"id": "m", "title": "u", "price": "2", "days": 2}], "used twice"),
            ("month", "array of tables"),
        ]
        for plans, words in cases:
            with self.subTest(plans=plans):
                e = self.assertRaises(ConfigError, load_config, raw=doc(plans=plans), env={})
                self.assertIn(words, str(e))

    def test_confirm_with_api_needs_token(self):
        e = self.assertRaises(ConfigError, load_config, raw=doc(yoomoney={"confirm_with_api": True}), env={})
        self.assertIn("yoomoney.confirm_with_api", str(e))
        c = load_config(raw=doc(yoomoney={"confirm_with_api": True, "api_token": "t"}), env={})
        self.assertTrue(c.yoomoney.confirm_with_api)

    def test_durations(self):
        self.assertEqual(parse_duration("k", "3d"), 259200)
        self.assertEqual(parse_duration("k", "12h"), 43200)
        self.assertEqual(parse_duration("k", "30m"), 1800)
        self.assertEqual(parse_duration("k", "45s"), 45)
        self.assertEqual(parse_duration("k", 90), 90)

    def test_required_secrets_per_role(self):
        c = load_config(raw={}, env={})
        e = self.assertRaises(ConfigError, require_secrets, c, {"web"})
        self.assertIn("yoomoney.notification_secret", str(e))
        c = load_config(raw=doc(), env={})
        require_secrets(c, {"web", "billing"})
        e = self.assertRaises(ConfigError, require_secrets, c, {"bot"})
        self.assertIn("telegram.token", str(e))


class LayersTests(unittest.TestCase):
    def test_env_overrides_file(self):
        c = load_config(raw=doc(), env={"YMDS_SERVER_MAX_BODY": "131072", "YMDS_REDIS_URL": "unix:///run/r.sock?db=2",
                                        "YMDS_YOOMONEY_PAYMENT_TYPES": "AC", "YMDS_TELEGRAM_ADMINS": "1,2",
                                        "YMDS_UNRELATED": "x", "OTHER": "y"})
        self.assertEqual(c.server.max_body, 131072)
        self.assertEqual(c.redis.url, "unix:///run/r.sock?db=2")
        self.assertEqual(c.yoomoney.payment_types, ("AC",))
        self.assertEqual(c.telegram.admins, (1, 2))

    def test_env_values_are_validated(self):
        e = self.assertRaises(ConfigError, load_config, raw=doc(), env={"YMDS_DONATIONS_ENABLED": "maybe"})
        self.assertIn("donations.enabled", str(e))

    def test_overrides_beat_env(self):
        c = load_config(raw=doc(), env={"YMDS_REDIS_PREFIX": "env"}, overrides={"redis.prefix": "cli"})
        self.assertEqual(c.redis.prefix, "cli")

    def test_toml_file_and_secret_files(self):
        d = tempfile.mkdtemp()
        with open(os.path.join(d, "ns"), "w") as f:
            f.write("from-file\n")
        with open(os.path.join(d, "ymds.toml"), "w") as f:
            f.write('[yoomoney]\nwallet = "4100123456789012"\nnotification_secret_file = "ns"\n'
                    '[ledger]\nurl = "sqlite:///ledger.sqlite3"\n'
                    '[[plans]]\nid = "m"\ntitle = "Month"\nprice = "99.50"\ndays = 30\n')
        c = load_config(path=os.path.join(d, "ymds.toml"), env={})
        self.assertEqual(c.yoomoney.notification_secret, "from-file")
        self.assertEqual(c.ledger.url, "sqlite:///" + os.path.join(d, "ledger.sqlite3"))
        self.assertEqual(c.plans[0].price, Decimal("99.50"))

    def test_missing_secret_file(self):
        e = self.assertRaises(ConfigError, load_config, raw=doc(links={"secret_file": "/nonexistent/ymds-secret"}), env={})
        self.assertIn("links.secret_file: cannot read /nonexistent/ymds-secret", str(e))

    def test_missing_or_broken_toml(self):
        e = self.assertRaises(ConfigError, load_config, path="/nonexistent/ymds.toml", env={})
        self.assertIn("does not exist", str(e))
        d = tempfile.mkdtemp()
        path = os.path.join(d, "bad.toml")
        with open(path, "w") as f:
            f.write("[server\n")
        e = self.assertRaises(ConfigError, load_config, path=path, env={})
        self.assertIn("not valid TOML", str(e))
