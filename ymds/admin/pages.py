"""The dashboard's HTML: one layout template (ymds/web/templates/admin_layout.xml) and the
content of each page built from the data records.  Rendering is synchronous; the resource
fetches the data first.  Every form of an action carries the session's CSRF token and a
fresh idempotency key, so submitting the same rendered form twice is applied once.
"""
from __future__ import annotations

import os
import re
import secrets
from datetime import datetime
from decimal import Decimal
from typing import Iterable, Mapping, Sequence
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from twisted.python.filepath import FilePath
from twisted.web.template import Element, Tag, XMLFile, flattenString, renderer, tags

from ymds.admin import charts
from ymds.admin.data import (KINDS, PERIODS, Codes, CountPoint, DeadLetter, Overview, PaymentFilter, PaymentPage,
                             PaymentRow, QuarantineItem, RevenuePoint, StreamAlert, Subscriber, WebhookDelivery)
from ymds.admin.texts import local_time, money, number, texts
from ymds.web.i18n import STATE_WORDS

TEMPLATES = FilePath(os.path.join(os.path.dirname(os.path.dirname(__file__)), "web", "templates"))
NAV = (("", "nav_overview"), ("payments", "nav_payments"), ("subscribers", "nav_subscribers"),
       ("quarantine", "nav_quarantine"), ("dead-letters", "nav_dead"), ("webhooks", "nav_webhooks"),
       ("codes", "nav_codes"), ("alerts", "nav_alerts"))
LAST_PAYMENTS = 5  # on the overview; the payments page has the rest
PAYMENT_STATUSES = ("paid", "overpaid", "underpaid", "late", "unmatched", "held")


class AdminLayout(Element):
    loader = XMLFile(TEMPLATES.child("admin_layout.xml"))

    def __init__(self, lang: str, title: str, content: Tag, path: str, csrf: str | None, active: str | None,
                 sandbox: bool = False):
        super().__init__()
        self.lang, self.title, self.body, self.path = lang, title, content, path
        self.csrf, self.active = csrf, active
        self.sandbox = sandbox  # yoomoney.sandbox: every page says so (issue 20)

    @renderer
    def page(self, request, tag):
        t = texts(self.lang)
        other = "en" if self.lang == "ru" else "ru"
        separator = "&" if "?" in self.path else "?"
        return tag.fillSlots(lang=self.lang, title=f"{self.title} · {t['title']}",
                             switch_href=f"{self.path}{separator}lang={other}",
                             **{f"t_{k}": v for k, v in t.items()})

    @renderer
    def sandbox_banner(self, request, tag):
        from ymds.web.i18n import texts as page_texts
        return tag(page_texts(self.lang)["sandbox_banner"]) if self.sandbox else ""

    @renderer
    def sign_out(self, request, tag):
        if self.csrf is None:
            return ""
        return action_form("/admin/logout", self.csrf, texts(self.lang)["sign_out"], "link-button")

    @renderer
    def nav(self, request, tag):
        if self.csrf is None:
            return ""
        t = texts(self.lang)
        items = []
        for name, key in NAV:
            link = tags.a(t[key], href="/admin/" + name if name else "/admin")
            if name == self.active:
                link(**{"aria-current": "page"})
            items.append(tags.li(link))
        return tags.nav(tags.ul(items), class_="admin-nav", **{"aria-label": t["nav_label"]})

    @renderer
    def content(self, request, tag):
        return tag(self.body)


def render_page(lang: str, title: str, content: Tag, path: str, csrf: str | None = None,
                active: str | None = None, sandbox: bool = False) -> bytes:
    out: list[bytes] = []
    failures: list = []
    layout = AdminLayout(lang, title, content, path, csrf, active, sandbox)
    flattenString(None, layout).addCallbacks(
        out.append, failures.append)
    if failures:
        failures[0].raiseException()
    return b"<!DOCTYPE html>\n" + out[0]


def action_form(action: str, csrf: str, label: str, button_class: str = "button",
                fields: Iterable[tuple[str, str]] = (), extra: Iterable[Tag] = ()) -> Tag:
    hidden = [tags.input(type="hidden", name="csrf", value=csrf),
              tags.input(type="hidden", name="idem", value=secrets.token_urlsafe(16))]
    hidden += [tags.input(type="hidden", name=k, value=v) for k, v in fields]
    return tags.form(hidden, list(extra), tags.button(label, type="submit", class_=button_class),
                     method="post", action=action, class_="action")


def message(lang: str, heading: str, text: str, extra: Iterable[Tag] = ()) -> Tag:
    """A card with a heading and a sentence; `backticked` words (commands) are shown as code."""
    parts = text.split("`")
    sentence = [tags.code(part) if index % 2 else part for index, part in enumerate(parts)]
    return tags.section(tags.h1(heading), tags.p(sentence), list(extra), class_="card")


def login_form(lang: str, token: str) -> Tag:
    t = texts(lang)
    form = tags.form(tags.input(type="hidden", name="t", value=token),
                     tags.button(t["login_button"], type="submit", class_="button"),
                     method="post", action="/admin/login")
    return message(lang, t["login_title"], t["login_text"], [form])


def notice(lang: str, key: str | None, n: str | None) -> Tag | str:
    t = texts(lang)
    if key == "done_n" and n and n.isdigit():
        return tags.p(t["done_n"].format(n=n), class_="notice", role="status")
    if key in ("done", "already_done"):
        return tags.p(t[key], class_="notice", role="status")
    return ""


def _table(caption: str, head: Sequence[str], rows: Sequence[Sequence], lang: str, stacked: bool = True) -> Tag:
    """A table under a visible heading (so the caption is for screen readers only).

    ``stacked``: on a phone each row becomes a small card of "label: value" lines (the
    labels come from ``data-label`` through CSS), so wide tables need no sideways scrolling.
    """
    if not rows:
        return tags.p(texts(lang)["nothing"], class_="hint")
    body = [tags.tr([tags.td(cell, **{"data-label": label}) for label, cell in zip(head, row)]) for row in rows]
    table = tags.table(tags.caption(caption, class_="sr-only"),
                       tags.thead(tags.tr([tags.th(h, scope="col") for h in head])),
                       tags.tbody(body), class_="stacked" if stacked else "plain")
    return tags.div(table, class_="table-wrap", tabindex="0", role="region", **{"aria-label": caption})


def _payment_rows(rows: Sequence[PaymentRow], lang: str, tz: ZoneInfo) -> list[list]:
    t = texts(lang)
    return [[local_time(p.at, tz, lang), tags.span(money(p.amount, lang), class_="num"),
             t.get(f"kind_{p.kind}", p.kind), status_word(lang, p.status), p.label, p.chat or "—"] for p in rows]


def status_word(lang: str, status: str) -> str:
    own = texts(lang).get(f"payment_{status}")
    return own or STATE_WORDS.get(lang, STATE_WORDS["ru"]).get(status, status)


def _payment_head(lang: str) -> list[str]:
    t = texts(lang)
    return [t["col_time"], t["col_amount"], t["col_kind"], t["col_status"], t["col_label"], t["col_chat"]]


# --- overview ---------------------------------------------------------------------------------

def overview(lang: str, tz: ZoneInfo, ov: Overview, revenue: Sequence[RevenuePoint],
             subscribers: Sequence[CountPoint], days: int, bucket: str) -> Tag:
    t = texts(lang)
    warnings = []
    if ov.open_quarantine:
        warnings.append(tags.li(tags.a(t["warn_quarantine"].format(n=number(ov.open_quarantine, lang)),
                                       href="/admin/quarantine")))
    if ov.dead_letters:
        warnings.append(tags.li(tags.a(t["warn_dead"].format(n=number(ov.dead_letters, lang)),
                                       href="/admin/dead-letters")))
    money_rows = []
    for period in PERIODS:
        by_kind = ov.money.get(period, {})
        total = sum((by_kind.get(k, Decimal(0)) for k in KINDS), Decimal(0))
        money_rows.append([tags.strong(t[period])] + [tags.span(money(by_kind.get(k, 0), lang), class_="num")
                                                      for k in KINDS] + [tags.strong(money(total, lang), class_="num")])
    counts = tags.dl(
        [(tags.div(tags.dt(t[key]), tags.dd(number(value, lang), class_="big")))
         for key, value in (("active_subscribers", ov.active_subscribers), ("new_subscribers", ov.new_subscribers),
                            ("lapsed_subscribers", ov.lapsed_subscribers))], class_="counts")
    return tags.div(
        tags.h1(t["nav_overview"]),
        tags.ul(warnings, class_="warnings") if warnings else "",
        tags.section(tags.h2(t["money_in"]),
                     _table(t["money_in"], [t["col_period"]] + [t[f"kind_{k}"] for k in KINDS] + [t["total"]], money_rows, lang),
                     counts, class_="card money"),
        tags.div(revenue_section(lang, revenue, days, bucket), subscriber_section(lang, subscribers, days),
                 class_="overview-grid"),
        tags.section(tags.h2(t["last_payments"]),
                     _table(t["last_payments"], _payment_head(lang), _payment_rows(ov.last_payments[:LAST_PAYMENTS], lang, tz), lang),
                     tags.p(tags.a(t["nav_payments"] + " →", href="/admin/payments")), class_="card"))


def _range_links(lang: str, days: int) -> Tag:
    t = texts(lang)
    links = []
    for n in (30, 90, 365):
        link = tags.a(t["days_n"].format(n=n), href=f"/admin?days={n}")
        if n == days:
            link(**{"aria-current": "true"})
        links.append(tags.li(link))
    return tags.ul(links, class_="ranges")


def revenue_section(lang: str, points: Sequence[RevenuePoint], days: int, bucket: str) -> Tag:
    t = texts(lang)
    desc = t["revenue_chart_desc"].format(days=days, bucket=t[f"bucket_{bucket}"])
    legend = tags.ul([tags.li(tags.span(class_=f"swatch k-{k}", **{"aria-hidden": "true"}), t[f"kind_{k}"])
                      for k in KINDS], class_="legend")
    rows = [[p.start.isoformat()] + [tags.span(money(p.money.get(k, 0), lang), class_="num") for k in KINDS]
            for p in points]
    table = _table(desc, [t["col_date"]] + [t[f"kind_{k}"] for k in KINDS], rows, lang, stacked=False)
    return tags.section(tags.h2(t["revenue_chart"]), _range_links(lang, days),
                        tags.figure(charts.revenue_bars(points, lang, t["revenue_chart"], desc), legend),
                        tags.details(tags.summary(t["table_fallback"]), table), class_="card")


def subscriber_section(lang: str, points: Sequence[CountPoint], days: int) -> Tag:
    t = texts(lang)
    desc = t["subs_chart_desc"].format(days=days)
    table = _table(desc, [t["col_date"], t["col_count"]], [[p.day.isoformat(), number(p.count, lang)] for p in points],
                   lang, stacked=False)
    return tags.section(tags.h2(t["subs_chart"]),
                        tags.figure(charts.subscriber_line(points, lang, t["subs_chart"], desc)),
                        tags.details(tags.summary(t["table_fallback"]), table), class_="card")


# --- payments ---------------------------------------------------------------------------------

def filter_query(where: PaymentFilter, tz: ZoneInfo, **more: str) -> str:
    values = {"since": where.since.astimezone(tz).date().isoformat() if where.since else "",
              "until": where.until.astimezone(tz).date().isoformat() if where.until else "",
              "status": where.status, "label": where.label, "chat": where.chat, **more}
    return urlencode({k: v for k, v in values.items() if v})


def payments(lang: str, tz: ZoneInfo, where: PaymentFilter, page: PaymentPage, raw: Mapping[str, str]) -> Tag:
    t = texts(lang)

    def field(name: str, label: str, kind: str = "text") -> Tag:
        return tags.div(tags.label(label, for_=f"f-{name}"),
                        tags.input(type=kind, id=f"f-{name}", name=name, value=raw.get(name, "")))

    status = tags.select([tags.option(t["status_any"], value="")] +
                         [tags.option(status_word(lang, s), value=s, **({"selected": "selected"} if s == where.status else {}))
                          for s in PAYMENT_STATUSES], id="f-status", name="status")
    form = tags.form(field("since", t["since"], "date"), field("until", t["until"], "date"),
                     tags.div(tags.label(t["col_status"], for_="f-status"), status),
                     field("label", t["col_label"]), field("chat", t["col_chat"]),
                     tags.button(t["filter"], type="submit", class_="button"),
                     method="get", action="/admin/payments", class_="filters")
    query = filter_query(where, tz)
    more: Tag | str = ""
    if page.next_cursor:
        more = tags.p(tags.a(t["older"] + " →", href="/admin/payments?" + filter_query(where, tz, cursor=page.next_cursor)))
    return tags.div(tags.h1(t["nav_payments"]), tags.section(form, class_="card"),
                    tags.p(tags.a(t["export_csv"], href="/admin/payments.csv" + ("?" + query if query else ""),
                                  download="payments.csv")),
                    tags.section(_table(t["nav_payments"], _payment_head(lang), _payment_rows(page.rows, lang, tz), lang),
                                 more, class_="card"))


# --- subscribers, quarantine, dead letters, webhooks -----------------------------------------

def subscribers(lang: str, tz: ZoneInfo, found: Sequence[Subscriber], search: str, csrf: str) -> Tag:
    t = texts(lang)
    rows = []
    for s in found:
        who = [("chat_id", s.chat_id)]
        days = tags.input(type="number", name="days", value="30", min="1", max="3650", class_="days",
                          **{"aria-label": f"{t['extend_days']} ({s.name or s.chat_id})"})
        actions = tags.div(action_form("/admin/subscribers/extend", csrf, t["extend"], "button small", who, [days]),
                           action_form("/admin/subscribers/revoke", csrf, t["revoke"], "button small danger", who),
                           class_="actions")
        rows.append([f"{s.name} ({s.chat_id})" if s.name else s.chat_id, s.plan,
                     local_time(s.expires_at, tz, lang), t.get(f"status_{s.status}", s.status), actions])
    form = tags.form(tags.label(t["search"], for_="f-q"), tags.input(type="search", id="f-q", name="q", value=search),
                     tags.button(t["filter"], type="submit", class_="button"), method="get",
                     action="/admin/subscribers", class_="filters")
    head = [t["col_user"], t["col_plan"], t["col_expires"], t["col_status"], t["col_actions"]]
    return tags.div(tags.h1(t["nav_subscribers"]), tags.section(form, class_="card"),
                    tags.section(_table(t["nav_subscribers"], head, rows, lang), class_="card"))


def quarantine(lang: str, tz: ZoneInfo, items: Sequence[QuarantineItem], csrf: str) -> Tag:
    t = texts(lang)
    rows = [[local_time(q.received_at, tz, lang), tags.span(money(q.amount, lang), class_="num"), q.reason,
             q.operation_id, action_form("/admin/quarantine/reverify", csrf, t["reverify"], "button small",
                                         [("id", q.id)])] for q in items]
    head = [t["col_time"], t["col_amount"], t["col_reason"], t["col_operation"], t["col_actions"]]
    everything = action_form("/admin/quarantine/reverify", csrf, t["reverify_all"], "button",
                             [("id", "*")]) if items else ""
    return tags.div(tags.h1(t["nav_quarantine"]),
                    tags.section(_table(t["nav_quarantine"], head, rows, lang), everything, class_="card"))


def dead_letters(lang: str, tz: ZoneInfo, letters: Sequence[DeadLetter], csrf: str) -> Tag:
    t = texts(lang)
    rows = [[local_time(d.failed_at, tz, lang), f"{d.queue}: {d.job}", d.error, str(d.attempts),
             action_form("/admin/dead-letters/replay", csrf, t["replay"], "button small",
                         [("queue", d.queue), ("id", d.id)])]
            for d in letters]
    head = [t["col_time"], t["col_job"], t["col_error"], t["col_attempts"], t["col_actions"]]
    return tags.div(tags.h1(t["nav_dead"]), tags.section(_table(t["nav_dead"], head, rows, lang), class_="card"))


def webhooks(lang: str, tz: ZoneInfo, deliveries: Sequence[WebhookDelivery], csrf: str) -> Tag:
    t = texts(lang)
    rows = [[local_time(w.last_at, tz, lang), w.url, w.event, t.get(f"status_{w.status}", w.status), str(w.attempts),
             action_form("/admin/webhooks/redeliver", csrf, t["redeliver"], "button small", [("id", w.id)])]
            for w in deliveries]
    head = [t["col_time"], t["col_url"], t["col_event"], t["col_status"], t["col_attempts"], t["col_actions"]]
    return tags.div(tags.h1(t["nav_webhooks"]), tags.section(_table(t["nav_webhooks"], head, rows, lang), class_="card"))


def codes(lang: str, tz: ZoneInfo, found: Codes, csrf: str) -> Tag:
    """Promo codes (with a button to disable an active one) and gift/access codes."""
    t = texts(lang)
    promo = []
    for p in found.promo:
        discount = f"{p.percent}\u00a0%" if p.percent is not None else money(p.off or 0, lang)
        used = f"{number(p.used, lang)} / {number(p.uses, lang) if p.uses is not None else t['unlimited']}"
        state = t["promo_active"] if p.active else t["status_disabled"]
        button = action_form("/admin/codes/disable", csrf, t["disable"], "button small", [("code", p.code)]) \
            if p.active else "—"
        promo.append([p.code, discount, used, local_time(p.ends_at, tz, lang), state, button])
    access = [[c.code + (f" ({t['code_gift']})" if c.gift else ""), c.plan or "—", number(c.days, lang),
               f"{number(c.used, lang)} / {number(c.uses, lang)}", local_time(c.expires_at, tz, lang)]
              for c in found.access]
    return tags.div(
        tags.h1(t["nav_codes"]),
        tags.section(tags.h2(t["promo_codes"]), _table(t["promo_codes"], [t["col_code"], t["col_discount"], t["col_used"], t["col_expires"],
                                                t["col_status"], t["col_actions"]], promo, lang), class_="card"),
        tags.section(tags.h2(t["access_codes"]), _table(t["access_codes"], [t["col_code"], t["col_plan"], t["col_days"], t["col_used"],
                                                 t["col_expires"]], access, lang), class_="card"))


def stream_alerts(lang: str, tz: ZoneInfo, alerts: Sequence[StreamAlert], csrf: str) -> Tag:
    """The stream overlay's recent donation alerts with Skip and Replay (issue 17); an alert
    not yet published has no entry to act on."""
    t = texts(lang)
    rows = []
    for a in alerts:
        if a.entry_id is None:
            actions: Tag | str = t["alert_waiting"]
        else:
            target = [("id", a.entry_id)]
            actions = tags.div(action_form("/admin/alerts/skip", csrf, t["skip_alert"], "button small danger", target),
                               action_form("/admin/alerts/replay", csrf, t["replay_alert"], "button small", target),
                               class_="actions")
        rows.append([local_time(a.at, tz, lang), tags.span(money(a.amount, lang), class_="num"),
                     a.name or t["anonymous"], a.operation_id, actions])
    head = [t["col_time"], t["col_amount"], t["col_donor"], t["col_operation"], t["col_actions"]]
    return tags.div(tags.h1(t["nav_alerts"]), tags.p(t["alerts_hint"], class_="hint"),
                    tags.section(_table(t["nav_alerts"], head, rows, lang), class_="card"))


_NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


def csv_line(cells: Sequence[str]) -> str:
    """One CSV line; a cell a spreadsheet would run as a formula gets a leading apostrophe."""
    out = []
    for cell in cells:
        text = str(cell)
        if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NUMBER.match(text):
            text = "'" + text
        if any(c in text for c in ',"\r\n'):
            text = '"' + text.replace('"', '""') + '"'
        out.append(text)
    return ",".join(out) + "\r\n"


def csv_rows(rows: Sequence[PaymentRow], tz: ZoneInfo) -> bytes:
    return "".join(csv_line([p.at.astimezone(tz).isoformat(), str(p.amount), p.kind, p.status, p.label,
                             p.chat or "", p.operation_id or "", p.id]) for p in rows).encode("utf-8")


CSV_HEADER = csv_line(["time", "amount", "kind", "status", "label", "chat", "operation_id", "id"]).encode()


def parse_day(text: str, tz: ZoneInfo, end: bool = False) -> datetime | None:
    """A yyyy-mm-dd from a date field as the start (or the end) of that local day; ValueError if bad."""
    if not text:
        return None
    start = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=tz)
    if end:
        return start.replace(hour=23, minute=59, second=59, microsecond=999999)
    return start
