"""A local YooMoney for the demo, tests and dry runs, mounted at /sandbox.

- ``POST quickpay/confirm``: the quickpay form lands here and gets a TEST WALLET page
  (successURL must be on ``server.public_url``: the sandbox redirects nowhere else).
- ``POST quickpay/pay``: needs the confirm page's CSRF token; Pay creates an operation, notifies the shop (signed with the
  sandbox's own key derived from the configured secret, ymds.sandbox.secret, by ``sign``, ``sha1`` or ``both``; YooMoney's retry schedule on the
  injected clock) and redirects the browser (303) to successURL; Decline shows a page.
- ``POST api/operation-history`` and ``api/operation-details``: the wallet API for the
  sandbox's own operations, behind the configured bearer token.
- ``GET /sandbox/``: the operations and their delivery attempts.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import quote, urlsplit

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import Interface, implementer

from ymds.config import Config
from ymds.sandbox import pages
from ymds.sandbox.notifier import Notifier
from ymds.sandbox.operations import OperationStore, SandboxOperation, notification_datetime
from ymds.yoomoney.http import make_http_client
from ymds.yoomoney.notification import PERSONAL_FIELDS, encode_form, parse_datetime
from ymds.yoomoney.quickpay import credited_amount
from ymds.sandbox.secret import signing_secret
from ymds.yoomoney.signature import SCHEMES, add_signatures
from ymds.web.http import client_gone

log = Logger()

MAX_FORM_BYTES = 16384
_SUM_RE = re.compile(r"^[0-9]{1,9}(?:\.[0-9]{1,2})?$")
_RECORDS_RE = re.compile(r"^[0-9]{1,4}$")
_START_RE = re.compile(r"^[0-9]{1,9}$")
API_SCOPES = ("operation-history", "operation-details")


class FormError(ValueError):
    """The posted form was refused (HTTP 400 with a page saying why)."""


@dataclass(frozen=True)
class QuickpayForm:
    receiver: str
    payment_type: str
    sum: Decimal
    label: str
    success_url: str


def _args(request) -> dict[str, str]:
    request.content.seek(0, 2)
    if request.content.tell() > MAX_FORM_BYTES:
        raise FormError(f"the form is larger than {MAX_FORM_BYTES} bytes")
    values: dict[str, str] = {}
    for raw_key, raw_values in (request.args or {}).items():
        try:
            key = raw_key.decode("utf-8")
            decoded = [v.decode("utf-8") for v in raw_values]
        except UnicodeDecodeError:
            raise FormError("the form is not UTF-8") from None
        if len(decoded) != 1:
            raise FormError(f"field {key[:40]!r} is given more than once")
        values[key] = decoded[0]
    return values


def _same_site(url: str, public_url: str) -> bool:
    """True when ``url`` has public_url's scheme, host and port (the sandbox never sends a
    browser anywhere else: it must not become an open redirect)."""
    a, b = urlsplit(url), urlsplit(public_url)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def parse_quickpay(args: dict[str, str], wallet: str, public_url: str | None = None) -> QuickpayForm:
    receiver = args.get("receiver", "").strip()
    if not receiver:
        raise FormError("receiver is missing / не указан получатель")
    if wallet and receiver != wallet:
        raise FormError(f"this sandbox only holds wallet {wallet}, not {receiver[:40]} / песочница знает только кошелёк {wallet}")
    payment_type = args.get("paymentType", "")
    if payment_type == "MC":
        raise FormError('paymentType "MC" (phone balance) is no longer accepted by YooMoney / оплата со счёта телефона больше не принимается')
    if payment_type not in ("AC", "PC"):
        raise FormError('paymentType must be "AC" or "PC" / способ оплаты должен быть AC или PC')
    raw_sum = args.get("sum", "").strip()
    if not _SUM_RE.fullmatch(raw_sum) or Decimal(raw_sum) <= 0:
        raise FormError("sum must be a positive amount with at most two decimals / неверная сумма")
    label = args.get("label", "")
    if len(label) > 64:
        raise FormError("label is longer than 64 characters / метка длиннее 64 символов")
    success_url = args.get("successURL", "").strip()
    if success_url:
        parts = urlsplit(success_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or any(c in success_url for c in "\r\n\x00"):
            raise FormError("successURL must be an http(s) URL / successURL должен быть адресом http(s)")
        if public_url is not None and not _same_site(success_url, public_url):
            raise FormError(f"successURL must be on {public_url} / successURL должен вести на {public_url}")
    return QuickpayForm(receiver, payment_type, Decimal(raw_sum).quantize(Decimal("0.01")), label, success_url)


def dump_json(obj) -> bytes:
    """JSON where Decimal values become exact JSON numbers (as YooMoney writes amounts)."""
    numbers: dict[str, str] = {}

    def mark(value):
        if isinstance(value, Decimal):
            key = f"\x00dec{len(numbers)}\x00"
            numbers[key] = f"{value:.2f}"
            return key
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(obj), ensure_ascii=False)
    for key, number in numbers.items():
        text = text.replace(json.dumps(key), number)
    return text.encode("utf-8")


class ISandbox(Interface):
    def pay(form, unaccepted=False, codepro=False, test_notification=False, duplicate=False, fail_first=False):
        """Create an operation and deliver its notification; Deferred[(SandboxOperation, Delivery)]."""


@implementer(ISandbox)
class Sandbox:
    """The sandbox wallet: operations, notification delivery, wallet-API answers."""

    def __init__(self, reactor, config: Config, clock=None, http_client=None, notify_url: str | None = None,
                 signature_scheme: str = "both", datetime_style: str = "alternate", trust_pem: bytes | None = None,
                 insecure_local_tls: bool = False, max_operations: int = 10000, api_scopes=API_SCOPES,
                 delivery_timeout: float = 15.0, operations: OperationStore | None = None):
        if signature_scheme not in SCHEMES:
            raise ValueError(f"signature_scheme must be one of {SCHEMES}")
        if datetime_style not in ("alternate", "utc", "offset"):
            raise ValueError("datetime_style must be alternate, utc or offset")
        self.config = config
        self.clock = clock if clock is not None else reactor
        self.notify_url = notify_url or config.server.public_url.rstrip("/") + "/yoomoney/notify"
        self.signature_scheme = signature_scheme
        self.datetime_style = datetime_style
        self.api_scopes = tuple(api_scopes)
        # ``operations``: a PersistentOperationStore (ymds/sandbox/store.py) keeps them across restarts
        self.store = operations if operations is not None else OperationStore(max_operations)
        self._pool = None
        if http_client is None:
            http_client, self._pool = make_http_client(reactor, trust_pem=trust_pem, insecure_local_tls=insecure_local_tls)
        self.notifier = Notifier(reactor, self.clock, http_client, timeout=delivery_timeout)
        self._count = 0
        # Pay/Decline need a token from the confirm page: another site cannot make a
        # visitor's browser mint signed notifications.  Per start: pages die with the process.
        self._csrf_key = secrets.token_bytes(32)
        if not config.yoomoney.notification_secret:
            log.warn("sandbox: no yoomoney.notification_secret, its notifications will not verify")

    def csrf_token(self, form: QuickpayForm) -> str:
        """The token the confirm page puts in its form; bound to the form's fields."""
        message = "\x1f".join((form.receiver, form.payment_type, f"{form.sum:.2f}", form.label, form.success_url))
        return hmac.new(self._csrf_key, message.encode("utf-8"), "sha256").hexdigest()

    def csrf_ok(self, form: QuickpayForm, token: str) -> bool:
        return hmac.compare_digest(token.encode("utf-8", "replace"), self.csrf_token(form).encode("ascii"))

    async def stop(self) -> None:
        self.notifier.stop()
        if self._pool is not None:
            await self._pool.closeCachedConnections()

    def _datetime(self, seconds: float) -> str:
        style = self.datetime_style
        if style == "alternate":
            style = "utc" if self._count % 2 else "offset"
        return notification_datetime(seconds, style)

    async def pay(self, form: QuickpayForm, unaccepted: bool = False, codepro: bool = False,
                  test_notification: bool = False, duplicate: bool = False, fail_first: bool = False):
        credited = credited_amount(form.sum, form.payment_type, self.config.yoomoney)
        if credited <= 0:
            raise FormError("the sum is too small to leave anything after the fee / сумма меньше комиссии")
        now = self.clock.seconds()
        self._count += 1
        operation_id = self.store.new_operation_id()
        sender = ("41001" + "".join(secrets.choice("0123456789") for _ in range(10))) if form.payment_type == "PC" else ""
        fields = {
            "notification_type": "p2p-incoming" if form.payment_type == "PC" else "card-incoming",
            "operation_id": operation_id,
            "amount": f"{credited:.2f}",
            "withdraw_amount": f"{form.sum:.2f}",
            "currency": "643",
            "datetime": self._datetime(now),
            "sender": sender,
            "codepro": "true" if codepro else "false",
            "label": form.label,
            "unaccepted": "true" if unaccepted else "false",
        }
        if test_notification:
            fields["test_notification"] = "true"
        if self.notify_url.startswith("https://"):
            fields.update({name: "" for name in PERSONAL_FIELDS})  # YooMoney adds these for HTTPS endpoints
        # Its own derived key: what a sandbox mints never verifies on a live node.
        signed = add_signatures(fields, signing_secret(self.config), self.signature_scheme)
        operation = SandboxOperation(
            operation_id=operation_id, created=now, datetime_raw=fields["datetime"], payment_type=form.payment_type,
            notification_type=fields["notification_type"], amount=credited, withdraw_amount=form.sum, sender=sender,
            label=form.label, codepro=codepro, unaccepted=unaccepted, is_test=test_notification, fields=signed)
        if not test_notification:  # a test notification is not an operation of the wallet
            self.store.add(operation)
        log.info("sandbox payment {operation_id} {amount} label {label}", operation_id=operation_id,
                 amount=str(form.sum), label=form.label)
        delivery = await self.notifier.deliver(self.notify_url, encode_form(signed), operation_id,
                                               fail_first=fail_first, duplicate=duplicate)
        return operation, delivery

    # --- wallet API ---------------------------------------------------------------------

    def operation_history(self, args: dict[str, str]) -> dict:
        types = args.get("type", "").split()
        if any(t not in ("deposition", "payment") for t in types):
            return {"error": "illegal_param_type"}
        since = until = None
        if "from" in args:
            since = parse_datetime(args["from"])
            if since is None:
                return {"error": "illegal_param_from"}
        if "till" in args:
            until = parse_datetime(args["till"])
            if until is None:
                return {"error": "illegal_param_till"}
        start = args.get("start_record", "0")
        if not _START_RE.fullmatch(start):
            return {"error": "illegal_param_start_record"}
        records = args.get("records", "30")
        if not _RECORDS_RE.fullmatch(records) or not 1 <= int(records) <= 100:
            return {"error": "illegal_param_records"}
        details = args.get("details", "false")
        if details not in ("true", "false"):
            return {"error": "illegal_param_details"}
        label = args.get("label")
        start_index, count = int(start), int(records)
        matching = []
        for op in self.store.newest_first():
            if types and "deposition" not in types:
                continue  # the sandbox wallet only receives money
            if label is not None and op.label != label:
                continue
            if since is not None and op.created < since.timestamp():
                continue
            if until is not None and op.created >= until.timestamp():
                continue
            matching.append(op)
        page = matching[start_index:start_index + count]
        answer: dict = {"operations": [op.api_record(details == "true") for op in page]}
        if start_index + count < len(matching):
            answer["next_record"] = str(start_index + count)
        return answer

    def operation_details(self, args: dict[str, str]) -> dict:
        operation = self.store.get(args.get("operation_id", ""))
        if operation is None:
            return {"error": "illegal_param_operation_id"}
        return operation.api_record(details=True)


# --- HTTP ------------------------------------------------------------------------------

def _security_headers(request) -> None:
    request.setHeader(b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'")
    request.setHeader(b"referrer-policy", b"no-referrer")
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"cache-control", b"no-store")


def _write_page(request, status: int, page) -> Deferred:
    def write(html: bytes) -> None:
        if client_gone(request):
            return
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        _security_headers(request)
        request.write(html)
        request.finish()
    return pages.render(page).addCallback(write)


def _fail(failure, request) -> None:
    log.failure("sandbox request failed", failure)
    if not client_gone(request):
        request.setResponseCode(500)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.write(b"sandbox error")
        request.finish()


class _ConfirmPage(Resource):
    isLeaf = True

    def __init__(self, sandbox: Sandbox):
        super().__init__()
        self._sandbox = sandbox

    def render_POST(self, request):
        try:
            config = self._sandbox.config
            form = parse_quickpay(_args(request), config.yoomoney.wallet, config.server.public_url)
            credited = credited_amount(form.sum, form.payment_type, config.yoomoney)
            page, status = pages.confirm_page(form, credited, csrf=self._sandbox.csrf_token(form)), 200
        except FormError as e:
            page, status = pages.error_page(str(e)), 400
        _write_page(request, status, page).addErrback(_fail, request)
        return NOT_DONE_YET

    render_GET = render_POST  # YooMoney takes the quickpay form by GET too


class _PayAction(Resource):
    isLeaf = True

    def __init__(self, sandbox: Sandbox):
        super().__init__()
        self._sandbox = sandbox

    def render_POST(self, request):
        Deferred.fromCoroutine(self._handle(request)).addErrback(_fail, request)
        return NOT_DONE_YET

    async def _handle(self, request) -> None:
        try:
            args = _args(request)
            form = parse_quickpay(args, self._sandbox.config.yoomoney.wallet, self._sandbox.config.server.public_url)
            if not self._sandbox.csrf_ok(form, args.get("csrf", "")):
                raise FormError("this form did not come from the sandbox's confirm page: open the pay link again "
                                "/ форма пришла не со страницы подтверждения песочницы: откройте ссылку оплаты заново")
            action = args.get("action", "")
            if action == "decline":
                await _write_page(request, 200, pages.declined_page(form.success_url))
                return
            if action != "pay":
                raise FormError("action must be pay or decline")
            switches = {name: args.get(name) in ("true", "on") for name, _ in pages.SWITCHES}
            operation, delivery = await self._sandbox.pay(form, **switches)
        except FormError as e:
            await _write_page(request, 400, pages.error_page(str(e)))
            return
        if client_gone(request):
            return
        if form.success_url:
            request.setResponseCode(303)
            request.setHeader(b"location", quote(form.success_url, safe=":/?#[]@!$&'()*+,;=%~").encode("ascii"))
            _security_headers(request)
            request.finish()
        else:
            await _write_page(request, 200, pages.paid_page(operation.operation_id, delivery.delivered))


class _Index(Resource):
    isLeaf = True

    def __init__(self, sandbox: Sandbox):
        super().__init__()
        self._sandbox = sandbox

    def render_GET(self, request):
        page = pages.index_page(list(self._sandbox.store.newest_first())[:200], self._sandbox.notifier.deliveries)
        _write_page(request, 200, page).addErrback(_fail, request)
        return NOT_DONE_YET


class _WalletAPIMethod(Resource):
    isLeaf = True

    def __init__(self, sandbox: Sandbox, scope: str, handler):
        super().__init__()
        self._sandbox = sandbox
        self._scope = scope
        self._handler = handler

    def render_POST(self, request):
        token = self._sandbox.config.yoomoney.api_token
        header = (request.getHeader(b"authorization") or b"").decode("latin-1")
        if not header.startswith("Bearer "):
            return self._unauthorized(request, "invalid_request")
        given = header[len("Bearer "):].strip().encode("latin-1")
        if not token or not hmac.compare_digest(given, token.encode("utf-8")):
            return self._unauthorized(request, "invalid_token")
        if self._scope not in self._sandbox.api_scopes:
            request.setResponseCode(403)
            request.setHeader(b"www-authenticate", b'Bearer error="insufficient_scope"')
            return b""
        try:
            args = _args(request)
        except FormError:
            request.setResponseCode(400)
            request.setHeader(b"www-authenticate", b'Bearer error="invalid_request"')
            return b""
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return dump_json(self._handler(args))

    @staticmethod
    def _unauthorized(request, error: str) -> bytes:
        request.setResponseCode(401)
        request.setHeader(b"www-authenticate", f'Bearer error="{error}"'.encode("ascii"))
        return b""


class SandboxResource(Resource):
    """The /sandbox tree.  ``SandboxResource(reactor, config, clock=..., ...)`` takes the same
    arguments as :class:`Sandbox`; ``.sandbox`` is the wallet, ``await .stop()`` on shutdown."""

    def __init__(self, reactor, config: Config, sandbox: Sandbox | None = None, **options):
        super().__init__()
        self.sandbox = sandbox if sandbox is not None else Sandbox(reactor, config, **options)
        quickpay = Resource()
        quickpay.putChild(b"confirm", _ConfirmPage(self.sandbox))
        quickpay.putChild(b"pay", _PayAction(self.sandbox))
        api = Resource()
        api.putChild(b"operation-history", _WalletAPIMethod(self.sandbox, "operation-history", self.sandbox.operation_history))
        api.putChild(b"operation-details", _WalletAPIMethod(self.sandbox, "operation-details", self.sandbox.operation_details))
        self.putChild(b"quickpay", quickpay)
        self.putChild(b"api", api)
        self.putChild(b"", _Index(self.sandbox))

    def render_GET(self, request):
        request.redirect(request.path + b"/")
        return b""

    async def stop(self) -> None:
        await self.sandbox.stop()
