"""POST /yoomoney/notify: parse, verify, enqueue billing.apply_payment, answer.

Decisions (each is one log line and one count in ``ymds_web_notifications{result}``):

=================  ======  ==================================================================
result             status  when
=================  ======  ==================================================================
refused            405     another method (with ``Allow: POST``)
refused            415     another content type
refused            413     a body over server.max_body
malformed          400     the body does not parse as a notification
forged             403     the signature does not verify; the body (cut to a bound) is kept
                           through billing's ``quarantine`` task
test               200     a verified test notification: nothing changes
ok                 200     verified; ``apply_payment`` is durably in Redis (with the verifying
                           ``scheme``: billing believes only what that signature covers)
duplicate          200     verified; the idempotency key was used already (a redelivery)
unavailable        503     Redis could not take the job (YooMoney retries: 10 min, 1 h)
rate_limited       429     too many refusals from this address (nothing is stored)
=================  ======  ==================================================================

Only refusals spend rate-limit tokens, so genuine notifications are never throttled.  The
quarantine is bounded per address and overall, so forged bodies cannot fill the storage.
"""

from __future__ import annotations

import re

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ymds.billing.jobs import BillingClient
from ymds.web.http import client_gone, TEXT_TYPE, send
from ymds.yoomoney.notification import NotificationError, TooLarge, parse_notification
from ymds.sandbox.secret import accepted_secrets
from ymds.yoomoney.signature import verify_any
from ymds.util.http import retry_after_seconds

log = Logger()

QUARANTINE_MAX_BYTES = 8192
_UNSAFE_LOG_CHARS = re.compile(r"[^\x21-\x7e]")  # anything but printable ASCII without spaces
FORM_TYPE = b"application/x-www-form-urlencoded"


def _content_type_ok(header: bytes | None) -> bool:
    if not header:
        return False
    media, _, params = header.partition(b";")
    if media.strip().lower() != FORM_TYPE:
        return False
    for param in params.split(b";"):
        name, _, value = param.partition(b"=")
        if name.strip().lower() == b"charset" and value.strip().strip(b'"').lower() not in (b"utf-8", b"utf8"):
            return False
    return True


def cut_for_quarantine(body: bytes, limit: int = QUARANTINE_MAX_BYTES) -> str:
    """The raw body as text, cut to ``limit`` bytes (never splitting a UTF-8 character badly)."""
    return body[:limit].decode("utf-8", "replace")


def idempotency_key(notification) -> str:
    """One job per operation and state: a held (unaccepted/codepro) notification and the
    later one that says the same operation was accepted must both reach billing, which
    releases the held payment; repeats of either are dropped here."""
    suffix = ":held" if notification.held else ""
    return f"op:{notification.operation_id}{suffix}"


class NotifyResource(Resource):
    isLeaf = True

    def __init__(self, config, queue, clock, metrics, client_address, refusal_limiter, quarantine_limiter,
                 enqueue_timeout: float = 5.0):
        super().__init__()
        self._config = config
        self._queue = queue
        self._billing = BillingClient(queue)
        self._clock = clock
        self._client_address = client_address
        self._refusals = refusal_limiter          # per client address
        self._quarantine = quarantine_limiter     # overall, key "all"
        self._enqueue_timeout = enqueue_timeout
        # The sandbox's own key counts only in sandbox mode (ymds.sandbox.secret).
        self._secrets = accepted_secrets(config)
        self._policy = config.yoomoney.signature
        self._max_body = config.server.max_body
        self._decisions = metrics.counter("ymds_web_notifications", "Notifications received, by decision", ("result",))

    # -- one place that answers, logs and counts -------------------------------------------------

    def _decide(self, request, result: str, status: int, body: bytes = b"", headers=None, **fields) -> None:
        self._decisions.inc(result=result)
        # Values may come from a hostile body: cut them and keep them on one line.
        fields = {k: _UNSAFE_LOG_CHARS.sub("?", str(v)[:80]) for k, v in fields.items() if v not in (None, "")}
        detail = " ".join(f"{k}={v}" for k, v in fields.items())
        log.info("notification {result} {status} {detail}", result=result, status=status, detail=detail, **fields)
        send(request, status, body or (b"OK\n" if status == 200 else b"%d\n" % status), TEXT_TYPE, headers=headers)

    def _refuse(self, request, remote: str, result: str, status: int, headers=None, **fields) -> bool:
        """Answer a refusal unless this address is over its refusal rate (then 429). True when refused normally."""
        if not self._refusals.allow(remote):
            wait = retry_after_seconds(self._refusals.retry_after(remote))
            self._decide(request, "rate_limited", 429, b"Too Many Requests\n", {b"retry-after": b"%d" % wait},
                         remote=remote, refused=result)
            return False
        self._decide(request, result, status, b"", headers, remote=remote, **fields)
        return True

    # -- HTTP ----------------------------------------------------------------------------------

    def render(self, request):
        remote = self._client_address.of(request)
        if request.method != b"POST":
            self._refuse(request, remote, "refused", 405, {b"allow": b"POST"}, reason="method")
            return NOT_DONE_YET
        if not _content_type_ok(request.getHeader(b"content-type")):
            self._refuse(request, remote, "refused", 415, reason="content_type")
            return NOT_DONE_YET
        request.content.seek(0)
        body = request.content.read(self._max_body + 1)
        if len(body) > self._max_body:
            self._refuse(request, remote, "refused", 413, reason="too_large")
            return NOT_DONE_YET
        try:
            notification = parse_notification(body)
        except TooLarge:
            self._refuse(request, remote, "refused", 413, reason="too_large")
            return NOT_DONE_YET
        except NotificationError as e:
            self._refuse(request, remote, "malformed", 400, reason=e.code, field=e.field)
            return NOT_DONE_YET
        checked = verify_any(notification, self._secrets, self._policy)
        if not checked.ok:
            Deferred.fromCoroutine(self._forged(request, remote, body, notification, checked.reason)).addErrback(
                self._failed, request)
            return NOT_DONE_YET
        if notification.is_test:
            self._decide(request, "test", 200, operation_id=notification.operation_id, scheme=checked.scheme)
            return NOT_DONE_YET
        Deferred.fromCoroutine(self._accept(request, remote, notification, checked.scheme)).addErrback(
            self._failed, request)
        return NOT_DONE_YET

    async def _forged(self, request, remote, body, notification, reason):
        if not self._refusals.allow(remote):
            wait = retry_after_seconds(self._refusals.retry_after(remote))
            self._decide(request, "rate_limited", 429, b"Too Many Requests\n", {b"retry-after": b"%d" % wait},
                         remote=remote, refused="forged")
            return
        quarantined = "skipped"
        if self._quarantine.allow("all"):
            try:
                await self._billing.quarantine(cut_for_quarantine(body), f"signature: {reason}", remote
                                               ).addTimeout(self._enqueue_timeout, self._clock)
                quarantined = "yes"
            except Exception as e:
                # Not kept: ask the sender to come back (a genuine one retries) rather than lose it.
                self._decide(request, "unavailable", 503, b"Service Unavailable\n", {b"retry-after": b"60"},
                             remote=remote, refused="forged", operation_id=notification.operation_id,
                             error=type(e).__name__)
                return
        self._decide(request, "forged", 403, b"Forbidden\n", remote=remote, reason=reason,
                     operation_id=notification.operation_id, quarantined=quarantined)

    async def _accept(self, request, remote, notification, scheme):
        try:
            job = await self._billing.apply_payment(
                notification.fields, "notification", key=idempotency_key(notification), scheme=scheme,
            ).addTimeout(self._enqueue_timeout, self._clock)
        except Exception as e:
            self._decide(request, "unavailable", 503, b"Service Unavailable\n", {b"retry-after": b"60"},
                         remote=remote, operation_id=notification.operation_id, error=type(e).__name__)
            return
        self._decide(request, "duplicate" if job.duplicate else "ok", 200, remote=remote,
                     operation_id=notification.operation_id, label=notification.label, scheme=scheme)

    def _failed(self, failure, request):
        log.failure("notification handling failed", failure)
        if not client_gone(request):
            self._decisions.inc(result="unavailable")
            send(request, 503, b"Service Unavailable\n", TEXT_TYPE, headers={b"retry-after": b"60"})
