"""A buyer's path through the pages and the sandbox, with a plain HTTP client (no browser)."""
from __future__ import annotations

import html
import json
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

_CTX = ssl.create_default_context()
_CTX.check_hostname = False
_CTX.verify_mode = ssl.CERT_NONE

SWITCHES = ("unaccepted", "codepro", "test_notification", "duplicate", "fail_first")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_OPENER = urllib.request.build_opener(urllib.request.HTTPSHandler(context=_CTX), _NoRedirect)


def request(url: str, data: dict | None = None, timeout: float = 15):
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with _OPENER.open(urllib.request.Request(url, data=body), timeout=timeout) as r:
            return r.status, r.headers, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode("utf-8", "replace")


def forms(page: str) -> list[tuple[str, dict]]:
    out = []
    for action, body in re.findall(r'<form[^>]*action="([^"]*)"[^>]*>(.*?)</form>', page, re.S):
        fields = {k: html.unescape(v) for k, v in re.findall(r'<input[^>]*name="([^"]*)"[^>]*value="([^"]*)"', body)}
        out.append((html.unescape(action), fields))
    return out


def pay_in_sandbox(pay_url: str, payment_type: str = "AC", switches: tuple[str, ...] = ()) -> str:
    """Press the pay button of ``payment_type`` and then Pay in the sandbox; returns successURL."""
    status, _, page = request(pay_url)
    assert status == 200, (status, page[:500])
    action, fields = next((a, f) for a, f in forms(page) if f.get("paymentType") == payment_type)
    status, _, confirm = request(action, fields)
    assert status == 200, (status, confirm[:500])
    pay_action, pay_fields = forms(confirm)[0]
    for switch in SWITCHES:
        if switch not in switches:
            pay_fields.pop(switch, None)
    pay_fields["action"] = "pay"
    status, headers, body = request(urllib.parse.urljoin(action, pay_action), pay_fields)
    assert status == 303, (status, body[:500])
    return headers["Location"]


def wait_for_status(pay_url: str, wanted: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        status, _, body = request(pay_url + "/status")
        if status == 200:
            last = json.loads(body)
            if last.get("status") == wanted:
                return last
        time.sleep(0.1)
    raise AssertionError(f"{pay_url} never reached {wanted!r}; last status {last}")


def donate(base: str, amount: str, name: str = "", message: str = "") -> str:
    status, headers, body = request(base + "/donate", {"amount": amount, "name": name, "message": message})
    assert status == 303, (status, body[:500])
    return headers["Location"]
