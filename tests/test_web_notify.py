"""POST /yoomoney/notify: every refusal and every acceptance, over a real loopback socket."""
from __future__ import annotations

import socket

from twisted.internet import defer, reactor, threads
from twisted.trial import unittest

from tests.test_web_support import SECRET, LiveSite, header
from ymds.yoomoney.notification import encode_form
from ymds.yoomoney.signature import add_signatures

FORM = {"content-type": "application/x-www-form-urlencoded"}


def notification(operation_id="op-1", label="LabelLabel1234", scheme="sha1", secret=SECRET, **extra):
    fields = {
        "notification_type": "card-incoming", "operation_id": operation_id, "amount": "145.50",
        "withdraw_amount": "150.00", "currency": "643", "datetime": "2026-11-26T21:00:00Z", "sender": "",
        "codepro": "false", "label": label,
    }
    fields.update(extra)
    return add_signatures(fields, secret, scheme)


def body_of(fields) -> bytes:
    return encode_form(fields)


class NotifyRefusals(unittest.TestCase):
    def setUp(self):
        self.live = LiveSite(self, refusal_rate=(1.0, 5), quarantine_rate=(5.0, 100))
        self.queue = self.live.queue

    def count(self, result):
        return self.live.metrics.counter("ymds_web_notifications", "", ("result",)).value(result=result)

    def test_other_method_405_with_allow(self):
        async def go():
            for method in ("GET", "PUT", "DELETE"):
                response, body = await self.live.request(method, "/yoomoney/notify")
                self.assertEqual(response.code, 405)
                self.assertEqual(header(response, "allow"), "POST")
            self.assertEqual(self.queue.enqueued, [])
            self.assertEqual(self.count("refused"), 3)
        return defer.Deferred.fromCoroutine(go())

    def test_other_content_type_415(self):
        async def go():
            for ctype in ("application/json", "text/plain", "multipart/form-data; boundary=x",
                          "application/x-www-form-urlencoded; charset=koi8-r"):
                response, _ = await self.live.request("POST", "/yoomoney/notify", body_of(notification()),
                                                      {"content-type": ctype})
                self.assertEqual(response.code, 415, ctype)
            response, _ = await self.live.request("POST", "/yoomoney/notify", body_of(notification()))
            self.assertEqual(response.code, 415)  # no content type at all
            self.assertEqual(self.queue.enqueued, [])
        return defer.Deferred.fromCoroutine(go())

    def test_charset_utf8_accepted(self):
        async def go():
            response, body = await self.live.request(
                "POST", "/yoomoney/notify", body_of(notification()),
                {"content-type": "application/x-www-form-urlencoded; charset=UTF-8"})
            self.assertEqual((response.code, body), (200, b"OK\n"))
        return defer.Deferred.fromCoroutine(go())

    def test_body_over_max_body_413_before_reading(self):
        """Content-Length above server.max_body is refused at once; the body is never read."""
        def raw():
            with socket.create_connection(("127.0.0.1", self.live.port), timeout=5) as s:
                s.sendall(b"POST /yoomoney/notify HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                          b"Content-Length: 10000000\r\n\r\n" + b"a=" + b"b" * 1000)
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                return data
        d = threads.deferToThread(raw)

        def check(data):
            self.assertTrue(data.startswith(b"HTTP/1.1 413"), data[:60])
            self.assertIn(b"connection: close", data.lower())
            self.assertEqual(self.queue.enqueued, [])
        return d.addCallback(check)

    def test_chunked_body_over_max_body_413(self):
        def raw():
            with socket.create_connection(("127.0.0.1", self.live.port), timeout=5) as s:
                s.sendall(b"POST /yoomoney/notify HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n")
                chunk = b"a" * 3000
                try:
                    for _ in range(4):
                        s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                except OSError:
                    pass
                data = b""
                while True:
                    try:
                        part = s.recv(4096)
                    except OSError:
                        break
                    if not part:
                        break
                    data += part
                return data
        return threads.deferToThread(raw).addCallback(lambda data: self.assertTrue(data.startswith(b"HTTP/1.1 413"), data[:60]))

    def test_body_at_max_body_is_read(self):
        """Exactly server.max_body is allowed (parsed, then refused as malformed: 400, not 413)."""
        async def go():
            body = b"a=" + b"b" * (self.live.config.server.max_body - 2)
            response, _ = await self.live.request("POST", "/yoomoney/notify", body, FORM)
            self.assertEqual(response.code, 400)
        return defer.Deferred.fromCoroutine(go())

    def test_parse_errors_400(self):
        async def go():
            bad = [b"", b"garbage", b"a=1&a=2", b"\xff\xfe=1", body_of({**notification(), "amount": "1,5"}),
                   body_of({k: v for k, v in notification().items() if k != "operation_id"}),
                   body_of({**notification(), "currency": "840"})]
            for i, body in enumerate(bad):
                response, text = await self.live.request("POST", "/yoomoney/notify", body, FORM)
                self.assertEqual(response.code, 400 if i < 5 else 429, body)
            self.assertEqual(self.queue.enqueued, [])
            self.assertEqual(self.count("malformed"), 5)   # then the refusal bucket (burst 5) is empty
            self.assertEqual(self.count("rate_limited"), 2)
        return defer.Deferred.fromCoroutine(go())

    def test_forged_403_and_quarantined_bounded(self):
        async def go():
            fields = notification(secret="not-the-secret", lastname="Иванов")
            fields["padding_field"] = "x" * 3000  # the quarantined copy is cut to a bound
            response, _ = await self.live.request("POST", "/yoomoney/notify", body_of(fields), FORM)
            self.assertEqual(response.code, 403)
            [(queue, task, args, key)] = self.queue.enqueued
            self.assertEqual((queue, task, key), ("billing", "quarantine", None))
            self.assertEqual(args["reason"], "signature: sha1_mismatch")
            self.assertEqual(args["remote"], "127.0.0.1")
            self.assertIn("operation_id=op-1", args["body"])
            self.assertEqual(self.count("forged"), 1)
        return defer.Deferred.fromCoroutine(go())

    def test_quarantine_body_is_cut(self):
        from ymds.web.notify import cut_for_quarantine
        self.assertEqual(len(cut_for_quarantine(b"a" * 100000).encode()), 8192)
        self.assertEqual(cut_for_quarantine("жж".encode()[:3]), "ж\ufffd")

    def test_forged_rate_limited_per_address(self):
        """Past the burst, forged bodies get 429 and are not stored: storage cannot be filled."""
        async def go():
            codes = []
            for i in range(8):
                response, _ = await self.live.request(
                    "POST", "/yoomoney/notify", body_of(notification(operation_id=f"f{i}", secret="bad")), FORM)
                codes.append(response.code)
            self.assertEqual(codes, [403] * 5 + [429] * 3)
            self.assertEqual(len(self.queue.enqueued), 5)
            self.live.clock.advance(2)  # 1 token per second comes back
            response, _ = await self.live.request(
                "POST", "/yoomoney/notify", body_of(notification(operation_id="later", secret="bad")), FORM)
            self.assertEqual(response.code, 403)
            # a genuine notification from the same address is never throttled
            response, _ = await self.live.request("POST", "/yoomoney/notify", body_of(notification()), FORM)
            self.assertEqual(response.code, 200)
        return defer.Deferred.fromCoroutine(go())

    def test_quarantine_overall_bound(self):
        """Many addresses (behind a trusted proxy) still cannot store more than the overall rate."""
        live = LiveSite(self, refusal_rate=(1.0, 5), quarantine_rate=(0.01, 3))
        async def go():
            for i in range(6):
                response, _ = await live.request(
                    "POST", "/yoomoney/notify", body_of(notification(operation_id=f"q{i}", secret="bad")), FORM)
                self.assertEqual(response.code, 403 if i < 5 else 429)
            self.assertEqual(len(live.queue.enqueued), 3)  # the rest answered 403 without being stored
        return defer.Deferred.fromCoroutine(go())

    def test_forged_when_queue_down_503(self):
        async def go():
            self.queue.down = True
            response, _ = await self.live.request("POST", "/yoomoney/notify", body_of(notification(secret="bad")), FORM)
            self.assertEqual(response.code, 503)
        return defer.Deferred.fromCoroutine(go())

    def test_missing_signature_403(self):
        async def go():
            fields = {k: v for k, v in notification().items() if k != "sha1_hash"}
            response, _ = await self.live.request("POST", "/yoomoney/notify", body_of(fields), FORM)
            self.assertEqual(response.code, 403)
            self.assertEqual(self.queue.enqueued[0][2]["reason"], "signature: missing_signature")
        return defer.Deferred.fromCoroutine(go())

    def test_test_notification_200_no_change(self):
        async def go():
            response, body = await self.live.request(
                "POST", "/yoomoney/notify", body_of(notification(test_notification="true")), FORM)
            self.assertEqual((response.code, body), (200, b"OK\n"))
            self.assertEqual(self.queue.enqueued, [])
            self.assertEqual(self.count("test"), 1)
        return defer.Deferred.fromCoroutine(go())

    def test_forged_test_notification_is_403(self):
        async def go():
            response, _ = await self.live.request(
                "POST", "/yoomoney/notify", body_of(notification(test_notification="true", secret="wrong")), FORM)
            self.assertEqual(response.code, 403)
        return defer.Deferred.fromCoroutine(go())


class NotifyAccepted(unittest.TestCase):
    def setUp(self):
        self.live = LiveSite(self)
        self.queue = self.live.queue

    def count(self, result):
        return self.live.metrics.counter("ymds_web_notifications", "", ("result",)).value(result=result)

    def test_verified_enqueued_with_idempotency_key(self):
        async def go():
            for scheme in ("sha1", "sign", "both"):
                fields = notification(operation_id=f"op-{scheme}", scheme=scheme, firstname="Пётр")
                response, body = await self.live.request("POST", "/yoomoney/notify", body_of(fields), FORM)
                self.assertEqual((response.code, body), (200, b"OK\n"), scheme)
            self.assertEqual([e[3] for e in self.queue.enqueued], ["op:op-sha1", "op:op-sign", "op:op-both"])
            queue, task, args, key = self.queue.enqueued[0]
            self.assertEqual((queue, task), ("billing", "apply_payment"))
            self.assertEqual(args["source"], "notification")
            self.assertEqual(args["fields"]["withdraw_amount"], "150.00")
            self.assertEqual(args["fields"]["firstname"], "Пётр")  # raw fields travel to billing as received
            self.assertEqual(self.count("ok"), 3)
        return defer.Deferred.fromCoroutine(go())

    def test_duplicate_still_200(self):
        async def go():
            body = body_of(notification(operation_id="dup"))
            for _ in range(3):
                response, text = await self.live.request("POST", "/yoomoney/notify", body, FORM)
                self.assertEqual((response.code, text), (200, b"OK\n"))
            self.assertEqual(len(self.queue.enqueued), 1)
            self.assertEqual((self.count("ok"), self.count("duplicate")), (1, 2))
        return defer.Deferred.fromCoroutine(go())

    def test_held_then_accepted_both_reach_billing(self):
        async def go():
            held = body_of(notification(operation_id="h1", unaccepted="true"))
            accepted = body_of(notification(operation_id="h1", unaccepted="false"))
            for body in (held, held, accepted, accepted):
                response, text = await self.live.request("POST", "/yoomoney/notify", body, FORM)
                self.assertEqual((response.code, text), (200, b"OK\n"))
            self.assertEqual([e[3] for e in self.queue.enqueued], ["op:h1:held", "op:h1"])
            self.assertEqual((self.count("ok"), self.count("duplicate")), (2, 2))
        return defer.Deferred.fromCoroutine(go())

    def test_answer_only_after_enqueue_fired(self):
        async def go():
            self.queue.hold = defer.Deferred()
            d = self.live.request("POST", "/yoomoney/notify", body_of(notification(operation_id="slow")), FORM)
            for _ in range(20):
                await deferLater(0.01)
            self.assertFalse(d.called)
            self.queue.hold.callback(None)
            response, body = await d
            self.assertEqual((response.code, body), (200, b"OK\n"))
        return defer.Deferred.fromCoroutine(go())

    def test_enqueue_timeout_503(self):
        async def go():
            self.queue.hold = defer.Deferred()
            d = self.live.request("POST", "/yoomoney/notify", body_of(notification(operation_id="stuck")), FORM)
            for _ in range(10):
                await deferLater(0.01)
            self.live.clock.advance(6)  # the enqueue timeout (5 s) runs on the injected clock
            response, _ = await d
            self.assertEqual(response.code, 503)
            self.assertEqual(header(response, "retry-after"), "60")
        return defer.Deferred.fromCoroutine(go())

    def test_queue_down_503(self):
        async def go():
            self.queue.down = True
            response, _ = await self.live.request("POST", "/yoomoney/notify", body_of(notification()), FORM)
            self.assertEqual(response.code, 503)
            self.assertEqual(self.count("unavailable"), 1)
        return defer.Deferred.fromCoroutine(go())

    def test_one_log_line_per_decision_without_secrets(self):
        from twisted.logger import globalLogPublisher
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)

        async def go():
            fields = notification(operation_id="logged", firstname="Secretname", email="a@b.c")
            await self.live.request("POST", "/yoomoney/notify", body_of(fields), FORM)
            await self.live.request("POST", "/yoomoney/notify", body_of(notification(secret="bad", phone="+79990000000")), FORM)
            mine = [e for e in events if e.get("log_namespace") == "ymds.web.notify"]
            self.assertEqual(len(mine), 2)
            from twisted.logger import formatEvent
            text = " ".join(formatEvent(e) + repr(e) for e in mine)
            for secret in (SECRET, fields["sha1_hash"], "Secretname", "a@b.c", "+79990000000"):
                self.assertNotIn(secret, text)
            self.assertIn("notification ok 200", formatEvent(mine[0]))
            self.assertIn("notification forged 403", formatEvent(mine[1]))
        return defer.Deferred.fromCoroutine(go())


def deferLater(seconds):
    from twisted.internet.task import deferLater as later
    return later(reactor, seconds, lambda: None)
