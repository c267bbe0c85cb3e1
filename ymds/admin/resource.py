"""``/admin``: the dashboard's HTTP side (sign-in, sessions, CSRF, pages, actions, CSV).

- ``GET /admin/login?t=…`` shows a "Sign in" button and does not use the token up: Telegram's
  link previews and mail scanners fetch links, and a SameSite=Strict cookie set at the end
  of a cross-site redirect chain would not be sent.  ``POST /admin/login`` (from our own
  page) redeems the token, sets the cookie and redirects to /admin.
- Without a live session every other path answers 403 with a sign-in page, never data.
- Every POST needs the session's CSRF token (403 without) and carries an idempotency key.
- Security headers are set here too, so the tree is safe wherever it is mounted.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Awaitable, Callable
from zoneinfo import ZoneInfo

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ymds.admin import pages
from ymds.admin.data import SERIES_DAYS, AdminAction, DashboardData, PaymentFilter
from ymds.admin.sessions import AdminSession, AdminSessions
from ymds.admin.texts import texts
from ymds.web.http import send
from ymds.web.i18n import request_language

log = Logger()

COOKIE = b"ymds_admin"
CSP = (b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       b"base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
_ID = re.compile(r"^[A-Za-z0-9_.:@*-]{1,128}$")
CSV_BATCH = 500
PAGE_ROWS = 50


class BadInput(ValueError):
    """A form value is not usable: answered 400 with a sentence saying what to do."""


def _arg(request, name: str, limit: int = 200) -> str:
    raw = (request.args.get(name.encode()) or [b""])[0]
    text = raw.decode("utf-8", "replace").strip()
    if len(text) > limit:
        raise BadInput(name)
    return text


def _ident(request, name: str) -> str:
    text = _arg(request, name, 128)
    if not _ID.match(text):
        raise BadInput(name)
    return text


class AdminResource(Resource):
    """Mount as ``root.putChild(b"admin", AdminResource(...))``.

    ``clock`` gives "now" for the pages (the sessions have their own); ``timezone`` is the
    owner's IANA zone; ``default_lang`` the language without a choice.
    """

    isLeaf = True

    def __init__(self, sessions: AdminSessions, data: DashboardData, clock, timezone: str = "UTC",
                 default_lang: str = "ru", sandbox: bool = False):
        super().__init__()
        self.sandbox = sandbox  # yoomoney.sandbox: the SANDBOX banner on every page
        self.sessions = sessions
        self.data = data
        self.clock = clock
        self.tz = ZoneInfo(timezone or "UTC")
        self.default_lang = default_lang
        self._gets: dict[str, Callable[..., Awaitable[None]]] = {
            "": self._overview, "payments": self._payments, "payments.csv": self._payments_csv,
            "subscribers": self._subscribers, "quarantine": self._quarantine,
            "dead-letters": self._dead_letters, "webhooks": self._webhooks, "codes": self._codes,
            "alerts": self._alerts}
        self._posts: dict[str, Callable[..., Awaitable[Any]]] = {
            "subscribers/extend": self._extend, "subscribers/revoke": self._revoke,
            "quarantine/reverify": self._reverify, "dead-letters/replay": self._replay,
            "webhooks/redeliver": self._redeliver, "codes/disable": self._disable_promo,
            "alerts/skip": self._skip_alert, "alerts/replay": self._replay_alert}

    # --- plumbing ---------------------------------------------------------------------------

    def render(self, request):
        for name, value in ((b"content-security-policy", CSP), (b"referrer-policy", b"no-referrer"),
                            (b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                            (b"x-robots-tag", b"noindex")):
            request.setHeader(name, value)
        d = defer.Deferred.fromCoroutine(self._handle(request))
        d.addErrback(self._failed, request)
        return NOT_DONE_YET

    def _failed(self, failure, request) -> None:
        log.failure("admin request failed", failure)
        lang = self._lang(request)
        self._page(request, 503, lang, texts(lang)["unavailable"], None)

    def _lang(self, request) -> str:
        lang, explicit = request_language(request, self.default_lang)
        if explicit:
            request.addCookie(b"lang", lang.encode(), path=b"/", max_age=b"31536000", sameSite="lax",
                              httpOnly=True, secure=request.isSecure())
        return lang

    def _page(self, request, code: int, lang: str, text: str, session: AdminSession | None,
              heading: str | None = None) -> None:
        t = texts(lang)
        body = pages.message(lang, heading or t["title"], text)
        send(request, code, pages.render_page(lang, heading or t["title"], body, self._path(request),
                                              session.csrf if session else None, sandbox=self.sandbox))

    @staticmethod
    def _path(request) -> str:
        return request.path.decode("latin-1")

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), self.tz)

    async def _handle(self, request) -> None:
        route = "/".join(p.decode("utf-8", "replace") for p in request.postpath).strip("/")
        method = request.method
        lang = self._lang(request)
        if route == "login":
            return await self._login(request, lang)
        session = await self.sessions.lookup((request.getCookie(COOKIE) or b"").decode("latin-1"))
        if session is None:
            t = texts(lang)
            return self._page(request, 403, lang, t["signin_text"], None, t["signin_title"])
        try:
            if method in (b"GET", b"HEAD") and route in self._gets:
                return await self._gets[route](request, lang, session)
            if method == b"POST" and (route in self._posts or route == "logout"):
                if not session.csrf_ok(_arg(request, "csrf")):
                    log.info("admin request refused {status}: no valid CSRF token", status=403)
                    return self._page(request, 403, lang, texts(lang)["csrf_bad"], session)
                if route == "logout":
                    return await self._logout(request, session)
                return await self._act(request, route, session)
        except BadInput:
            return self._page(request, 400, lang, texts(lang)["bad_input"], session)
        known = route in self._gets or route in self._posts or route == "logout"
        if known:
            request.setHeader(b"allow", b"POST" if route not in self._gets else b"GET, HEAD")
        return self._page(request, 405 if known else 404, lang, texts(lang)["not_found"], session)

    def _show(self, request, lang: str, session: AdminSession, title_key: str, content, active: str) -> None:
        send(request, 200, pages.render_page(lang, texts(lang)[title_key], content, self._path(request),
                                             session.csrf, active, self.sandbox))

    # --- sign-in ----------------------------------------------------------------------------

    async def _login(self, request, lang: str) -> None:
        t = texts(lang)
        token = _arg(request, "t", 200) if len((request.args.get(b"t") or [b""])[0]) <= 200 else ""
        if request.method in (b"GET", b"HEAD"):
            body = pages.login_form(lang, token) if token else pages.message(lang, t["signin_title"], t["signin_text"])
            send(request, 200, pages.render_page(lang, t["login_title"], body, "/admin/login", sandbox=self.sandbox))
            return
        if request.method != b"POST":
            request.setHeader(b"allow", b"GET, HEAD, POST")
            return self._page(request, 405, lang, t["not_found"], None)
        session_id = await self.sessions.redeem(token)
        if session_id is None:
            return self._page(request, 403, lang, t["login_bad"], None, t["login_title"])
        request.addCookie(COOKIE, session_id.encode(), path=b"/admin", httpOnly=True, secure=True,
                          sameSite="strict")
        send(request, 303, b"", headers={b"location": b"/admin"})

    async def _logout(self, request, session: AdminSession) -> None:
        await self.sessions.end(session.id)
        request.addCookie(COOKIE, b"", path=b"/admin", httpOnly=True, secure=True, sameSite="strict",
                          max_age=b"0")
        send(request, 303, b"", headers={b"location": b"/admin"})

    # --- pages ------------------------------------------------------------------------------

    async def _overview(self, request, lang: str, session: AdminSession) -> None:
        days_text = _arg(request, "days", 4)
        days = int(days_text) if days_text.isdigit() and int(days_text) in SERIES_DAYS else 30
        bucket = "day" if days <= 90 else "week"
        now = self._now()
        ov = await self.data.overview(now)
        revenue = await self.data.revenue_series(now, days, bucket)
        subs = await self.data.subscriber_series(now, days)
        self._show(request, lang, session, "nav_overview",
                   pages.overview(lang, self.tz, ov, revenue, subs, days, bucket), "")

    def _filter(self, request) -> PaymentFilter:
        try:
            since = pages.parse_day(_arg(request, "since", 10), self.tz)
            until = pages.parse_day(_arg(request, "until", 10), self.tz, end=True)
        except ValueError:
            raise BadInput("since") from None
        status = _arg(request, "status", 20)
        if status and status not in pages.PAYMENT_STATUSES:
            raise BadInput("status")
        return PaymentFilter(since, until, status, _arg(request, "label", 128), _arg(request, "chat", 128))

    async def _payments(self, request, lang: str, session: AdminSession) -> None:
        where = self._filter(request)
        cursor = _arg(request, "cursor", 128) or None
        page = await self.data.payments(where, cursor, PAGE_ROWS)
        raw = {k: _arg(request, k) for k in ("since", "until", "label", "chat")}
        self._show(request, lang, session, "nav_payments", pages.payments(lang, self.tz, where, page, raw), "payments")

    async def _payments_csv(self, request, lang: str, session: AdminSession) -> None:
        """Streamed: one batch from the data at a time, stopped if the client goes away."""
        where = self._filter(request)
        gone: list[bool] = []
        request.notifyFinish().addBoth(lambda _: gone.append(True))
        request.setHeader(b"content-type", b"text/csv; charset=utf-8")
        request.setHeader(b"content-disposition", b'attachment; filename="payments.csv"')
        request.setHeader(b"cache-control", b"no-store")
        request.write(pages.CSV_HEADER)
        cursor = None
        while not gone:
            page = await self.data.payments(where, cursor, CSV_BATCH)
            if gone:
                return
            request.write(pages.csv_rows(page.rows, self.tz))
            cursor = page.next_cursor
            if not cursor:
                break
        if not gone:
            request.finish()

    async def _subscribers(self, request, lang: str, session: AdminSession) -> None:
        search = _arg(request, "q", 100)
        found = await self.data.subscribers(search, PAGE_ROWS)
        content = pages.subscribers(lang, self.tz, found, search, session.csrf)
        self._show(request, lang, session, "nav_subscribers",
                   [pages.notice(lang, _arg(request, "msg", 20), _arg(request, "n", 9)), content], "subscribers")

    async def _quarantine(self, request, lang: str, session: AdminSession) -> None:
        content = pages.quarantine(lang, self.tz, await self.data.quarantine(), session.csrf)
        self._show(request, lang, session, "nav_quarantine",
                   [pages.notice(lang, _arg(request, "msg", 20), _arg(request, "n", 9)), content], "quarantine")

    async def _dead_letters(self, request, lang: str, session: AdminSession) -> None:
        content = pages.dead_letters(lang, self.tz, await self.data.dead_letters(), session.csrf)
        self._show(request, lang, session, "nav_dead",
                   [pages.notice(lang, _arg(request, "msg", 20), _arg(request, "n", 9)), content], "dead-letters")

    async def _webhooks(self, request, lang: str, session: AdminSession) -> None:
        content = pages.webhooks(lang, self.tz, await self.data.webhook_deliveries(), session.csrf)
        self._show(request, lang, session, "nav_webhooks",
                   [pages.notice(lang, _arg(request, "msg", 20), _arg(request, "n", 9)), content], "webhooks")

    async def _codes(self, request, lang: str, session: AdminSession) -> None:
        content = pages.codes(lang, self.tz, await self.data.codes(), session.csrf)
        self._show(request, lang, session, "nav_codes",
                   [pages.notice(lang, _arg(request, "msg", 20), _arg(request, "n", 9)), content], "codes")

    async def _alerts(self, request, lang: str, session: AdminSession) -> None:
        content = pages.stream_alerts(lang, self.tz, await self.data.stream_alerts(), session.csrf)
        self._show(request, lang, session, "nav_alerts",
                   [pages.notice(lang, _arg(request, "msg", 20), _arg(request, "n", 9)), content], "alerts")

    # --- actions (POST, CSRF checked) -------------------------------------------------------

    async def _act(self, request, route: str, session: AdminSession) -> None:
        action = AdminAction(session.admin, _ident(request, "idem"))
        result = await self._posts[route](request, action)
        log.info("admin action {action} by {admin}: applied={applied} count={count}",
                 action=route, admin=session.admin, applied=result.applied, count=result.count)
        page = "/admin/" + route.split("/")[0]
        query = "msg=done_n&n=%d" % result.count if result.applied and result.count != 1 else \
            "msg=" + ("done" if result.applied else "already_done")
        send(request, 303, b"", headers={b"location": f"{page}?{query}".encode()})

    async def _extend(self, request, action: AdminAction):
        days = _arg(request, "days", 4)
        if not days.isdigit() or not 1 <= int(days) <= 3650:
            raise BadInput("days")
        return await self.data.extend_subscriber(action, _ident(request, "chat_id"), int(days))

    async def _revoke(self, request, action: AdminAction):
        return await self.data.revoke_subscriber(action, _ident(request, "chat_id"))

    async def _reverify(self, request, action: AdminAction):
        item = _ident(request, "id")
        return await self.data.reverify(action, None if item == "*" else item)

    async def _replay(self, request, action: AdminAction):
        return await self.data.replay_dead_letter(action, _ident(request, "queue"), _ident(request, "id"))

    async def _disable_promo(self, request, action: AdminAction):
        return await self.data.disable_promo(action, _ident(request, "code"))

    async def _redeliver(self, request, action: AdminAction):
        return await self.data.redeliver_webhook(action, _ident(request, "id"))

    async def _skip_alert(self, request, action: AdminAction):
        return await self.data.skip_alert(action, _ident(request, "id"))

    async def _replay_alert(self, request, action: AdminAction):
        return await self.data.replay_alert(action, _ident(request, "id"))
