"""Server-rendered pages (twisted.web.template): layout, landing, pay, thanks, messages.

Every text comes from :mod:`ymds.web.i18n`; the root tag of each template fills the
``t_*`` slots with the texts of the chosen language, so templates hold structure only.
Rendering here is synchronous (no Deferreds inside), so pages can be cached as bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable, Mapping
from urllib.parse import quote

import segno
from twisted.web.template import Element, XMLFile, XMLString, flattenString, renderer, tags
from twisted.python.filepath import FilePath

from ymds.localtime import moment_text
from ymds.money import amount_text
from ymds.web.bot_link import subscribe_url
from ymds.web.i18n import STATE_WORDS, texts

TEMPLATES = FilePath(os.path.join(os.path.dirname(__file__), "templates"))

DOCTYPE = b"<!DOCTYPE html>\n"

# States after which nothing more will happen to an invoice from the payer's side.
FINAL_STATES = frozenset({"paid", "overpaid", "underpaid", "late", "expired"})
PAID_STATES = frozenset({"paid", "overpaid", "late"})


def _text_slots(lang: str) -> dict[str, str]:
    return {f"t_{k}": v for k, v in texts(lang).items()}


class _Translated(Element):
    """An element whose template root uses ``t:render="texts"``."""

    def __init__(self, lang: str, loader=None):
        super().__init__(loader)
        self.lang = lang

    @renderer
    def texts(self, request, tag):
        return tag.fillSlots(lang=self.lang, **_text_slots(self.lang))


@dataclass(frozen=True)
class SiteLook:
    """What every payer page shows of the configuration: the shop's name ([shop] name, else
    the generic title), the SANDBOX banner (yoomoney.sandbox) and the bot's t.me link."""
    shop_name: str = ""
    sandbox: bool = False
    bot_url: str = ""


def site_look(config) -> SiteLook:
    """The :class:`SiteLook` of ``config`` (a default one for None)."""
    if config is None:
        return SiteLook()
    bot = config.telegram.bot_username
    return SiteLook(config.shop.name, config.yoomoney.sandbox, f"https://t.me/{bot}" if bot else "")


class Layout(Element):
    loader = XMLFile(TEMPLATES.child("layout.xml"))

    def __init__(self, lang: str, title: str, content: Element, switch_href: str, head: Iterable = (),
                 look: SiteLook | None = None):
        super().__init__()
        self.look = look or SiteLook()
        self.lang = lang
        self.title = title
        self.body = content
        self.switch_href = switch_href
        self.head = list(head)

    @renderer
    def page(self, request, tag):
        t = texts(self.lang)
        name = self.look.shop_name or t["site_title"]
        return tag.fillSlots(lang=self.lang, title=f"{self.title} · {name}", site_name=name,
                             switch_href=self.switch_href, **_text_slots(self.lang))

    @renderer
    def sandbox_banner(self, request, tag):
        return tag(texts(self.lang)["sandbox_banner"]) if self.look.sandbox else ""

    @renderer
    def head_extra(self, request, tag):
        return self.head

    @renderer
    def content(self, request, tag):
        return tag(self.body)


def flatten(element: Element) -> bytes:
    """Render synchronously (all our renderers are synchronous)."""
    out: list[bytes] = []
    failures: list = []
    flattenString(None, element).addCallbacks(out.append, failures.append)
    if failures:
        failures[0].raiseException()
    return DOCTYPE + out[0]


def same_site_path(path: str) -> str:
    """``path`` as a link that cannot leave this site.

    A request for ``//evil.example/x`` (or ``/\\evil.example``, which browsers read the
    same way) would otherwise become a protocol-relative link to another host: backslashes
    and anything outside the URL path alphabet are percent-encoded, and leading slashes
    collapse to one.
    """
    quoted = quote(path, safe="/%:@&=+$,;~!*'()-._?")
    return "/" + quoted.lstrip("/")


def switch_href(path: str, lang: str) -> str:
    """The link to the same page in the other language (the language is remembered in a cookie).

    Always a same-site absolute path (see :func:`same_site_path`)."""
    other = "en" if lang == "ru" else "ru"
    path = same_site_path(path)
    separator = "&" if "?" in path else "?"
    return f"{path}{separator}lang={other}"


def page(lang: str, title_key: str, content: Element, path: str, head: Iterable = (),
         look: SiteLook | None = None) -> bytes:
    return flatten(Layout(lang, texts(lang)[title_key], content, switch_href(path, lang), head, look))


def owner_zone(config) -> str:
    """The zone every time on the pages is shown in (``[server] timezone``; UTC without a config)."""
    server = getattr(config, "server", None)
    return getattr(server, "timezone", "") or "UTC"


def format_money(amount) -> str:
    return f"{Decimal(amount).quantize(Decimal('0.01'))}"


def display_money(amount, lang: str) -> str:
    """An amount as people of ``lang`` write it (the ₽ sign is the template's): "1 990,00"
    in ru (a no-break space groups thousands), "1,990.00" in en."""
    return amount_text(Decimal(amount), lang)


# --- landing and donation form -------------------------------------------------------------

class Landing(_Translated):
    loader = XMLFile(TEMPLATES.child("landing.xml"))

    def __init__(self, lang: str, config, values: Mapping[str, str] | None = None,
                 errors: Mapping[str, str] | None = None, parts: Mapping[str, Element] | None = None,
                 bot_username: str = ""):
        super().__init__(lang)
        self.config = config
        self.values = dict(values or {})
        self.errors = dict(errors or {})
        self.parts = dict(parts or {})
        self.bot_username = bot_username  # the "Subscribe in Telegram" buttons' bot (ymds.web.bot_link)

    @renderer
    def part(self, request, tag):
        """A creator piece (issue 17, ymds.web.donation_parts) named by the tag's data-part, or nothing."""
        return self.parts.get(tag.attributes.get("data-part", ""), "")

    @renderer
    def donations(self, request, tag):
        if not self.config.donations.enabled:
            return tags.section(tags.p(texts(self.lang)["donations_off"]), class_="card")
        d = self.config.donations
        hint = texts(self.lang)["donate_amount_hint"].format(min=display_money(d.min, self.lang),
                                                             max=display_money(d.max, self.lang))
        return tag.fillSlots(amount=self.values.get("amount", ""), name=self.values.get("name", ""),
                             message=self.values.get("message", ""), amount_hint=hint)

    def _error(self, field, tag):
        message = self.errors.get(field)
        if not message:
            return ""
        return tag(message, id=f"{field}-error")

    def _field(self, field, tag):
        if self.errors.get(field):
            described = " ".join(x for x in (tag.attributes.get("aria-describedby"), f"{field}-error") if x)
            tag(**{"aria-invalid": "true", "aria-describedby": described})
        return tag

    @renderer
    def field_amount(self, request, tag):
        return self._field("amount", tag)

    @renderer
    def field_name(self, request, tag):
        return self._field("name", tag)

    @renderer
    def field_message(self, request, tag):
        return self._field("message", tag)

    @renderer
    def form_error(self, request, tag):
        return tag(texts(self.lang)["err_form"]) if self.errors else ""

    @renderer
    def error_amount(self, request, tag):
        return self._error("amount", tag)

    @renderer
    def error_name(self, request, tag):
        return self._error("name", tag)

    @renderer
    def error_message(self, request, tag):
        return self._error("message", tag)

    @renderer
    def plans(self, request, tag):
        if not self.config.plans:
            return tags.p(texts(self.lang)["no_plans"], class_="hint")
        return tag

    @renderer
    def plan(self, request, tag):
        t = texts(self.lang)
        for p in self.config.plans:
            link = tags.a(t["plan_subscribe"], href=subscribe_url(self.bot_username, p.id),
                          class_="button secondary plan-subscribe") if self.bot_username else ""
            yield tag.clone().fillSlots(plan_title=p.title_in(self.lang), plan_price=display_money(p.price, self.lang),
                                        plan_days=t["plan_days"].format(days=p.days), plan_link=link)


def landing_page(lang: str, config, values=None, errors=None, parts=None, head=(), bot_username: str = "") -> bytes:
    """``parts``/``head``: the creator pieces and their stylesheet (ymds.web.donation_parts.CreatorParts);
    ``bot_username``: each plan gets a "Subscribe in Telegram" button to it (ymds.web.bot_link)."""
    return page(lang, "landing_title", Landing(lang, config, values, errors, parts, bot_username), "/", head,
                look=site_look(config))


# --- the pay page ----------------------------------------------------------------------------

def state_text(lang: str, status: str) -> str:
    t = texts(lang)
    return {
        "open": t["state_open"], "paid": t["state_paid_text"], "overpaid": t["state_overpaid_text"],
        "underpaid": t["state_underpaid_text"], "late": t["state_late_text"], "held": t["state_held_text"],
        "expired": t["state_expired_text"],
    }.get(status, t["state_open"])


def state_word(lang: str, status: str) -> str:
    return STATE_WORDS.get(lang, STATE_WORDS["ru"]).get(status, status)


def purpose(lang: str, invoice: Mapping, config) -> str:
    t = texts(lang)
    if invoice.get("kind") == "donation":
        return t["purpose_donation"]
    plan = config.plan(invoice.get("plan") or "") if invoice.get("plan") else None
    if plan is not None:
        return t["purpose_subscription"].format(plan=plan.title_in(lang))
    return invoice.get("description") or t["purpose_donation"]


def qr_svg(url: str, title: str):
    """The QR code of ``url`` as inline SVG tags (no external image, nothing inline-styled)."""
    code = segno.make(url, error="m")
    svg = code.svg_inline(scale=1, border=2, omitsize=True, title=title, svgclass="qr-code", lineclass=None)
    return XMLString(svg).load()


class PayPage(_Translated):
    loader = XMLFile(TEMPLATES.child("pay.xml"))

    def __init__(self, lang: str, config, invoice: Mapping, page_url: str, forms: list[tuple[str, str, list[tuple[str, str]]]]):
        """``forms``: (payment type, action URL, [(field, value), ...]) for each button."""
        super().__init__(lang)
        self.config = config
        self.invoice = invoice
        self.page_url = page_url
        self.forms = forms

    @renderer
    def texts(self, request, tag):
        status = self.invoice.get("status", "open")
        expires = str(self.invoice.get("expires_at") or "")
        return tag.fillSlots(
            lang=self.lang, amount=display_money(self.invoice["amount"], self.lang),
            purpose=purpose(self.lang, self.invoice, self.config),
            expires_iso=expires, expires_text=moment_text(expires, owner_zone(self.config), self.lang) or "—",
            state=status, state_text=state_text(self.lang, status), **_text_slots(self.lang))

    @renderer
    def payment(self, request, tag):
        return tag if self.invoice.get("status", "open") == "open" else ""

    @renderer
    def old_price(self, request, tag):
        """Issue 19: a promo-discounted invoice shows the plan's price struck through."""
        full = self.invoice.get("full_price")
        if full is None:
            return ""
        return [tags.s(f"{display_money(full, self.lang)} ₽", class_="old-price"), " "]

    @renderer
    def buttons(self, request, tag):
        t = texts(self.lang)
        for index, (payment_type, action, fields) in enumerate(self.forms):
            hidden = [tags.input(type="hidden", name=k, value=v) for k, v in fields]
            style = "button primary" if index == 0 else "button secondary"
            label = t.get(f"pay_{payment_type}", payment_type)
            yield tags.form(hidden, tags.button(label, type="submit", class_=style),
                            method="post", action=action, class_=f"pay pay-{payment_type}")

    @renderer
    def qr(self, request, tag):
        return qr_svg(self.page_url, texts(self.lang)["pay_qr"])


def pay_page(lang: str, config, invoice: Mapping, page_url: str, path: str, forms) -> bytes:
    return page(lang, "pay_title", PayPage(lang, config, invoice, page_url, forms), path, look=site_look(config))


# --- /thanks ---------------------------------------------------------------------------------

class Thanks(_Translated):
    loader = XMLFile(TEMPLATES.child("thanks.xml"))

    def __init__(self, lang: str, status: str, status_url: str, pay_href: str, bot_url: str = ""):
        super().__init__(lang)
        self.bot_url = bot_url  # the invoice came from the bot: a way back to it
        self.status = status
        self.status_url = status_url
        self.pay_href = pay_href

    @renderer
    def texts(self, request, tag):
        text = state_text(self.lang, self.status)
        if self.status in ("open", "held") and self.status == "open":
            text = texts(self.lang)["thanks_waiting"]
        return tag.fillSlots(lang=self.lang, state=self.status, state_word=state_word(self.lang, self.status),
                             state_text=text, status_url=self.status_url, pay_href=self.pay_href,
                             bot_url=self.bot_url, **_text_slots(self.lang))

    @renderer
    def bot_link(self, request, tag):
        return tag if self.bot_url else ""


def thanks_page(lang: str, status: str, status_url: str, pay_href: str, path: str, config=None,
                from_telegram: bool = False) -> bytes:
    """``from_telegram``: the invoice has a chat, so the page links back to the bot (telegram.bot_username)."""
    look = site_look(config)
    head = []
    if status not in FINAL_STATES:
        # Without JavaScript the page reloads itself; with it, thanks.js polls the status.
        head = [tags.noscript(tags.meta(**{"http-equiv": "refresh", "content": "3"})),
                tags.script(src="/static/thanks.js", defer="defer")]
    bot_url = look.bot_url if from_telegram else ""
    return page(lang, "thanks_title", Thanks(lang, status, status_url, pay_href, bot_url), path, head, look)


# --- messages (errors) -------------------------------------------------------------------------

class Message(_Translated):
    loader = XMLFile(TEMPLATES.child("message.xml"))

    def __init__(self, lang: str, heading: str, text: str):
        super().__init__(lang)
        self.heading = heading
        self.text = text

    @renderer
    def texts(self, request, tag):
        return tag.fillSlots(lang=self.lang, heading=self.heading, text=self.text, **_text_slots(self.lang))


def message_page(lang: str, code: int, path: str = "/", config=None) -> bytes:
    t = texts(lang)
    heading, text = t.get(f"err{code}_title", t["err404_title"]), t.get(f"err{code}_text", t["err404_text"])
    return flatten(Layout(lang, heading, Message(lang, heading, text), switch_href(path, lang), look=site_look(config)))
