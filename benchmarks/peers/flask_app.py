"""The seed's architecture as a benchmark peer: Flask under gunicorn (sync workers).

- POST /yoomoney/notify: the same sha1_hash check (constant-time), then an RQ enqueue of
  billing.apply_payment (job id = op:<operation_id>), answering 200 once RQ returned.
- GET /pay/<token>: the same HMAC-SHA256 link check, the invoice status read from Redis
  (one HGETALL), a Jinja page with the same QR code (segno, memoised per URL).

Environment: PEER_REDIS_URL, PEER_SECRET (notification secret), PEER_LINK_SECRET,
PEER_PUBLIC_URL.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import time

import redis
import segno
from flask import Flask, Response, abort, request
from markupsafe import Markup
from rq import Queue

app = Flask(__name__)
_redis = redis.Redis.from_url(os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0"))
_queue = Queue("billing", connection=_redis)
SECRET = os.environ.get("PEER_SECRET", "")
LINK_SECRET = os.environ.get("PEER_LINK_SECRET", "").encode()
PUBLIC_URL = os.environ.get("PEER_PUBLIC_URL", "https://127.0.0.1")
SHA1_ORDER = ("notification_type", "operation_id", "amount", "currency", "datetime", "sender", "codepro")

PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Payment</title>
<link rel="stylesheet" href="/static/style.css"></head><body><main><h1>Payment</h1>
<dl><dt>Amount</dt><dd>{{ amount }} ₽</dd><dt>Status</dt><dd>{{ status }}</dd></dl>
{% for pt in ("AC", "PC") %}<form method="post" action="https://yoomoney.ru/quickpay/confirm">
<input type="hidden" name="receiver" value="{{ wallet }}"><input type="hidden" name="quickpay-form" value="button">
<input type="hidden" name="paymentType" value="{{ pt }}"><input type="hidden" name="sum" value="{{ amount }}">
<input type="hidden" name="label" value="{{ label }}"><input type="hidden" name="successURL" value="{{ success }}">
<button type="submit">Pay {{ pt }}</button></form>{% endfor %}
<figure>{{ qr }}</figure></main></body></html>"""


TEMPLATE = app.jinja_env.from_string(PAGE)  # compiled once, as render_template would cache it


@functools.lru_cache(maxsize=1024)
def qr(url: str) -> Markup:
    return Markup(segno.make(url, error="m").svg_inline(scale=1, border=2, omitsize=True))


def verify_token(token: str) -> str:
    try:
        label, expires, mac = token.split(".")
    except ValueError:
        abort(403)
    digest = hmac.new(LINK_SECRET, f"{label}.{expires}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(base64.urlsafe_b64encode(digest).rstrip(b"=").decode(), mac):
        abort(403)
    if time.time() > int(expires):
        abort(410)
    return label


@app.post("/yoomoney/notify")
def notify():
    if request.mimetype != "application/x-www-form-urlencoded":
        abort(415)
    fields = request.form.to_dict()
    parts = [fields.get(name, "") for name in SHA1_ORDER] + [SECRET, fields.get("label", "")]
    expected = hashlib.sha1("&".join(parts).encode()).hexdigest()
    if not hmac.compare_digest(fields.get("sha1_hash", "").encode(), expected.encode()):
        abort(403)
    _queue.enqueue("billing.apply_payment", {"fields": fields, "source": "notification"},
                   job_id="op-" + fields.get("operation_id", ""))
    return Response("OK\n", mimetype="text/plain")


@app.get("/pay/<token>")
def pay(token):
    label = verify_token(token)
    invoice = _redis.hgetall(f"peer:invoice:{label}")
    if not invoice:
        abort(404)
    return TEMPLATE.render(
        amount=invoice[b"amount"].decode(), status=invoice[b"status"].decode(), wallet="410011234567890",
        label=label, success=f"{PUBLIC_URL}/thanks?t={token}", qr=qr(f"{PUBLIC_URL}/pay/{token}"))
