"""Hostile input against a real web node over TLS, with billing behind it.

Forged signatures, tampered links, replays, oversized and malformed bodies, a slow client,
labels carrying injection attempts, and a TLS scan (sslyze).  Every refusal is checked on
the wire (status) and in the ledger (nothing credited; forged bodies quarantined).
"""
from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.parse

from twisted.internet import threads
from twisted.trial import unittest

from tests.e2e.harness import LINK_SECRET, NOTIFICATION_SECRET, Cluster, as_deferred, record, wait_until
from tests.support import webflow
from tests.support.notify_sender import encode, notification_fields

_CTX = ssl.create_default_context()
_CTX.check_hostname = False
_CTX.verify_mode = ssl.CERT_NONE


def post(sender, body: bytes, content_type: str = "application/x-www-form-urlencoded", method: str = "POST"):
    import http.client
    conn = http.client.HTTPSConnection("127.0.0.1", sender.port, timeout=15, context=_CTX)
    try:
        conn.request(method, "/yoomoney/notify", body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


async def hostile_labels(self) -> tuple[dict, list]:
    """Send signed notifications with hostile labels through ``self.web``; check the ledger
    kept each accepted one as an unmatched payment, verbatim.  Returns (labels, accepted)."""
    labels = {
        "sql": "'; DROP TABLE payments; --",
        "sql2": "x' OR '1'='1",
        "html": "<script>alert(1)</script>",
        "unicode": "оплата\u202e\u200bmoc.live",
        "emoji": "💸" * 10,
        "overlong": "a" * 65,
        "very long": "L" * 5000,
        "newline": "line1\r\nX-Injected: 1",
        "percent": "%27%3B--",
        "nul-like": "a\\x00b",
    }
    statuses = {}
    for name, label in labels.items():
        fields = notification_fields(NOTIFICATION_SECRET, "100.00", label)
        statuses[name] = (await threads.deferToThread(post, self.sender, encode(fields)))[0]
    # Never a server error; every accepted one lands in the ledger as an unmatched payment.
    self.assertTrue(all(s in (200, 400) for s in statuses.values()), statuses)
    accepted = [name for name, s in statuses.items() if s == 200]
    await wait_until(lambda: self.ledger().payments() == len(accepted) and self.cluster.drained("billing"),
                     timeout=30, what="the accepted ones recorded")
    rows = self.ledger().payment_rows()
    self.assertEqual({r[2] for r in rows}, {"unmatched"} if rows else set())
    stored = {r[1] for r in rows}
    raws = "".join(r[0] for r in self.ledger().query("SELECT raw FROM payments"))
    for name in accepted:
        # Kept as received, never interpreted: the label column holds the first 256
        # characters (YooMoney allows 64), the raw fields hold all of it.
        self.assertIn(labels[name][:256], stored, name)
        self.assertIn(json.dumps(labels[name])[1:-1], raws, name)
    self.assertEqual(self.ledger().scalar("SELECT count(*) FROM invoices"), 0)
    # The tables are intact and the web node is healthy.
    self.assertEqual((await threads.deferToThread(webflow.request, self.web.base + "/healthz"))[0], 200)
    record("injection labels", statuses=statuses, recorded_unmatched=len(rows))
    return labels, accepted


class SecurityTests(unittest.TestCase):
    timeout = 240

    def setUp(self):
        self.cluster = Cluster(self, ledger="sqlite", telegram=False)
        self.billing = self.cluster.node("billing", "billing")
        self.web = self.cluster.node("web", "web")
        self.sender = self.cluster.sender(self.web, concurrency=1)

    def ledger(self):
        return self.cluster.ledger

    async def one_invoice(self, chat: int = 777) -> dict:
        return (await self.cluster.create_invoices([chat]))[chat]

    @as_deferred
    async def test_forged_signatures_are_refused_and_quarantined(self):
        invoice = await self.one_invoice()
        genuine = notification_fields(NOTIFICATION_SECRET, invoice["amount"], invoice["label"])
        forged = {
            "wrong secret": notification_fields("not-the-secret-at-all-000000", invoice["amount"], invoice["label"]),
            "amount changed after signing": {**genuine, "amount": "199.00"},
            "label changed after signing": {**genuine, "label": "x" + genuine["label"][1:]},
            "operation changed after signing": {**genuine, "operation_id": genuine["operation_id"] + "0"},
            "withdraw_amount raised under sign": {**genuine, "withdraw_amount": "1990.00"},
            "no signature": {k: v for k, v in genuine.items() if k not in ("sign", "sha1_hash")},
            "sha1 of another body": {**{k: v for k, v in genuine.items() if k != "sign"},
                                     "sha1_hash": "0" * 40},
            "empty signature": {**genuine, "sign": "", "sha1_hash": ""},
        }
        for name, fields in forged.items():
            status, _ = await threads.deferToThread(post, self.sender, encode(fields))
            self.assertEqual(status, 403, name)
        await wait_until(lambda: len(self.ledger().quarantined()) == len(forged), timeout=30,
                         what="every forged body quarantined")
        self.assertEqual(self.ledger().payments(), 0)
        reasons = [r[0] for r in self.ledger().quarantined()]
        self.assertTrue(all(r.startswith("signature:") for r in reasons), reasons)
        # The genuine one still goes through, once.
        self.assertEqual(await threads.deferToThread(post, self.sender, encode(genuine)), (200, b"OK\n"))
        await wait_until(lambda: self.ledger().payments() == 1 and self.cluster.drained("billing"), timeout=30)
        self.assertEqual(self.ledger().payment_rows()[0][2], "paid")

    @as_deferred
    async def test_forged_flood_cannot_fill_storage(self):
        """300 distinct forged notifications from one address: refusals are rate-limited, the
        quarantine stays bounded, and a genuine notification from that address still passes."""
        invoice = await self.one_invoice()

        def flood():
            answers = []
            for i in range(300):
                fields = notification_fields("forged-secret-000000000000000", "100.00", "", operation_id=f"forged-{i}")
                answers.append(post(self.sender, encode(fields))[0])
            return answers
        answers = await threads.deferToThread(flood)
        counts = {status: answers.count(status) for status in set(answers)}
        self.assertEqual(set(counts), {403, 429}, counts)
        self.assertGreater(counts[429], 0)
        await wait_until(lambda: self.cluster.drained("billing"), timeout=30)
        quarantined = len(self.ledger().quarantined())
        self.assertLessEqual(quarantined, counts[403])
        self.assertLess(quarantined, 300)
        genuine = encode(notification_fields(NOTIFICATION_SECRET, invoice["amount"], invoice["label"]))
        self.assertEqual(await threads.deferToThread(post, self.sender, genuine), (200, b"OK\n"))
        await wait_until(lambda: self.ledger().payments() == 1, timeout=30)
        record("forged flood", sent=300, answers=counts, quarantined=quarantined)

    @as_deferred
    async def test_tampered_and_expired_links(self):
        from ymds.links import sign_token
        invoice = await self.one_invoice()
        url = invoice["url"]
        status, _, page = await threads.deferToThread(webflow.request, url)
        self.assertEqual(status, 200)
        token = url.rsplit("/", 1)[1]
        base = url.rsplit("/", 1)[0]
        variants = set()
        for i in range(len(token)):
            for c in ("A", "_", "0"):
                if token[i] != c:
                    variants.add(token[:i] + c + token[i + 1:])
                    break
        variants |= {token[:-1], token + "A", token[1:], "", "..%2f..%2fetc%2fpasswd", "%00" + token,
                     token.replace(".", "..")}
        refused = 0
        for bad in sorted(variants):
            status, _, page = await threads.deferToThread(webflow.request, f"{base}/{bad}")
            self.assertIn(status, (403, 404), bad)
            self.assertNotIn("Traceback", page)
            refused += 1
        self.assertGreater(refused, 20)
        record("tampered links", refused=refused)
        # A token signed with another key, and one signed correctly but expired.
        label = urllib.parse.unquote(invoice["label"])
        status, _, _ = await threads.deferToThread(
            webflow.request, f"{base}/{sign_token(b'another-secret-0123456789abcdef', label, int(time.time()) + 3600)}")
        self.assertEqual(status, 403)
        status, _, page = await threads.deferToThread(
            webflow.request, f"{base}/{sign_token(LINK_SECRET.encode(), label, int(time.time()) - 60)}")
        self.assertEqual(status, 410)
        self.assertEqual(self.ledger().payments(), 0)

    @as_deferred
    async def test_replayed_notification_credits_once(self):
        invoice = await self.one_invoice()
        body = encode(notification_fields(NOTIFICATION_SECRET, invoice["amount"], invoice["label"]))
        answers = [await threads.deferToThread(post, self.sender, body) for _ in range(5)]
        self.assertEqual(answers, [(200, b"OK\n")] * 5)
        await wait_until(lambda: self.ledger().payments() == 1 and self.cluster.drained("billing"), timeout=30)
        # Replayed again after the enqueue key is gone: billing sees a duplicate.
        for key in self.cluster.keys():
            if ":q:billing:key:op:" in key:
                self.cluster.r("DEL", key)
        self.assertEqual(await threads.deferToThread(post, self.sender, body), (200, b"OK\n"))
        await wait_until(lambda: self.billing.count(" duplicate source=") == 1, timeout=30, what="the duplicate")
        await wait_until(lambda: self.cluster.drained("billing"), timeout=30)
        self.assertEqual(self.ledger().payments(), 1)
        self.assertEqual(self.web.count("notification duplicate 200"), 4)
        self.assertEqual(self.ledger().scalar("SELECT count(*) FROM subscriptions"), 1)
        jobs = self.cluster.stream_jobs("bot")
        self.assertEqual(sorted(j["task"] for j in jobs), ["grant_access", "notify"])

    @as_deferred
    async def test_oversized_and_malformed_bodies(self):
        invoice = await self.one_invoice()
        genuine = notification_fields(NOTIFICATION_SECRET, invoice["amount"], invoice["label"])
        cases = [
            ("oversized", encode({**genuine, "pad": "x" * 70000}), "application/x-www-form-urlencoded", "POST", 413),
            ("megabyte", b"a=" + b"x" * (1 << 20), "application/x-www-form-urlencoded", "POST", 413),
            ("json", b'{"operation_id": "1"}', "application/json", "POST", 415),
            ("charset", encode(genuine), "application/x-www-form-urlencoded; charset=koi8-r", "POST", 415),
            ("get", b"", "application/x-www-form-urlencoded", "GET", 405),
            ("put", encode(genuine), "application/x-www-form-urlencoded", "PUT", 405),
            ("empty", b"", "application/x-www-form-urlencoded", "POST", 400),
            ("garbage", bytes(range(256)), "application/x-www-form-urlencoded", "POST", 400),
            ("not utf-8", encode(genuine) + b"&firstname=%FF%FE", "application/x-www-form-urlencoded", "POST", 400),
            ("key twice", encode(genuine) + b"&amount=1.00", "application/x-www-form-urlencoded", "POST", 400),
            ("too many fields", encode({**genuine, **{f"f{i}": "1" for i in range(60)}}),
             "application/x-www-form-urlencoded", "POST", 400),
            ("negative amount", encode({**genuine, "amount": "-1.00"}), "application/x-www-form-urlencoded", "POST", 400),
            ("three decimals", encode({**genuine, "amount": "1.001"}), "application/x-www-form-urlencoded", "POST", 400),
            ("currency", encode({**genuine, "currency": "840"}), "application/x-www-form-urlencoded", "POST", 400),
            ("missing operation", encode({k: v for k, v in genuine.items() if k != "operation_id"}),
             "application/x-www-form-urlencoded", "POST", 400),
        ]
        for name, body, content_type, method, expected in cases:
            status, _ = await threads.deferToThread(post, self.sender, body, content_type, method)
            self.assertIn(status, (expected, 429), name)  # 429: the refusal rate limit may kick in
        self.assertEqual(self.ledger().payments(), 0)
        # Refusals spend the sender's token bucket, never the genuine notifications' path.
        self.assertEqual(await threads.deferToThread(post, self.sender, encode(genuine)), (200, b"OK\n"))
        await wait_until(lambda: self.ledger().payments() == 1, timeout=30)

    @as_deferred
    async def test_slow_clients_do_not_stop_others(self):
        """Fifty connections dribble a request one byte at a time; others are served meanwhile."""
        invoice = await self.one_invoice()
        slow = []
        head = (b"POST /yoomoney/notify HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 5000\r\n\r\n")
        for _ in range(50):
            s = _CTX.wrap_socket(socket.create_connection(("127.0.0.1", self.web.port), timeout=10))
            s.sendall(head[:20])
            slow.append(s)
        self.addCleanup(lambda: [s.close() for s in slow])

        def others_served():
            answers = []
            for i in range(10):
                for s in slow:
                    try:
                        s.sendall(b"a")
                    except OSError:
                        pass
                answers.append(webflow.request(self.web.base + "/healthz")[0])
            answers.append(webflow.request(invoice["url"])[0])
            return answers
        answers = await threads.deferToThread(others_served)
        self.assertEqual(answers, [200] * 11)
        body = encode(notification_fields(NOTIFICATION_SECRET, invoice["amount"], invoice["label"]))
        self.assertEqual(await threads.deferToThread(post, self.sender, body), (200, b"OK\n"))
        await wait_until(lambda: self.ledger().payments() == 1, timeout=30)
        # None of the slow requests was taken as a notification.
        self.assertEqual(self.web.count("notification ok"), 1)

    @as_deferred
    async def test_injection_labels_are_kept_as_text(self):
        """Signed notifications whose labels try SQL, HTML, unicode tricks and overlength."""
        await hostile_labels(self)

    @as_deferred
    async def test_donation_form_injection_is_escaped(self):
        name = '<img src=x onerror=alert(1)>'
        message = "</textarea><script>alert('x')</script> ' OR 1=1 --"
        pay_url = await threads.deferToThread(webflow.donate, self.web.base, "50", name, message)
        status, headers, page = await threads.deferToThread(webflow.request, pay_url)
        self.assertEqual(status, 200)
        self.assertNotIn("<script>alert", page)
        self.assertNotIn("<img src=x", page)
        self.assertIn("default-src", headers.get("Content-Security-Policy", ""))
        await threads.deferToThread(webflow.pay_in_sandbox, pay_url, "AC")
        await threads.deferToThread(webflow.wait_for_status, pay_url, "paid", 30)
        await wait_until(lambda: self.cluster.drained("billing"), timeout=30)
        jobs = [j for j in self.cluster.stream_jobs("bot") if j["task"] == "notify_admins"]
        self.assertEqual(len(jobs), 1)
        self.assertIn(message, str(jobs[0]["args"]))  # kept verbatim; the bot escapes when rendering
        stored = self.ledger().scalar("SELECT description FROM invoices WHERE kind = 'donation'")
        self.assertIsNotNone(stored)


class InjectionToOwnerTests(unittest.TestCase):
    """The same hostile labels reach the owner's Telegram chat as alerts: rendered as text
    (the fake Bot API refuses malformed HTML as Telegram does), each exactly once."""

    timeout = 240

    @as_deferred
    async def test_hostile_labels_in_owner_alerts(self):
        from tests.e2e.harness import OWNER
        self.cluster = Cluster(self, ledger="sqlite", telegram=True)
        self.billing = self.cluster.node("billing", "billing")
        self.web = self.cluster.node("web", "web,bot")
        self.sender = self.cluster.sender(self.web, concurrency=1)
        labels, accepted = await hostile_labels(self)
        telegram = self.cluster.telegram
        await wait_until(lambda: len(telegram.sent(OWNER)) >= len(accepted), timeout=60,
                         what="an alert per unmatched payment")
        await wait_until(lambda: self.cluster.drained("bot"), timeout=60, what="the bot queue drained")
        alerts = telegram.sent(OWNER)
        self.assertEqual(len(alerts), len(accepted))
        visible = "\n".join(m["visible"] for m in alerts)
        for name in accepted:
            shown = labels[name][:64].replace("\r", "").replace("\n", "")
            self.assertIn(shown[:20], visible.replace("\r", "").replace("\n", ""), name)
        self.assertEqual(self.cluster.queue_state("bot")["dead"], 0)
        record("injection labels to the owner", alerts=len(alerts), dead_letters=0)

    ledger = SecurityTests.ledger


class TLSScanTests(unittest.TestCase):
    """sslyze against the web node on ``tls:<dir>``: no protocol below TLS 1.2, no weak cipher."""

    timeout = 180

    def test_sslyze_scan(self):
        from sslyze import (Scanner, ServerNetworkLocation, ServerScanRequest, ScanCommand,
                            ScanCommandAttemptStatusEnum)
        cluster = Cluster(self, ledger="sqlite", telegram=False)
        web = cluster.node("web", "web,billing")
        location = ServerNetworkLocation("localhost", web.port, ip_address="127.0.0.1")
        commands = {ScanCommand.SSL_2_0_CIPHER_SUITES, ScanCommand.SSL_3_0_CIPHER_SUITES,
                    ScanCommand.TLS_1_0_CIPHER_SUITES, ScanCommand.TLS_1_1_CIPHER_SUITES,
                    ScanCommand.TLS_1_2_CIPHER_SUITES, ScanCommand.TLS_1_3_CIPHER_SUITES,
                    ScanCommand.TLS_COMPRESSION, ScanCommand.HEARTBLEED, ScanCommand.ROBOT,
                    ScanCommand.OPENSSL_CCS_INJECTION, ScanCommand.TLS_FALLBACK_SCSV,
                    ScanCommand.SESSION_RENEGOTIATION, ScanCommand.ELLIPTIC_CURVES}
        scanner = Scanner()
        scanner.queue_scans([ServerScanRequest(server_location=location, scan_commands=commands)])
        results = list(scanner.get_results())
        self.assertEqual(len(results), 1)
        result = results[0].scan_result
        self.assertIsNotNone(result, results[0].connectivity_error_trace)

        def accepted(attempt):
            self.assertEqual(attempt.status, ScanCommandAttemptStatusEnum.COMPLETED, attempt.error_trace)
            return [s.cipher_suite.name for s in attempt.result.accepted_cipher_suites]

        for old in ("ssl_2_0_cipher_suites", "ssl_3_0_cipher_suites", "tls_1_0_cipher_suites",
                    "tls_1_1_cipher_suites"):
            self.assertEqual(accepted(getattr(result, old)), [], old)
        tls12 = accepted(result.tls_1_2_cipher_suites)
        tls13 = accepted(result.tls_1_3_cipher_suites)
        self.assertTrue(tls12 and tls13, (tls12, tls13))
        weak = ("NULL", "EXPORT", "RC4", "DES", "MD5", "CBC", "_SHA", "anon", "ADH", "AECDH", "PSK", "SRP", "CAMELLIA",
                "ARIA", "IDEA", "SEED", "TLS_RSA_")
        for name in tls12:
            self.assertTrue(name.startswith("TLS_ECDHE_"), name)
            self.assertTrue(name.endswith(("_GCM_SHA256", "_GCM_SHA384", "_CHACHA20_POLY1305_SHA256")), name)
            self.assertFalse(any(w in name for w in weak if w not in ("_SHA",)), name)
        self.assertFalse(result.tls_compression.result.supports_compression)
        self.assertFalse(result.heartbleed.result.is_vulnerable_to_heartbleed)
        self.assertFalse(result.openssl_ccs_injection.result.is_vulnerable_to_ccs_injection)
        self.assertNotIn("VULNERABLE", result.robot.result.robot_result.name.replace("NOT_VULNERABLE", ""))
        self.assertFalse(result.session_renegotiation.result.is_vulnerable_to_client_renegotiation_dos)
        record("sslyze", tls12=tls12, tls13=tls13, refused=["SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"])
