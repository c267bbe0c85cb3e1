"""The payer's pages: links, states, languages, donations, headers, metrics, health."""
from __future__ import annotations

import json
import re
import socket
from decimal import Decimal
from html.parser import HTMLParser
from urllib.parse import urlsplit

from twisted.internet import defer, reactor, threads
from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.test_web_support import LiveSite, header, make_config
from ymds.links import sign_token
from ymds.web import render
from ymds.web.i18n import choose_language, parse_accept_language
from ymds.web.ratelimit import ClientAddress, TokenBucketLimiter


def run(coroutine):
    return defer.Deferred.fromCoroutine(coroutine)


class Forms(HTMLParser):
    """Collects forms (action, hidden fields, buttons), controls, labels and the html lang."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self.controls: list[dict] = []
        self.labels_for: set[str] = set()
        self.lang = None
        self.svg = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang")
        elif tag == "form":
            self.forms.append({"action": a.get("action"), "method": a.get("method"), "fields": {}, "buttons": []})
        elif tag == "input" and a.get("type") == "hidden" and self.forms:
            self.forms[-1]["fields"][a["name"]] = a.get("value")
        elif tag in ("input", "textarea", "select") and a.get("type") != "hidden":
            self.controls.append(a)
        elif tag == "button" and self.forms:
            self.forms[-1]["buttons"].append(a)
        elif tag == "label" and a.get("for"):
            self.labels_for.add(a["for"])
        elif tag == "svg":
            self.svg += 1


def parse(body: bytes) -> Forms:
    p = Forms()
    p.feed(body.decode("utf-8"))
    return p


class RateLimiter(unittest.TestCase):
    def test_bucket_refills_on_clock(self):
        clock = Clock()
        limiter = TokenBucketLimiter(clock, rate=1.0, burst=3)
        self.assertEqual([limiter.allow("a") for _ in range(4)], [True, True, True, False])
        self.assertTrue(limiter.allow("b"))
        self.assertAlmostEqual(limiter.retry_after("a"), 1.0)
        clock.advance(1)
        self.assertTrue(limiter.allow("a"))
        self.assertFalse(limiter.allow("a"))

    def test_memory_is_bounded(self):
        clock = Clock()
        limiter = TokenBucketLimiter(clock, rate=0.001, burst=2, max_clients=100)
        for i in range(10000):
            limiter.allow(f"10.0.{i // 256}.{i % 256}")
        self.assertLessEqual(len(limiter), 100)

    def test_refilled_buckets_are_forgotten(self):
        clock = Clock()
        limiter = TokenBucketLimiter(clock, rate=1.0, burst=2)
        for i in range(50):
            limiter.allow(str(i))
        clock.advance(10)
        limiter.allow("new")
        self.assertEqual(len(limiter), 1)


class FakeRequest:
    def __init__(self, peer, xff=None, proto=None):
        from twisted.internet.address import IPv4Address
        from twisted.web.http_headers import Headers
        self._peer = IPv4Address("TCP", peer, 1234)
        self.requestHeaders = Headers()
        if xff:
            self.requestHeaders.setRawHeaders(b"x-forwarded-for", [xff.encode()])
        if proto:
            self.requestHeaders.setRawHeaders(b"x-forwarded-proto", [proto.encode()])

    def getClientAddress(self):
        return self._peer

    def getHeader(self, name):
        values = self.requestHeaders.getRawHeaders(name)
        return values[-1] if values else None


class ClientAddresses(unittest.TestCase):
    def test_untrusted_peer_header_ignored(self):
        self.assertEqual(ClientAddress().of(FakeRequest("203.0.113.5", "1.2.3.4")), "203.0.113.5")

    def test_trusted_proxy_rightmost_untrusted(self):
        addresses = ClientAddress(["10.0.0.0/8"])
        self.assertEqual(addresses.of(FakeRequest("10.0.0.2", "1.2.3.4, 198.51.100.7, 10.0.0.9")), "198.51.100.7")
        self.assertEqual(addresses.of(FakeRequest("10.0.0.2")), "10.0.0.2")
        self.assertEqual(addresses.of(FakeRequest("10.0.0.2", "not-an-ip")), "10.0.0.2")

    def test_forwarded_https(self):
        addresses = ClientAddress(["127.0.0.1"])
        self.assertTrue(addresses.via_trusted_https(FakeRequest("127.0.0.1", proto="https")))
        self.assertFalse(addresses.via_trusted_https(FakeRequest("127.0.0.2", proto="https")))


class Languages(unittest.TestCase):
    def test_accept_language(self):
        self.assertEqual(parse_accept_language("de-DE,en;q=0.8,ru;q=0.9"), ["de", "ru", "en"])
        self.assertEqual(choose_language(None, None, "de-DE,en;q=0.8,ru;q=0.9"), "ru")
        self.assertEqual(choose_language(None, None, "en-US,en;q=0.9"), "en")
        self.assertEqual(choose_language(None, None, "ru;q=0, en;q=0.1"), "en")
        self.assertEqual(choose_language(None, None, "", default="en"), "en")
        self.assertEqual(choose_language("en", "ru", "ru"), "en")
        self.assertEqual(choose_language("xx", "en", "ru"), "en")
        self.assertEqual(choose_language(None, None, "garbage;q=abc,,;;"), "ru")

    def test_templates_render_in_both_languages(self):
        config = make_config(8443)
        invoice = {"label": "LabelLabel1234", "kind": "subscription", "plan": "month", "amount": Decimal("199.00"),
                   "status": "open", "expires_at": "2027-01-15T08:00:00+00:00"}
        forms = [("AC", "https://yoomoney.ru/quickpay/confirm", [("label", "LabelLabel1234")])]
        expected = {"ru": ("Поддержка и подписки", "Оплатить банковской картой", "Подписка: 1 month", "Ссылка недействительна"),
                    "en": ("Support and subscriptions", "Pay by bank card", "Subscription: 1 month", "This link is not valid")}
        for lang, (landing, button, purpose, bad) in expected.items():
            page = render.landing_page(lang, config).decode()
            self.assertIn(f'<html lang="{lang}">', page)
            self.assertIn(landing, page)
            pay = render.pay_page(lang, config, invoice, "https://x/pay/t", "/pay/t", forms).decode()
            self.assertIn(button, pay)
            self.assertIn(purpose, pay)
            self.assertIn(bad, render.message_page(lang, 403).decode())
            other = {"ru": "en", "en": "ru"}[lang]
            self.assertNotIn(expected[other][0], page)

    def test_text_keys_match(self):
        from ymds.web.i18n import TEXTS
        self.assertEqual(set(TEXTS["ru"]), set(TEXTS["en"]))

    def test_user_input_is_escaped(self):
        config = make_config(8443)
        page = render.landing_page("en", config, {"name": '<script>alert(1)</script>"'}, {"name": "x"}).decode()
        self.assertNotIn("<script>alert", page)
        self.assertIn("&lt;script&gt;", page)


class PayPage(unittest.TestCase):
    def setUp(self):
        self.live = LiveSite(self)
        self.label, self.token = self.live.invoices.add("150.00")

    def test_open_invoice_page(self):
        async def go():
            response, body = await self.live.request("GET", f"/pay/{self.token}?lang=en")
            self.assertEqual(response.code, 200)
            page = parse(body)
            self.assertEqual(page.lang, "en")
            self.assertIn("150.00", body.decode())
            self.assertEqual(page.svg, 1)  # the QR code, inline
            self.assertEqual(len(page.forms), 2)
            public = self.live.config.server.public_url
            for form, pt in zip(page.forms, ("AC", "PC")):
                self.assertEqual(form["action"], "https://yoomoney.ru/quickpay/confirm")
                self.assertEqual(form["method"], "post")
                self.assertEqual(form["fields"]["receiver"], self.live.config.yoomoney.wallet)
                self.assertEqual(form["fields"]["paymentType"], pt)
                self.assertEqual(form["fields"]["sum"], "150.00")
                self.assertEqual(form["fields"]["label"], self.label)
                self.assertEqual(form["fields"]["successURL"], f"{public}/thanks?t={self.token}")
            self.assertIn("lang=en", header(response, "set-cookie"))
        return run(go())

    def test_any_changed_byte_of_the_token_403(self):
        async def go():
            alphabet = "AbZ09_-."
            codes = set()
            for i, ch in enumerate(self.token):
                other = next(c for c in alphabet if c != ch)
                changed = self.token[:i] + other + self.token[i + 1:]
                response, body = await self.live.request("GET", f"/pay/{changed}?lang=en")
                self.assertEqual(response.code, 403, (i, changed))
                self.assertIn(b"This link is not valid", body)
                self.assertNotIn(b"Traceback", body)
                codes.add(response.code)
            for changed in (self.token + "x", self.token[:-1], "", "%00", "a" * 300, "..", "%C3%A9"):
                response, _ = await self.live.request("GET", f"/pay/{changed}/status")
                self.assertIn(response.code, (403, 404), changed)
        return run(go())

    def test_expired_token_410(self):
        async def go():
            self.live.clock.advance(3601)
            response, body = await self.live.request("GET", f"/pay/{self.token}?lang=ru")
            self.assertEqual(response.code, 410)
            self.assertIn("Срок ссылки истёк", body.decode())
            response, body = await self.live.request("GET", f"/pay/{self.token}/status")
            self.assertEqual((response.code, json.loads(body)), (410, {"error": "expired"}))
        return run(go())

    def test_token_with_other_secret_403(self):
        async def go():
            forged = sign_token(b"another-secret-0123456789abcdef", self.label, int(self.live.clock.seconds()) + 60)
            response, _ = await self.live.request("GET", f"/pay/{forged}")
            self.assertEqual(response.code, 403)
        return run(go())

    def test_unknown_invoice_404(self):
        async def go():
            token = sign_token(self.live.config.links.secret, "UnknownLabel0000", int(self.live.clock.seconds()) + 60)
            response, _ = await self.live.request("GET", f"/pay/{token}")
            self.assertEqual(response.code, 404)
        return run(go())

    def test_billing_unavailable_503(self):
        async def go():
            self.live.queue.down = True
            response, body = await self.live.request("GET", f"/pay/{self.token}?lang=en")
            self.assertEqual(response.code, 503)
            self.assertIn(b"Temporarily unavailable", body)
            response, _ = await self.live.request("GET", f"/pay/{self.token}/status")
            self.assertEqual(response.code, 503)
        return run(go())

    def test_states_and_status_cache(self):
        async def go():
            response, body = await self.live.request("GET", f"/pay/{self.token}/status?lang=en")
            self.assertEqual(json.loads(body)["status"], "open")
            self.assertFalse(json.loads(body)["final"])
            calls = len(self.live.queue.calls)
            self.live.invoices.invoices[self.label]["status"] = "paid"
            response, body = await self.live.request("GET", f"/pay/{self.token}/status?lang=en")
            self.assertEqual(json.loads(body)["status"], "open")  # cached for a second
            self.assertEqual(len(self.live.queue.calls), calls)
            self.live.clock.advance(1)
            response, body = await self.live.request("GET", f"/pay/{self.token}/status?lang=en")
            doc = json.loads(body)
            self.assertEqual((doc["status"], doc["status_word"], doc["paid"], doc["final"]), ("paid", "paid", True, True))
            response, body = await self.live.request("GET", f"/pay/{self.token}?lang=en")
            page = parse(body)
            self.assertEqual(page.forms, [])  # no payment buttons on a paid invoice
            self.assertIn(b"The payment has arrived", body)
            self.live.invoices.invoices[self.label]["status"] = "expired"
            self.live.clock.advance(1)
            response, body = await self.live.request("GET", f"/pay/{self.token}?lang=en")
            self.assertEqual((response.code, parse(body).forms), (200, []))
            self.assertIn(b"This invoice has expired", body)
        return run(go())

    def test_thanks_page(self):
        async def go():
            response, body = await self.live.request("GET", f"/thanks?t={self.token}&lang=en")
            self.assertEqual(response.code, 200)
            text = body.decode()
            self.assertIn('data-state="open"', text)
            self.assertIn(f'data-status-url="/pay/{self.token}/status"', text)
            self.assertIn('<meta http-equiv="refresh" content="3" />', text)  # inside <noscript>
            self.assertIn('src="/static/thanks.js"', text)
            self.live.invoices.invoices[self.label]["status"] = "paid"
            self.live.clock.advance(1)
            response, body = await self.live.request("GET", f"/thanks?t={self.token}&lang=en")
            self.assertIn('data-state="paid"', body.decode())
            self.assertIn('>paid</strong>', body.decode())
            self.assertNotIn(b"refresh", body)
            response, _ = await self.live.request("GET", "/thanks")
            self.assertEqual(response.code, 404)
            response, _ = await self.live.request("GET", f"/thanks?t={self.token[:-2]}xx")
            self.assertEqual(response.code, 403)
        return run(go())

    def test_security_headers_everywhere(self):
        async def go():
            for path in ("/", f"/pay/{self.token}", f"/pay/{self.token}/status", "/thanks", "/static/style.css",
                         "/nope", "/metrics", "/healthz", "/yoomoney/notify", "/pay/bad"):
                response, _ = await self.live.request("GET", path)
                csp = header(response, "content-security-policy")
                self.assertIn("default-src 'self'", csp, path)
                self.assertIn("frame-ancestors 'none'", csp)
                self.assertIn("form-action 'self' https://yoomoney.ru", csp)
                self.assertEqual(header(response, "referrer-policy"), "no-referrer")
                self.assertEqual(header(response, "x-content-type-options"), "nosniff")
                self.assertIsNone(header(response, "strict-transport-security"))  # plain HTTP here
        return run(go())

    def test_static_files(self):
        async def go():
            response, body = await self.live.request("GET", "/static/style.css")
            self.assertEqual((response.code, header(response, "content-type")), (200, "text/css; charset=utf-8"))
            for bad in ("/static/", "/static/../site.py", "/static/%2e%2e/site.py", "/static/nope.css"):
                response, _ = await self.live.request("GET", bad)
                self.assertEqual(response.code, 404, bad)
        return run(go())

    def test_metrics_and_health(self):
        async def go():
            await self.live.request("GET", f"/pay/{self.token}")
            self.assertIn('ymds_web_requests_total{code="200",route="pay"} 1.0', self.live.metrics.render())
            response, body = await self.live.request("GET", "/healthz")
            self.assertEqual(response.code, 200)
        return run(go())

    def test_no_access_log_of_tokens(self):
        from twisted.logger import globalLogPublisher, formatEvent
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)

        async def go():
            await self.live.request("GET", f"/pay/{self.token}")
            await self.live.request("GET", f"/pay/{self.token[:-1]}A")
            self.assertFalse([e for e in events if self.token[:30] in (formatEvent(e) + repr(e))])
        return run(go())


class Health(unittest.TestCase):
    def test_unhealthy_503(self):
        async def down():
            return False, "connection refused"

        async def up():
            return True, "ok"
        live = LiveSite(self, checks={"redis": down, "ledger": up})

        async def go():
            response, body = await live.request("GET", "/healthz")
            self.assertEqual(response.code, 503)
            self.assertEqual(json.loads(body)["checks"]["redis"]["ok"], False)
        return run(go())


FORM = {"content-type": "application/x-www-form-urlencoded"}


class Donations(unittest.TestCase):
    def setUp(self):
        self.live = LiveSite(self, donate_rate=(0.1, 3))

    def test_landing(self):
        async def go():
            response, body = await self.live.request("GET", "/", headers={"accept-language": "en-GB,en;q=0.9"})
            self.assertEqual(response.code, 200)
            page = parse(body)
            self.assertEqual(page.lang, "en")
            self.assertEqual(page.forms[0]["action"], "/donate")
            self.assertIn("1 month", body.decode())
            self.assertIn("199.00", body.decode())
            response, body = await self.live.request("GET", "/")
            self.assertEqual(parse(body).lang, "ru")  # the configured default
            response, body = await self.live.request("GET", "/", headers={"cookie": "lang=en"})
            self.assertEqual(parse(body).lang, "en")
        return run(go())

    def test_valid_donation_303_to_pay_page(self):
        async def go():
            response, body = await self.live.request(
                "POST", "/donate", "amount=99,5&name=Аня&message=Спасибо%0D%0Aвам&lang=en".encode(), FORM)
            self.assertEqual(response.code, 303)
            location = header(response, "location")
            self.assertTrue(location.startswith(self.live.config.server.public_url + "/pay/"))
            [(queue, task, args)] = [c for c in self.live.queue.calls if c[1] == "create_donation"]
            self.assertEqual(args, {"amount": Decimal("99.50"), "name": "Аня", "message": "Спасибо\nвам"})
            response, body = await self.live.request("GET", urlsplit(location).path)
            self.assertEqual(response.code, 200)
            self.assertIn(b"99.50", body)
        return run(go())

    def test_invalid_donations_rerender_form(self):
        async def go():
            cases = [
                (b"amount=abc&lang=en", "amount", "Enter an amount"),
                (b"amount=5&lang=en", "amount", "The amount must be from 10.00 to 1,000.00"),
                (b"amount=1000.01&lang=en", "amount", "The amount must be from 10.00 to 1,000.00"),
                (b"amount=10.001&lang=en", "amount", "Enter an amount"),
                ("amount=10&lang=ru&name=" + "я" * 65, "name", "Имя — не больше 64 символов"),
            ]
            for body, field, message in cases:
                body = body if isinstance(body, bytes) else body.encode()
                response, page = await self.live.request("POST", "/donate", body, FORM)
                self.assertEqual(response.code, 400, body)
                text = page.decode()
                self.assertIn(message, text)
                self.assertIn(f'id="{field}-error"', text)
                self.assertRegex(text, rf'<(input|textarea) id="{field}"(?=[^>]*aria-invalid="true")(?=[^>]*aria-describedby="[^"]*{field}-error")')
                self.clock_tick()
            self.assertEqual([c for c in self.live.queue.calls if c[1] == "create_donation"], [])
        return run(go())

    def clock_tick(self):
        self.live.clock.advance(10)

    def test_message_too_long(self):
        async def go():
            response, page = await self.live.request("POST", "/donate", ("amount=10&lang=en&message=" + "a" * 501).encode(), FORM)
            self.assertEqual(response.code, 400)
            self.assertIn(b"at most 500 characters", page)
        return run(go())

    def test_rate_limited_429(self):
        async def go():
            codes = []
            for _ in range(5):
                response, _ = await self.live.request("POST", "/donate", b"amount=20&lang=en", FORM)
                codes.append(response.code)
            self.assertEqual(codes, [303, 303, 303, 429, 429])
            self.assertEqual(header(response, "retry-after"), "10")
        return run(go())

    def test_billing_down_503(self):
        async def go():
            self.live.queue.down = True
            response, body = await self.live.request("POST", "/donate", b"amount=20&lang=en", FORM)
            self.assertEqual(response.code, 503)
        return run(go())

    def test_disabled(self):
        live = LiveSite(self, config=make_config(0, donations={"enabled": False}))

        async def go():
            response, body = await live.request("GET", "/?lang=en")
            self.assertIn(b"Donations are switched off", body)
            response, _ = await live.request("POST", "/donate", b"amount=20", FORM)
            self.assertEqual(response.code, 404)
        return run(go())


class Accessibility(unittest.TestCase):
    """Labels on every control, a lang attribute, contrast of the main buttons."""

    def test_every_control_labelled_and_lang(self):
        config = make_config(8443)
        invoice = {"label": "LabelLabel1234", "kind": "donation", "amount": Decimal("10.00"), "status": "open",
                   "expires_at": "2027-01-15T08:00:00+00:00"}
        pages = [render.landing_page("en", config), render.landing_page("ru", config, {"amount": "x"}, {"amount": "bad"}),
                 render.pay_page("ru", config, invoice, "https://x/pay/t", "/pay/t",
                                 [("AC", "https://q", [("a", "b")]), ("PC", "https://q", [])]),
                 render.thanks_page("en", "open", "/s", "/p", "/thanks"), render.message_page("en", 410)]
        for body in pages:
            page = parse(body)
            self.assertIn(page.lang, ("ru", "en"))
            for control in page.controls:
                self.assertIn(control.get("id"), page.labels_for, control)
            for form in page.forms:
                for button in form["buttons"]:
                    self.assertEqual(button.get("type"), "submit")
            self.assertIn(b'name="viewport"', body)

    def test_button_contrast(self):
        import os
        from ymds.web.site import STATIC_DIR
        with open(os.path.join(STATIC_DIR, "style.css")) as f:
            css = f.read()

        def luminance(hexcolour):
            rgb = [int(hexcolour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
            lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
            return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

        def contrast(a, b):
            hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
            return (hi + 0.05) / (lo + 0.05)

        checked = 0
        for selector in (".button.primary", ".button.secondary", ".button.primary:hover", ".button.secondary:hover"):
            rule = re.search(re.escape(selector) + r"\s*\{([^}]*)\}", css).group(1)
            background = re.search(r"background:\s*(#[0-9a-fA-F]{6})", rule).group(1)
            colour = re.search(r"(?<![-\w])color:\s*(#[0-9a-fA-F]{6})", rule)
            colour = colour.group(1) if colour else "#ffffff"
            self.assertGreaterEqual(contrast(background, colour), 4.5, selector)
            checked += 1
        body = re.search(r"body\s*\{([^}]*)\}", css).group(1)
        self.assertGreaterEqual(contrast(re.search(r"background:\s*(#\w{6})", body).group(1),
                                         re.search(r"color:\s*(#\w{6})", body).group(1)), 4.5)
        self.assertEqual(checked, 4)

    def test_no_external_resources(self):
        config = make_config(8443)
        body = render.landing_page("en", config).decode()
        self.assertFalse(re.search(r'(src|href)="(https?:)?//', body))


class SlowClients(unittest.TestCase):
    """A client that trickles its request is cut off after the request deadline (Clock-driven)."""

    def test_request_deadline_408(self):
        site_clock = Clock()
        live = LiveSite(self, site_reactor=site_clock, request_deadline=10.0)
        result = {}

        def trickle():
            s = socket.create_connection(("127.0.0.1", live.port), timeout=5)
            s.sendall(b"POST /donate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nam")
            result["socket"] = s

        def read():
            s = result["socket"]
            data = s.recv(4096)
            s.close()
            return data

        async def go():
            await threads.deferToThread(trickle)
            from twisted.internet.task import deferLater
            await deferLater(reactor, 0.2, lambda: None)
            site_clock.advance(11)
            data = await threads.deferToThread(read)
            self.assertTrue(data.startswith(b"HTTP/1.1 408"), data[:40])
        return run(go())


class OverTLS(unittest.TestCase):
    """HSTS is sent over TLS (and behind a trusted proxy that says https), never over plain HTTP."""

    def test_hsts_on_tls(self):
        from datetime import datetime, timedelta, timezone
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        from twisted.internet import ssl
        from tests.support.redis_server import free_port
        from tests.support.queues import RecordingQueue
        from tests.test_web_support import Client
        from ymds.metrics import Registry
        from ymds.web.site import make_site

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = datetime.now(timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(1).not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
                .sign(key, hashes.SHA256()))
        pem = (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
               + cert.public_bytes(serialization.Encoding.PEM))
        options = ssl.PrivateCertificate.loadPEM(pem).options()
        port = free_port()
        config = make_config(port, server={"public_url": f"https://127.0.0.1:{port}"})
        site = make_site(reactor, config, RecordingQueue(), Registry(), {})
        listening = reactor.listenSSL(port, site, options, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        client = Client(f"https://127.0.0.1:{port}", tls=True)

        async def go():
            response, body = await client.request("GET", "/?lang=en")
            self.assertEqual(response.code, 200)
            self.assertEqual(header(response, "strict-transport-security"), "max-age=31536000")
            self.assertIn("Secure", header(response, "set-cookie"))
            response, _ = await client.request("GET", "/static/style.css")
            self.assertEqual(header(response, "strict-transport-security"), "max-age=31536000")
        return run(go())

    def test_hsts_behind_trusted_proxy(self):
        live = LiveSite(self, config=None)
        proxied = LiveSite(self, config=make_config(0, server={"trusted_proxies": ["127.0.0.1"]}))

        async def go():
            response, _ = await live.request("GET", "/", headers={"x-forwarded-proto": "https"})
            self.assertIsNone(header(response, "strict-transport-security"))  # untrusted peer: ignored
            response, _ = await proxied.request("GET", "/", headers={"x-forwarded-proto": "https"})
            self.assertEqual(header(response, "strict-transport-security"), "max-age=31536000")
        return run(go())
