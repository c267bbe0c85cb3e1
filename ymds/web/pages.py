"""The payer's pages: landing, POST /donate, /pay/<token>, /pay/<token>/status, /thanks.

Resources here only render and ask billing through its client (create_donation,
invoice_status); they never touch the ledger.  A refused link is a page (403 changed,
410 expired), an unreachable billing is a 503 page: never a traceback.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict
from decimal import Decimal, InvalidOperation
from typing import Hashable, Mapping
from urllib.parse import parse_qs, urlencode

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ymds.billing.jobs import BillingClient, InvoiceView
from ymds.links import BadLink, ExpiredLink, LinkError, verify_token
from ymds.web import render
from ymds.web.bot_link import READ_TIMEOUT, BotUsername
from ymds.web.cache import SharedLookup, TTLCache
from ymds.web.donation_limits import donation_bucket
from ymds.web.http import client_gone, PAGE_TYPE, send, send_json
from ymds.web.i18n import request_language, texts
from ymds.util.http import retry_after_seconds

log = Logger()

_AMOUNT_RE = re.compile(r"^[0-9]{1,9}(?:\.[0-9]{1,2})?$")
MAX_NAME = 64
MAX_MESSAGE = 500
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


class WebContext:
    """What the page resources share: config, queue, clock, limits, caches, metrics."""

    def __init__(self, config, queue, clock, metrics, client_address, donate_limiter,
                 status_ttl: float = 1.0, call_timeout: float = 10.0, cache_entries: int = 4096):
        self.config = config
        self.queue = queue
        self.clock = clock
        self.client_address = client_address
        self.donate_limiter = donate_limiter
        self.call_timeout = call_timeout
        self.billing = BillingClient(queue, timeout=call_timeout)
        self.public_url = config.server.public_url.rstrip("/")
        self.status = SharedLookup(clock, self._invoice_status, ttl=status_ttl, max_entries=cache_entries)
        # Rendered pay pages by (token, language, status): the QR code is the costly part.
        self.pages: TTLCache[bytes] = TTLCache(clock, ttl=max(status_ttl, 1.0) * 30, max_entries=1024)
        self.requests = metrics.counter("ymds_web_requests", "HTTP requests answered by the web role", ("route", "code"))
        self.donations = metrics.counter("ymds_web_donations", "Donation form submissions by result", ("result",))
        from ymds.web.donation_parts import CreatorParts
        self.creators = CreatorParts(config, queue, clock)  # issue 17: presets, public choice, goal, supporters

    async def _invoice_status(self, label: Hashable) -> InvoiceView | None:
        return await self.billing.invoice_status(str(label))

    def language(self, request) -> str:
        lang, explicit = request_language(request, self.config.telegram.language)
        if explicit:
            request.addCookie(b"lang", lang.encode(), path=b"/", max_age=b"31536000", sameSite="lax",
                              secure=self.public_url.startswith("https://") or None, httpOnly=True)
        request.setHeader(b"vary", b"Accept-Language, Cookie")
        return lang

    def page(self, request, route: str, code: int, body: bytes, headers: dict | None = None) -> None:
        self.requests.inc(route=route, code=str(code))
        send(request, code, body, PAGE_TYPE, headers=headers)

    def message(self, request, route: str, code: int, lang: str | None = None, headers: dict | None = None) -> None:
        lang = lang or self.language(request)
        path = request.path.decode("latin-1") if request.path else "/"
        self.page(request, route, code, render.message_page(lang, code, path, self.config), headers)

    def json(self, request, route: str, code: int, value) -> None:
        self.requests.inc(route=route, code=str(code))
        send_json(request, code, value)


def run(request, ctx: WebContext, route: str, coroutine) -> object:
    """Drive an async handler; any unexpected failure becomes a logged 500 page, never a traceback."""
    def failed(failure):
        log.failure("web {route} failed", failure, route=route)
        if not client_gone(request):
            ctx.requests.inc(route=route, code="500")
            send(request, 500, b"<!DOCTYPE html><title>Error</title><p>Internal error / \xd0\x92\xd0\xbd\xd1\x83\xd1\x82\xd1\x80\xd0\xb5\xd0\xbd\xd0\xbd\xd1\x8f\xd1\x8f \xd0\xbe\xd1\x88\xd0\xb8\xd0\xb1\xd0\xba\xd0\xb0</p>")

    Deferred.fromCoroutine(coroutine).addErrback(failed)
    return NOT_DONE_YET


# --- landing and donations ------------------------------------------------------------------

class LandingResource(Resource):
    isLeaf = True

    def __init__(self, ctx: WebContext):
        super().__init__()
        self.ctx = ctx
        self._rendered: dict[tuple[str, str], bytes] = {}  # by language and bot username: nothing else moves
        self.bot = BotUsername(ctx.config, ctx.queue, ctx.clock)  # issue 19: "Subscribe in Telegram"

    def render_GET(self, request):
        lang = self.ctx.language(request)
        if request.postpath not in ([], [b""]):
            self.ctx.message(request, "other", 404, lang)
            return NOT_DONE_YET
        if self.ctx.creators.live or self.bot.stale:  # the goal and the feed move with each donation
            return run(request, self.ctx, "landing", self._live(request, lang))
        self.ctx.page(request, "landing", 200, self._static(lang))
        return NOT_DONE_YET

    def _static(self, lang: str) -> bytes:
        key = (lang, self.bot.current)
        body = self._rendered.get(key)
        if body is None:
            body = self._rendered[key] = render.landing_page(
                lang, self.ctx.config, parts=self.ctx.creators.static_parts(lang), head=self.ctx.creators.head,
                bot_username=self.bot.current)
        return body

    async def _live(self, request, lang: str) -> None:
        if self.bot.stale:  # bounded: a slow Redis costs the buttons, not the page
            await Deferred.fromCoroutine(self.bot.refresh()).addTimeout(READ_TIMEOUT, self.ctx.clock).addErrback(
                lambda f: None)
        creators = self.ctx.creators
        if not creators.live:
            self.ctx.page(request, "landing", 200, self._static(lang))
            return
        self.ctx.page(request, "landing", 200, render.landing_page(lang, self.ctx.config, parts=await creators.parts(lang),
                                                                   head=creators.head, bot_username=self.bot.current))


def _clean(text: str, keep_newlines: bool) -> str:
    """Drop control and format characters (newlines only where allowed), trim."""
    out = []
    for ch in unicodedata.normalize("NFC", text):
        if ch in "\r\n" and keep_newlines:
            out.append("\n" if ch == "\n" else "")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            continue
        else:
            out.append(ch)
    return "".join(out).strip()


def validate_donation(form: Mapping[str, str], config, lang: str) -> tuple[dict, dict]:
    """(clean values, errors by field) for the donation form."""
    t = texts(lang)
    errors: dict[str, str] = {}
    raw_amount = form.get("amount", "")
    amount_text = raw_amount.strip().replace(",", ".").replace(" ", "").replace("\u00a0", "").replace("\u202f", "")
    amount = None
    if not _AMOUNT_RE.fullmatch(amount_text):
        errors["amount"] = t["err_amount"]
    else:
        try:
            amount = Decimal(amount_text).quantize(Decimal("0.01"))
        except InvalidOperation:
            errors["amount"] = t["err_amount"]
    d = config.donations
    if amount is not None and not (d.min <= amount <= d.max):
        errors["amount"] = t["err_amount_range"].format(min=render.display_money(d.min, lang),
                                                        max=render.display_money(d.max, lang))
    name = _clean(form.get("name", ""), keep_newlines=False)
    if len(name) > MAX_NAME:
        errors["name"] = t["err_name"]
    message = _clean(form.get("message", ""), keep_newlines=True)
    if len(message) > MAX_MESSAGE:
        errors["message"] = t["err_message"]
    return {"amount": amount, "amount_text": raw_amount[:32], "name": name[:200], "message": message[:2000]}, errors


def read_form(request, max_body: int) -> dict[str, str] | None:
    """The url-encoded body as {name: first value}; None when it is not valid UTF-8."""
    request.content.seek(0)
    body = request.content.read(max_body + 1)
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                          max_num_fields=20, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    return {k: v[0] for k, v in parsed.items()}


class DonateResource(Resource):
    isLeaf = True

    def __init__(self, ctx: WebContext):
        super().__init__()
        self.ctx = ctx

    def render_GET(self, request):
        request.setHeader(b"location", b"/")
        self.ctx.page(request, "donate", 303, b"")
        return NOT_DONE_YET

    def render_POST(self, request):
        return run(request, self.ctx, "donate", self._post(request))

    async def _post(self, request):
        ctx = self.ctx
        raw_form = read_form(request, ctx.config.server.max_body) or {}
        form = ctx.creators.apply_preset(raw_form) or {**raw_form, "amount": ""}  # a forged preset: no amount
        chosen = form.get("lang")
        lang = chosen if chosen in ("ru", "en") and chosen is not None else ctx.language(request)
        if not ctx.config.donations.enabled:
            ctx.donations.inc(result="disabled")
            ctx.message(request, "donate", 404, lang)
            return
        address = ctx.client_address.of(request)
        bucket = donation_bucket(address)  # an IPv6 visitor is limited by its /64 (issue 14)
        if not ctx.donate_limiter.allow(bucket):
            wait = retry_after_seconds(ctx.donate_limiter.retry_after(bucket))
            ctx.donations.inc(result="rate_limited")
            log.info("donation refused {result} remote={remote}", result="rate_limited", remote=address)
            ctx.message(request, "donate", 429, lang, headers={b"retry-after": b"%d" % wait})
            return
        values, errors = validate_donation(form, ctx.config, lang)
        if errors:
            ctx.donations.inc(result="invalid")
            log.info("donation refused {result} fields={fields}", result="invalid", fields=",".join(sorted(errors)))
            shown = {"amount": values["amount_text"], "name": form.get("name", "")[:MAX_NAME * 2],
                     "message": form.get("message", "")[:MAX_MESSAGE * 2]}
            ctx.page(request, "donate", 400, render.landing_page(lang, ctx.config, shown, errors,
                                                                 await ctx.creators.parts(lang, form.get("public") == "1"),
                                                                 ctx.creators.head))
            return
        try:
            created = await ctx.billing.create_donation(values["amount"], values["name"], values["message"])
            location = _local_pay_location(created.url, ctx.public_url)
        except Exception as e:
            ctx.donations.inc(result="unavailable")
            log.warn("donation not created {result}: {error}", result="unavailable", error=type(e).__name__)
            ctx.message(request, "donate", 503, lang, headers={b"retry-after": b"30"})
            return
        await ctx.creators.mark_public(created.label, values["name"], form)
        ctx.donations.inc(result="created")
        log.info("donation created {label} {amount}", label=created.label, amount=str(values["amount"]))
        request.setHeader(b"location", location.encode("ascii"))
        ctx.page(request, "donate", 303, b"")


def _local_pay_location(url: str, public_url: str) -> str:
    """Billing's absolute pay URL; refuse anything that is not ours (never an open redirect)."""
    if not isinstance(url, str) or not url.startswith(public_url + "/pay/"):
        raise ValueError("create_donation answered an unexpected url")
    return url


# --- /pay/<token> ---------------------------------------------------------------------------

def _quickpay_fields(wallet, payment_type, amount, label, success_url):
    from ymds.yoomoney.quickpay import quickpay_fields  # the YooMoney part owns the form's fields

    fields = quickpay_fields(wallet, payment_type, amount, label, success_url)
    items = fields.items() if isinstance(fields, Mapping) else fields
    return [(str(k), str(v)) for k, v in items]


class PayResource(Resource):
    """/pay/<token> (page) and /pay/<token>/status (JSON)."""

    isLeaf = True

    def __init__(self, ctx: WebContext):
        super().__init__()
        self.ctx = ctx

    def render_GET(self, request):
        parts = [p.decode("latin-1") for p in request.postpath]
        if len(parts) == 1 and parts[0]:
            return run(request, self.ctx, "pay", self._page(request, parts[0]))
        if len(parts) == 2 and parts[1] == "status":
            return run(request, self.ctx, "pay_status", self._status(request, parts[0]))
        self.ctx.message(request, "pay", 404)
        return NOT_DONE_YET

    def _verify(self, token: str) -> str:
        if not _TOKEN_CHARS.fullmatch(token):
            raise BadLink("malformed token")
        return verify_token(self.ctx.config.links.secret, token, self.ctx.clock.seconds())

    async def _page(self, request, token: str):
        ctx = self.ctx
        lang = ctx.language(request)
        try:
            label = self._verify(token)
        except LinkError as e:
            code = 410 if isinstance(e, ExpiredLink) else 403
            log.info("pay link refused {code}", code=code)
            ctx.message(request, "pay", code, lang)
            return
        try:
            invoice = await ctx.status.get(label)
        except Exception as e:
            log.warn("invoice status unavailable for {label}: {error}", label=label, error=type(e).__name__)
            ctx.message(request, "pay", 503, lang, headers={b"retry-after": b"10"})
            return
        if not invoice:
            ctx.message(request, "pay", 404, lang)
            return
        status = invoice.status
        key = (token, lang, status)
        body = ctx.pages.get(key)
        if body is None:
            page_url = f"{ctx.public_url}/pay/{token}"
            success_url = f"{ctx.public_url}/thanks?{urlencode({'t': token})}"
            forms = []
            if status == "open":
                y = ctx.config.yoomoney
                forms = [(pt, y.quickpay_url, _quickpay_fields(y.wallet, pt, Decimal(str(invoice.amount)), label, success_url))
                         for pt in y.payment_types]
            body = render.pay_page(lang, ctx.config, asdict(invoice), page_url, f"/pay/{token}", forms)
            ctx.pages.put(key, body)
        ctx.page(request, "pay", 200, body)

    async def _status(self, request, token: str):
        ctx = self.ctx
        lang = ctx.language(request)
        try:
            label = self._verify(token)
        except LinkError as e:
            code = 410 if isinstance(e, ExpiredLink) else 403
            ctx.json(request, "pay_status", code, {"error": "expired" if code == 410 else "bad_link"})
            return
        try:
            invoice = await ctx.status.get(label)
        except Exception:
            ctx.json(request, "pay_status", 503, {"error": "unavailable"})
            return
        if not invoice:
            ctx.json(request, "pay_status", 404, {"error": "not_found"})
            return
        ctx.json(request, "pay_status", 200, status_document(lang, invoice))


def status_document(lang: str, invoice: InvoiceView) -> dict:
    status = invoice.status
    return {
        "status": status,
        "status_word": render.state_word(lang, status),
        "status_text": render.state_text(lang, status),
        "paid": status in render.PAID_STATES,
        "final": status in render.FINAL_STATES,
        "amount": render.format_money(invoice.amount),
        "expires_at": str(invoice.expires_at or ""),
        "paid_at": invoice.paid_at,
    }


# --- /thanks ---------------------------------------------------------------------------------

class ThanksResource(Resource):
    isLeaf = True

    def __init__(self, ctx: WebContext):
        super().__init__()
        self.ctx = ctx

    def render_GET(self, request):
        return run(request, self.ctx, "thanks", self._get(request))

    async def _get(self, request):
        ctx = self.ctx
        lang = ctx.language(request)
        token = (request.args.get(b"t") or [b""])[0].decode("latin-1")
        if not token:
            ctx.message(request, "thanks", 404, lang)
            return
        try:
            if not _TOKEN_CHARS.fullmatch(token):
                raise BadLink("malformed token")
            label = verify_token(ctx.config.links.secret, token, ctx.clock.seconds())
        except LinkError as e:
            ctx.message(request, "thanks", 410 if isinstance(e, ExpiredLink) else 403, lang)
            return
        try:
            invoice = await ctx.status.get(label)
        except Exception:
            ctx.message(request, "thanks", 503, lang, headers={b"retry-after": b"10"})
            return
        if not invoice:
            ctx.message(request, "thanks", 404, lang)
            return
        status = invoice.status
        body = render.thanks_page(lang, status, f"/pay/{token}/status", f"/pay/{token}",
                                  f"/thanks?{urlencode({'t': token})}", ctx.config, invoice.chat_id is not None)
        ctx.page(request, "thanks", 200, body)
