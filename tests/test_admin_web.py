"""/admin over real HTTP on loopback: sign-in, cookie flags, CSRF, no data without a session,
pages with the in-memory data's numbers, actions applied once, the streamed CSV."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import treq
from twisted.internet import defer, reactor
from twisted.web.client import HTTPConnectionPool
from twisted.trial import unittest

from tests.support.admin_site import AdminSite


def cookie_of(response) -> str:
    header = response.headers.getRawHeaders(b"set-cookie")[0].decode()
    return header


class AdminWeb(unittest.TestCase):
    timeout = 60

    def setUp(self):
        self.site = AdminSite(self)
        self.pool = HTTPConnectionPool(reactor, persistent=False)

    def run_async(self, coroutine):
        return defer.Deferred.fromCoroutine(coroutine)

    async def get(self, path, cookie=None, **kw):
        headers = {"cookie": f"ymds_admin={cookie}"} if cookie else {}
        response = await treq.get(self.site.base + path, headers=headers, allow_redirects=False, pool=self.pool, **kw)
        return response, (await response.content()).decode()

    async def post(self, path, data, cookie=None):
        headers = {"cookie": f"ymds_admin={cookie}"} if cookie else {}
        response = await treq.post(self.site.base + path, data=data, headers=headers, allow_redirects=False, pool=self.pool)
        return response, (await response.content()).decode()

    async def sign_in(self) -> str:
        url = await self.site.login_url()
        token = url.split("t=")[1]
        response, _ = await self.post("/admin/login", {"t": token})
        self.assertEqual(response.code, 303)
        return re.match(r"ymds_admin=([^;]+)", cookie_of(response)).group(1)

    def csrf_and_idem(self, body: str, action: str):
        form = body[body.index(f'action="{action}"') - 300:]
        csrf = re.search(r'name="csrf" value="([^"]+)"', body).group(1)
        idem = re.search(r'name="idem" value="([^"]+)"', body[body.index(f'action="{action}"'):]).group(1)
        del form
        return csrf, idem

    def test_login_get_does_not_use_the_token_post_does_once(self):
        async def go():
            url = await self.site.login_url()
            token = url.split("t=")[1]
            for _ in range(2):  # a link preview fetching the link does not burn it
                response, body = await self.get(urlsplit(url).path + "?" + urlsplit(url).query)
                self.assertEqual(response.code, 200)
                self.assertIn('action="/admin/login"', body)
            response, _ = await self.post("/admin/login", {"t": token})
            self.assertEqual(response.code, 303)
            self.assertEqual(response.headers.getRawHeaders(b"location"), [b"/admin"])
            cookie = cookie_of(response)
            attributes = {part.strip().lower() for part in cookie.split(";")[1:]}  # names are case-insensitive
            self.assertEqual(attributes, {"httponly", "secure", "samesite=strict", "path=/admin"})
            again, body = await self.post("/admin/login", {"t": token})
            self.assertEqual(again.code, 403)
            self.assertIsNone(again.headers.getRawHeaders(b"set-cookie"))
            self.assertIn("ymds admin-link", body)
        return self.run_async(go())

    def test_no_data_without_a_session(self):
        async def go():
            for path in ("/admin", "/admin/payments", "/admin/payments.csv", "/admin/subscribers",
                         "/admin/quarantine", "/admin/dead-letters", "/admin/webhooks", "/admin/nope"):
                for cookie in (None, "forged-session-id-forged-session-id"):
                    response, body = await self.get(path, cookie)
                    self.assertEqual(response.code, 403, path)
                    self.assertIn("ymds admin-link", body)
                    self.assertNotIn("₽", body)
                    self.assertNotIn("Анна", body)
            response, body = await self.post("/admin/quarantine/reverify", {"id": "*"})
            self.assertEqual(response.code, 403)
            self.assertEqual(len(self.site.data.quarantine_list), 2)
        return self.run_async(go())

    def test_security_headers(self):
        async def go():
            response, _ = await self.get("/admin")
            csp = response.headers.getRawHeaders(b"content-security-policy")[0]
            self.assertIn(b"default-src 'self'", csp)
            self.assertIn(b"form-action 'self'", csp)
            self.assertEqual(response.headers.getRawHeaders(b"x-frame-options"), [b"DENY"])
            self.assertEqual(response.headers.getRawHeaders(b"cache-control"), [b"no-store"])
        return self.run_async(go())

    def test_csrf_refused(self):
        async def go():
            cookie = await self.sign_in()
            _, body = await self.get("/admin/quarantine", cookie)
            csrf, idem = self.csrf_and_idem(body, "/admin/quarantine/reverify")
            for bad in ({"id": "*", "idem": idem}, {"id": "*", "idem": idem, "csrf": csrf[:-1] + ("B" if csrf.endswith("A") else "A")}):
                response, body = await self.post("/admin/quarantine/reverify", bad, cookie)
                self.assertEqual(response.code, 403)
            self.assertEqual(len(self.site.data.quarantine_list), 2)
            self.assertEqual(self.site.data.audit, [])
            response, _ = await self.post("/admin/logout", {}, cookie)
            self.assertEqual(response.code, 403)
            self.assertIsNotNone(await self.site.sessions.lookup(cookie))
        return self.run_async(go())

    def test_overview_shows_the_numbers(self):
        async def go():
            cookie = await self.sign_in()
            response, body = await self.get("/admin", cookie)
            self.assertEqual(response.code, 200)
            ov = await self.site.data.overview(self.site.now.astimezone(self.site.admin.tz))  # the page's days
            from ymds.admin.texts import money
            today_total = sum(ov.money["today"].values())
            self.assertIn(money(today_total, "ru"), body)
            self.assertIn(money(sum(ov.money["30d"].values()), "ru"), body)
            self.assertIn('href="/admin/quarantine"', body)
            self.assertIn("В карантине: 2", body)
            self.assertIn('<svg xmlns="http://www.w3.org/2000/svg"', body)
            _, en = await self.get("/admin?lang=en&days=365", cookie)
            self.assertIn("In quarantine: 2", en)
            self.assertIn("per week", en)
        return self.run_async(go())

    def test_extend_applied_once_on_double_submit(self):
        async def go():
            cookie = await self.sign_in()
            _, body = await self.get("/admin/subscribers?q=1001", cookie)
            self.assertIn("Boris", body)
            csrf, idem = self.csrf_and_idem(body, "/admin/subscribers/extend")
            before = self.site.data.subscribers_list[1].expires_at
            form = {"csrf": csrf, "idem": idem, "chat_id": "1001", "days": "30"}
            first, _ = await self.post("/admin/subscribers/extend", form, cookie)
            second, _ = await self.post("/admin/subscribers/extend", form, cookie)
            self.assertEqual(first.headers.getRawHeaders(b"location"), [b"/admin/subscribers?msg=done"])
            self.assertEqual(second.headers.getRawHeaders(b"location"), [b"/admin/subscribers?msg=already_done"])
            self.assertEqual((self.site.data.subscribers_list[1].expires_at - before).days, 30)
            self.assertEqual(self.site.data.audit, [("tg:42", "extend", "1001+30")])
            bad, body = await self.post("/admin/subscribers/extend", dict(form, days="0", idem="other"), cookie)
            self.assertEqual(bad.code, 400)
        return self.run_async(go())

    def test_reverify_all_and_logout(self):
        async def go():
            cookie = await self.sign_in()
            _, body = await self.get("/admin/quarantine", cookie)
            csrf, _ = self.csrf_and_idem(body, "/admin/quarantine/reverify")
            response, _ = await self.post("/admin/quarantine/reverify", {"csrf": csrf, "idem": "k1", "id": "*"}, cookie)
            self.assertEqual(response.headers.getRawHeaders(b"location"), [b"/admin/quarantine?msg=done_n&n=2"])
            self.assertEqual(self.site.data.quarantine_list, [])
            response, _ = await self.post("/admin/logout", {"csrf": csrf}, cookie)
            self.assertEqual(response.code, 303)
            self.assertIn("Max-Age=0", cookie_of(response))
            response, _ = await self.get("/admin", cookie)
            self.assertEqual(response.code, 403)
        return self.run_async(go())

    def test_payments_filters_and_streamed_csv(self):
        async def go():
            cookie = await self.sign_in()
            response, body = await self.get("/admin/payments?status=held", cookie)
            self.assertEqual(response.code, 200)
            self.assertIn("inv-held", body)
            self.assertNotIn("inv-1<", body)
            response, body = await self.get("/admin/payments?since=not-a-date", cookie)
            self.assertEqual(response.code, 400)
            response, body = await self.get("/admin/payments.csv", cookie)
            self.assertEqual(response.code, 200)
            self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"text/csv; charset=utf-8"])
            lines = body.strip().split("\r\n")
            self.assertEqual(lines[0], "time,amount,kind,status,label,chat,operation_id,id")
            self.assertEqual(len(lines) - 1, len(self.site.data.payments_list))  # more than one batch of 500? no: all
            self.assertEqual(len({line.split(",")[-1] for line in lines[1:]}), len(lines) - 1)
        return self.run_async(go())

    def test_expired_session_shows_sign_in(self):
        async def go():
            cookie = await self.sign_in()
            self.site.sessions_clock.advance(601)
            response, body = await self.get("/admin", cookie)
            self.assertEqual(response.code, 403)
            self.assertNotIn("₽", body)
        return self.run_async(go())

    def test_codes_page_and_disable_once(self):
        async def go():
            cookie = await self.sign_in()
            response, body = await self.get("/admin/codes", cookie)
            self.assertEqual(response.code, 200)
            for text in ("SPRING", "20\u00a0%", "OLD50", "50,00\u00a0₽", "K7M2QX9PTA", "R4ZW… (подарок)"):
                self.assertIn(text, body)
            self.assertEqual(body.count('action="/admin/codes/disable"'), 1)  # only the active code
            csrf, idem = self.csrf_and_idem(body, "/admin/codes/disable")
            form = {"csrf": csrf, "idem": idem, "code": "SPRING"}
            first, _ = await self.post("/admin/codes/disable", form, cookie)
            second, _ = await self.post("/admin/codes/disable", form, cookie)
            self.assertEqual(first.headers.getRawHeaders(b"location"), [b"/admin/codes?msg=done"])
            self.assertEqual(second.headers.getRawHeaders(b"location"), [b"/admin/codes?msg=already_done"])
            self.assertEqual([p.active for p in self.site.data.promo_list], [False, False])
            refused, _ = await self.post("/admin/codes/disable", {"idem": "x", "code": "SPRING"}, cookie)
            self.assertEqual(refused.code, 403)  # no CSRF token
        return self.run_async(go())
