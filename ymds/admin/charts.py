"""Server-rendered SVG charts: revenue as bars stacked by kind, active subscribers as a line.

No JavaScript and no inline styles (CSP stays 'self'): colours come from classes in
/static/admin.css.  Each chart is ``role="img"`` with a title and a description, and the
page puts the same numbers in a table next to it (the text fallback).
"""
from __future__ import annotations

from decimal import Decimal
from typing import Sequence

from twisted.web.template import Tag

from ymds.admin.data import KINDS, CountPoint, RevenuePoint
from ymds.admin.texts import day, number

SVG_NS = "http://www.w3.org/2000/svg"
WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 78, 10, 12, 34


def _nice_ceiling(value: Decimal) -> Decimal:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above ``value`` (a readable axis top)."""
    if value <= 0:
        return Decimal(1)
    scale = Decimal(1)
    while scale * 10 <= value:
        scale *= 10
    while scale > value:
        scale /= 10
    for step in (1, 2, Decimal("2.5"), 5, 10):
        if scale * step >= value:
            return scale * step
    return scale * 10


def _svg(chart_id: str, title: str, description: str, css_class: str) -> Tag:
    return Tag("svg")(
        Tag("title")(title, id=f"{chart_id}-title"), Tag("desc")(description, id=f"{chart_id}-desc"),
        xmlns=SVG_NS, viewBox=f"0 0 {WIDTH} {HEIGHT}", role="img", class_=f"chart {css_class}",
        id=chart_id, preserveAspectRatio="xMidYMid meet", **{"aria-labelledby": f"{chart_id}-title {chart_id}-desc"})


def _axis(svg: Tag, top: Decimal, lang: str, labels: Sequence[tuple[float, str]]) -> None:
    plot_h = HEIGHT - TOP - BOTTOM
    for fraction in (0, Decimal("0.5"), 1):
        y = TOP + plot_h - float(fraction) * plot_h
        svg(Tag("line")(x1=str(LEFT), x2=str(WIDTH - RIGHT), y1=f"{y:.1f}", y2=f"{y:.1f}", class_="grid"))
        svg(Tag("text")(number(int(top * fraction), lang), x=str(LEFT - 8), y=f"{y + 6:.1f}", class_="ylabel"))
    for index, (x, text) in enumerate(labels):
        # the first label starts at its point and the last ends at it, so neither is cut off
        anchor = "start" if index == 0 and len(labels) > 1 else "end" if index == len(labels) - 1 and len(labels) > 1 \
            else "middle"
        svg(Tag("text")(text, x=f"{x:.1f}", y=str(HEIGHT - 8), class_=f"xlabel {anchor}"))


def _x_labels(days: Sequence, x_of, lang: str) -> list[tuple[float, str]]:
    if not days:
        return []
    picks = sorted({0, len(days) // 2, len(days) - 1})
    return [(x_of(i), day(days[i], lang)) for i in picks]


def revenue_bars(points: Sequence[RevenuePoint], lang: str, title: str, description: str,
                 chart_id: str = "revenue") -> Tag:
    """Bars per point, one segment per kind (class ``k-<kind>``), each with a tooltip title."""
    svg = _svg(chart_id, title, description, "chart-revenue")
    totals = [sum((p.money.get(k, Decimal(0)) for k in KINDS), Decimal(0)) for p in points]
    top = _nice_ceiling(max(totals, default=Decimal(0)))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(points))
    bar = max(1.0, slot * 0.8)
    _axis(svg, top, lang, _x_labels([p.start for p in points], lambda i: LEFT + slot * i + slot / 2, lang))
    for i, point in enumerate(points):
        base = 0.0
        x = LEFT + slot * i + (slot - bar) / 2
        for kind in KINDS:
            value = point.money.get(kind, Decimal(0))
            if value <= 0:
                continue
            h = float(value / top) * plot_h
            svg(Tag("rect")(Tag("title")(f"{day(point.start, lang)}: {number(int(value), lang)}"),
                            x=f"{x:.1f}", y=f"{TOP + plot_h - base - h:.1f}", width=f"{bar:.1f}",
                            height=f"{h:.1f}", class_=f"k-{kind}"))
            base += h
    return svg


def subscriber_line(points: Sequence[CountPoint], lang: str, title: str, description: str,
                    chart_id: str = "subscribers") -> Tag:
    """A polyline of the count per day."""
    svg = _svg(chart_id, title, description, "chart-subscribers")
    top = _nice_ceiling(Decimal(max((p.count for p in points), default=0)))
    if top % 2:  # a count axis keeps a whole number at its middle line
        top += 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(points) - 1)
    x_of = (lambda i: LEFT + step * i) if len(points) > 1 else (lambda i: LEFT + plot_w / 2)
    _axis(svg, top, lang, _x_labels([p.day for p in points], x_of, lang))
    coords = " ".join(f"{x_of(i):.1f},{TOP + plot_h - float(Decimal(p.count) / top) * plot_h:.1f}"
                      for i, p in enumerate(points))
    if coords:
        svg(Tag("polyline")(points=coords, class_="line"))
    return svg
