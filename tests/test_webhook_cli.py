"""``ymds api-key`` and ``ymds webhook`` as real subprocesses against a SQLite ledger and a
private redis-server (the CLI test harness of tests/test_cli.py)."""

from __future__ import annotations

import json
import time

from tests.test_cli import CLITestCase
from ymds.billing.ledger import API_SCOPES
from ymds.api.keys import KEY_FORMAT, key_hash


class ApiKeyCommands(CLITestCase):
    async def test_create_list_revoke(self):
        out, err, code = await self.ymds("api-key", "create", "--scopes", "invoices:write,invoices:read", "--name", "shop")
        self.assertEqual(code, 0, err)
        key = out.strip().splitlines()[-1]
        self.assertTrue(KEY_FORMAT.fullmatch(key), out)
        self.assertIn("only its hash is stored", err)
        ledger = await self.ledger()
        stored = await ledger.api_keys.api_key_lookup(key_hash(key))
        self.assertEqual((stored.name, stored.scopes), ("shop", ("invoices:write", "invoices:read")))
        # never stored in clear (read with SQLite itself: closing a plain file handle on the
        # database would drop this process's SQLite locks)
        import sqlite3
        with sqlite3.connect(self.ledger_path) as db:
            self.assertNotIn(key, repr(db.execute("SELECT * FROM api_keys").fetchall()))
        out, err, code = await self.ymds("api-key", "list", "--json")
        self.assertEqual(code, 0, err)
        [listed] = json.loads(out)
        self.assertEqual((listed["id"], listed["scopes"], listed["revoked_at"]), (stored.id, list(stored.scopes), None))
        self.assertNotIn(key, out)
        out, err, code = await self.ymds("api-key", "list")
        self.assertIn(stored.id, out)
        out, err, code = await self.ymds("api-key", "revoke", stored.id)
        self.assertEqual(code, 0, err)
        self.assertIn(f"revoked {stored.id}", out)
        self.assertIsNotNone((await ledger.api_keys.api_key_lookup(key_hash(key))).revoked_at)
        out, err, code = await self.ymds("api-key", "revoke", stored.id)
        self.assertEqual(code, 3)
        self.assertIn("no active API key", err)

    async def test_all_scopes_and_bad_scopes(self):
        out, err, code = await self.ymds("api-key", "create", "--scopes", "all")
        self.assertEqual(code, 0, err)
        ledger = await self.ledger()
        stored = await ledger.api_keys.api_key_lookup(key_hash(out.strip().splitlines()[-1]))
        self.assertEqual(set(stored.scopes), set(API_SCOPES))
        out, err, code = await self.ymds("api-key", "create", "--scopes", "invoices:delete")
        self.assertEqual(code, 1)
        self.assertIn("unknown scope 'invoices:delete'", err)
        out, err, code = await self.ymds("api-key", "create")
        self.assertEqual(code, 1)
        self.assertEqual(len(err.strip().splitlines()), 1)


class WebhookCommands(CLITestCase):
    async def test_add_list_remove(self):
        out, err, code = await self.ymds("webhook", "add", "https://shop.example.org/hook", "--events",
                                         "invoice.paid,subscription.expired")
        self.assertEqual(code, 0, err)
        lines = dict(line.split(": ", 1) for line in out.strip().splitlines())
        endpoint_id, secret = lines["endpoint"], lines["secret"]
        self.assertTrue(secret.startswith("whsec_"))
        ledger = await self.ledger()
        stored = await ledger.webhooks.webhook_endpoint_get(endpoint_id)
        self.assertEqual((stored.url, stored.events, stored.secret),
                         ("https://shop.example.org/hook", ("invoice.paid", "subscription.expired"), secret))
        out, err, code = await self.ymds("webhook", "list", "--json")
        self.assertEqual([e["id"] for e in json.loads(out)], [endpoint_id])
        self.assertNotIn(secret, out)
        out, err, code = await self.ymds("webhook", "remove", endpoint_id)
        self.assertEqual(code, 0, err)
        out, err, code = await self.ymds("webhook", "remove", endpoint_id)
        self.assertEqual(code, 3)
        out, err, code = await self.ymds("webhook", "list", "--json")
        self.assertEqual(json.loads(out), [])

    async def test_refusals(self):
        for args, text in ((["add", "ftp://x/y", "--events", "all"], "http(s) URL"),
                           (["add", "https://x/y", "--events", "invoice.refunded"], "unknown event"),
                           (["redeliver"], "EVENT_ID"), (["redeliver", "--endpoint", "we_x"], "--since"),
                           (["redeliver", "--endpoint", "we_x", "--since", "yesterday"], "not a date")):
            out, err, code = await self.ymds("webhook", *args)
            self.assertEqual(code, 1, args)
            self.assertIn(text, err)
        out, err, code = await self.ymds("webhook", "redeliver", "evt_nope")
        self.assertEqual(code, 3)

    async def test_redeliver_and_log(self):
        ledger = await self.ledger()
        now = time.time()
        await ledger.webhooks.webhook_endpoint_add("we_1", "https://a.example/h", ["*"], "s", now)
        await ledger.webhooks.webhook_emit([("invoice.paid", "invoice.paid:op1", {"n": 1}),
                                   ("invoice.paid", "invoice.paid:op2", {"n": 2})], now - 7200)
        for d in await ledger.webhooks.webhook_deliveries():
            await ledger.webhooks.webhook_record_attempt("we_1", d.event_seq, now - 7000, 200, None, 0.05, "delivered")
        first = (await ledger.webhooks.webhook_deliveries())[0].event_id
        out, err, code = await self.ymds("webhook", "redeliver", first)
        self.assertEqual(code, 0, err)
        self.assertIn("1 pending deliveries to we_1", out)
        self.assertEqual([d.event_id for d in await ledger.webhooks.webhook_deliveries(status="pending")], [first])
        out, err, code = await self.ymds("webhook", "redeliver", "--endpoint", "we_1", "--since", "3h")
        self.assertEqual(code, 0, err)
        self.assertEqual(len(await ledger.webhooks.webhook_deliveries(status="pending")), 2)
        out, err, code = await self.ymds("webhook", "log", "--json")
        self.assertEqual([(a["event_id"], a["outcome"], a["status_code"]) for a in json.loads(out)][0],
                         (first, "delivered", 200))
        out, err, code = await self.ymds("webhook", "log")
        self.assertIn("delivered", out)
