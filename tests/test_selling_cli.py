"""``ymds promo`` and ``ymds codes`` (issue 19) as a real child process against a SQLite ledger."""
from __future__ import annotations

import json
import time
from decimal import Decimal

from tests.test_cli import CLITestCase


class PromoCommandTests(CLITestCase):
    async def test_add_list_disable(self):
        out, err, code = await self.ymds("promo", "add", "spring", "--percent", "20", "--plans", "month",
                                         "--uses", "5", "--per-user", "1", "--from", "2026-01-01", "--until", "30d",
                                         "--first-only")
        self.assertEqual(code, 0, err)
        self.assertIn("promo code SPRING added", out)
        self.assertIn("start=promo_SPRING", out)
        out, err, code = await self.ymds("promo", "add", "FIXED", "--off", "49.90")
        self.assertEqual(code, 0, err)
        out, err, code = await self.ymds("promo", "list", "--json")
        self.assertEqual(code, 0, err)
        listed = {p["code"]: p for p in json.loads(out)}
        spring = listed["SPRING"]
        self.assertEqual((spring["percent"], spring["plans"], spring["uses"], spring["per_user"], spring["first_only"]),
                         (20, ["month"], 5, 1, True))
        self.assertEqual((spring["used"], spring["active"]), (0, True))
        self.assertLess(abs(spring["until"] - (time.time() + 30 * 86400)), 600)  # "30d" from the run
        self.assertEqual(Decimal(listed["FIXED"]["off"]), Decimal("49.90"))
        out, err, code = await self.ymds("promo", "list")
        self.assertIn("SPRING", out)
        self.assertIn("0/5", out)
        out, err, code = await self.ymds("promo", "disable", "spring")
        self.assertEqual(code, 0, err)
        out, err, code = await self.ymds("promo", "disable", "spring")
        self.assertEqual(code, 3)
        self.assertIn("unknown or already disabled", err)
        ledger = await self.ledger()
        self.assertIsNotNone((await ledger.promo.get("SPRING")).disabled_at)

    async def test_refusals_are_one_line_with_status_1(self):
        for args, expected in [
            (("promo", "add", "X"), "--percent N or --off AMOUNT"),
            (("promo", "add", "X", "--percent", "10", "--off", "5"), "--percent N or --off AMOUNT"),
            (("promo", "add", "X", "--percent", "150"), "between 1 and 100"),
            (("promo", "add", "X", "--off", "abc"), "is not an amount"),
            (("promo", "add", "X", "--percent", "10", "--plans", "week"), "unknown plan 'week'"),
            (("promo", "add", "bad code!", "--percent", "10"), "1-32 letters"),
            (("promo", "add", "X", "--percent", "10", "--from", "2026-02-01", "--until", "2026-01-01"), "after --from"),
        ]:
            out, err, code = await self.ymds(*args)
            self.assertEqual(code, 1, (args, err))
            self.assertIn(expected, err, args)
            self.assertEqual(err.count("\n"), 1, err)
        await self.ymds("promo", "add", "TWICE", "--percent", "10")
        out, err, code = await self.ymds("promo", "add", "twice", "--percent", "15")
        self.assertEqual(code, 1)
        self.assertIn("exists already", err)


class CodesCommandTests(CLITestCase):
    async def test_add_prints_codes_that_redeem(self):
        out, err, code = await self.ymds("codes", "add", "--plan", "month", "--count", "3")
        self.assertEqual(code, 0, err)
        codes = out.split()
        self.assertEqual(len(set(codes)), 3)
        self.assertIn("3 code(s) for plan month (30 days), 1 use(s) each", err)
        out, err, code = await self.ymds("codes", "add", "--days", "7", "--uses", "2", "--until", "30d", "--json")
        self.assertEqual(code, 0, err)
        made = json.loads(out)
        self.assertEqual((len(made["codes"]), made["days"], made["uses"], made["plan"]), (1, 7, 2, None))
        ledger = await self.ledger()
        now = time.time()
        _, sub = await ledger.codes.redeem(codes[0], 501, now)
        self.assertEqual(sub.plan, "month")
        self.assertEqual(sub.ends_at, now + 30 * 86400)
        [multi] = made["codes"]
        await ledger.codes.redeem(multi, 502, now)
        await ledger.codes.redeem(multi, 503, now)
        self.assertEqual((await ledger.codes.get(multi)).used, 2)

    async def test_refusals(self):
        for args, expected in [
            (("codes", "add"), "--plan P or --days N"),
            (("codes", "add", "--plan", "month", "--days", "3"), "--plan P or --days N"),
            (("codes", "add", "--plan", "week"), "unknown plan 'week'"),
            (("codes", "add", "--days", "3", "--until", "2020-01-01"), "in the future"),
        ]:
            out, err, code = await self.ymds(*args)
            self.assertEqual(code, 1, (args, err))
            self.assertIn(expected, err, args)


class ExportPromoTests(CLITestCase):
    async def test_export_shows_the_promo_code(self):
        ledger = await self.ledger()
        now = time.time()
        await ledger.promo.add("HALF", now, percent=50)
        invoice = await ledger.promo.discounted_invoice("HALF", 5, 5, "month", 30, Decimal("199.00"), now, 3600)
        await self.pay(ledger, amount="99.50", label=invoice.label, now=now)
        await self.pay(ledger, chat_id=6, now=now)
        await ledger.close()
        out, err, code = await self.ymds("export", "--format", "json")
        self.assertEqual(code, 0, err)
        records = json.loads(out)
        self.assertEqual(sorted((r["withdraw_amount"], r["promo_code"]) for r in records),
                         [("199.00", ""), ("99.50", "HALF")])
        out, err, code = await self.ymds("export", "--format", "csv")
        self.assertIn("promo_code", out.splitlines()[0])
