"""YooMoney's side of notifications, for bursts: build, sign and deliver like YooMoney does.

:func:`notification_fields` makes the form fields of one incoming payment and signs them
with ymds.yoomoney.signature (both ``sha1_hash`` and ``sign``, as the sandbox does).
:class:`NotificationSender` posts them over HTTPS keep-alive from a few threads and, like
YooMoney, delivers again whatever was not answered 200 (YooMoney waits 10 min and 1 h;
here the retry comes after ``retry_delay`` so a test does not wait an hour).  Every answer
is recorded, so a test can count the 200s, 503s and refused connections.
"""
from __future__ import annotations

import http.client
import itertools
import ssl
import threading
import time
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import ROUND_DOWN, Decimal

from ymds.yoomoney.signature import add_signatures

_CTX = ssl.create_default_context()
_CTX.check_hostname = False
_CTX.verify_mode = ssl.CERT_NONE

_ids = itertools.count(1)


def new_operation_id(prefix: str = "e2e") -> str:
    return f"{prefix}-{int(time.time() * 1000)}-{next(_ids)}"


def notification_fields(secret: str, withdraw_amount: Decimal | str, label: str = "", *,
                        operation_id: str | None = None, notification_type: str = "card-incoming",
                        sender: str = "", unaccepted: bool = False, codepro: bool = False,
                        fee: Decimal = Decimal("0.03"), datetime_text: str = "2026-11-26T21:00:00.000+03:00",
                        scheme: str = "both", test: bool = False) -> dict[str, str]:
    withdraw = Decimal(withdraw_amount).quantize(Decimal("0.01"))
    amount = (withdraw * (1 - fee)).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    fields = {
        "notification_type": notification_type,
        "operation_id": operation_id or new_operation_id(),
        "amount": str(amount),
        "withdraw_amount": str(withdraw),
        "currency": "643",
        "datetime": datetime_text,
        "sender": sender,
        "codepro": "true" if codepro else "false",
        "label": label,
        "unaccepted": "true" if unaccepted else "false",
    }
    if test:
        fields["test_notification"] = "true"
    return add_signatures(fields, secret, scheme)


def encode(fields: dict[str, str]) -> bytes:
    return urllib.parse.urlencode(fields).encode("utf-8")


class NotificationSender:
    """Deliver bodies to ``https://host:port/yoomoney/notify`` until each is answered 200."""

    def __init__(self, host: str, port: int, path: str = "/yoomoney/notify", concurrency: int = 8,
                 retry_delay: float = 0.2, timeout: float = 10.0, max_tries: int = 1000):
        self.host, self.port, self.path = host, port, path
        self.concurrency = concurrency
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.max_tries = max_tries
        self.answers: Counter = Counter()      # status (or "error") -> count
        self.delivered: Counter = Counter()    # body -> 200s received
        self._local = threading.local()
        self._lock = threading.Lock()
        self.stop = threading.Event()
        self._all: list[http.client.HTTPSConnection] = []

    def _connection(self) -> http.client.HTTPSConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=_CTX)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def post_once(self, body: bytes) -> int | str:
        """One delivery attempt: the HTTP status, or "error" when no answer came."""
        try:
            conn = self._connection()
            conn.request("POST", self.path, body=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
            response = conn.getresponse()
            response.read()
            status = response.status
            if response.getheader("connection", "").lower() == "close":
                self._drop()
        except (OSError, http.client.HTTPException):
            self._drop()
            status = "error"
        with self._lock:
            self.answers[status] += 1
            if status == 200:
                self.delivered[body] += 1
        return status

    def deliver(self, body: bytes) -> int:
        """Deliver until 200 (YooMoney's retries, compressed); returns the number of tries."""
        for tries in range(1, self.max_tries + 1):
            if self.post_once(body) == 200:
                return tries
            if self.stop.wait(self.retry_delay):
                break
        raise RuntimeError(f"notification not accepted after {self.max_tries} tries")

    def deliver_all(self, bodies: list[bytes]) -> list[int]:
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(self.deliver, bodies))

    def close(self) -> None:
        self.stop.set()
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
