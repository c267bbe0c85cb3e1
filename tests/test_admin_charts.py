"""SVG charts are well-formed and proportional; money and CSV formats; pages render numbers."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from twisted.trial import unittest
from twisted.web.template import flattenString

from tests.support.admin_data import sample_data
from ymds.admin import charts, pages
from ymds.admin.data import CountPoint, RevenuePoint
from ymds.admin.texts import local_time, money

SVG = "{http://www.w3.org/2000/svg}"


def flat(tag) -> bytes:
    out: list = []
    flattenString(None, tag).addCallback(out.append)
    return out[0]


class Charts(unittest.TestCase):
    def test_revenue_bars_well_formed_and_stacked(self):
        points = [RevenuePoint(date(2026, 11, 1) + timedelta(days=i),
                               {"subscription": Decimal(1000 * (i % 3)), "donation": Decimal("250.50")})
                  for i in range(30)]
        root = ET.fromstring(flat(charts.revenue_bars(points, "ru", "Поступления", "<desc & more>")))
        self.assertEqual(root.tag, SVG + "svg")
        self.assertEqual(root.get("role"), "img")
        self.assertEqual(root.find(SVG + "desc").text, "<desc & more>")
        rects = root.findall(SVG + "rect")
        self.assertEqual(len([r for r in rects if r.get("class") == "k-donation"]), 30)
        self.assertEqual(len([r for r in rects if r.get("class") == "k-subscription"]), 20)  # zero days drawn as nothing
        heights = {r.find(SVG + "title").text: float(r.get("height")) for r in rects if r.get("class") == "k-subscription"}
        self.assertAlmostEqual(heights["03.11: 2\u00a0000"], 2 * heights["02.11: 1\u00a0000"], delta=0.2)
        tallest = max(float(r.get("y")) for r in rects)
        self.assertLessEqual(tallest, charts.HEIGHT - charts.BOTTOM)

    def test_empty_and_single_series(self):
        for svg in (charts.revenue_bars([], "en", "t", "d"), charts.subscriber_line([], "en", "t", "d"),
                    charts.subscriber_line([CountPoint(date(2026, 1, 1), 5)], "en", "t", "d")):
            ET.fromstring(flat(svg))

    def test_subscriber_line(self):
        points = [CountPoint(date(2026, 1, 1) + timedelta(days=i), i) for i in range(10)]
        root = ET.fromstring(flat(charts.subscriber_line(points, "en", "t", "d")))
        coords = root.find(SVG + "polyline").get("points").split()
        self.assertEqual(len(coords), 10)
        ys = [float(c.split(",")[1]) for c in coords]
        self.assertEqual(ys, sorted(ys, reverse=True))  # growing count goes up the screen

    def test_nice_ceiling(self):
        self.assertEqual(charts._nice_ceiling(Decimal("0")), 1)
        self.assertEqual(charts._nice_ceiling(Decimal("1990")), 2000)
        self.assertEqual(charts._nice_ceiling(Decimal("2001")), 2500)
        self.assertEqual(charts._nice_ceiling(Decimal("7000")), 10000)


class Formats(unittest.TestCase):
    def test_money(self):
        self.assertEqual(money(Decimal("1990"), "ru"), "1\u00a0990,00\u00a0₽")
        self.assertEqual(money(Decimal("1234567.5"), "en"), "1,234,567.50\u00a0₽")
        self.assertEqual(money("junk", "ru"), "—")

    def test_local_time(self):
        moment = datetime(2026, 11, 29, 21, 30, tzinfo=timezone.utc)
        self.assertEqual(local_time(moment, ZoneInfo("Europe/Moscow"), "ru"), "30.11.2026 00:30")
        self.assertEqual(local_time(moment, ZoneInfo("UTC"), "en"), "2026-11-29 21:30")

    def test_csv_cells_cannot_be_formulas(self):
        self.assertEqual(pages.csv_line(["=HYPERLINK(1)", "a,b", 'q"q']), "'=HYPERLINK(1),\"a,b\",\"q\"\"q\"\r\n")
        self.assertEqual(pages.csv_line(["-12.50", "-1+1", "@x"]), "-12.50,'-1+1,'@x\r\n")

    def test_pages_are_well_formed_xml(self):
        now = datetime(2026, 11, 29, 12, tzinfo=ZoneInfo("Europe/Moscow"))
        data = sample_data(now)
        import asyncio
        ov = asyncio.run(data.overview(now))
        revenue = asyncio.run(data.revenue_series(now, 90, "day"))
        subs = asyncio.run(data.subscriber_series(now, 90))
        for lang in ("ru", "en"):
            body = pages.render_page(lang, "x", pages.overview(lang, now.tzinfo, ov, revenue, subs, 90, "day"),
                                     "/admin", "csrf", "")
            root = ET.fromstring(body.split(b"\n", 1)[1])  # XHTML-serialised by twisted.web.template
            self.assertEqual(root.get("lang"), lang)
            self.assertIn(money(sum(ov.money["7d"].values()), lang).encode(), body)
