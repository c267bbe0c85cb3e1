"""YooMoney HTTP notifications: parse a POST body into a checked value object.

The body is ``application/x-www-form-urlencoded`` UTF-8.  Parsing is strict (a notification
carries money): every refusal is a :class:`NotificationError` subclass with a short stable
``code`` that the web role stores in quarantine.  The raw fields are kept exactly as
received in ``Notification.fields`` because both signature schemes are computed over the
received strings (the datetime in particular comes in two formats and is verified as is).

Decisions:
- ``withdraw_amount`` is required.  YooMoney has sent it for years and billing needs it
  (it is what the payer paid, compared with the invoice); ``sha1_hash`` does not cover it,
  ``sign`` does.  A notification without it is refused (and so quarantined, not lost).
  A parsed Notification says what the body *claims*; decide money only from
  :class:`ymds.yoomoney.signature.VerifiedNotification`, which hides the fields the
  verifying signature does not cover (``withdraw_amount``, ``unaccepted`` under sha1).
- ``sender`` and ``label`` may be absent and then read as empty: the sha1 string treats
  absent and empty alike.  ``unaccepted`` and ``test_notification`` default to false.
- ``datetime`` must be present and short printable ASCII; it is then parsed on a best-effort
  basis into an aware datetime (``None`` when the text is in no format we know, or has no
  offset), because a correctly signed payment must not be refused over a date format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Iterable, Mapping
from urllib.parse import quote, unquote_to_bytes

from ymds.links import is_our_label

MAX_FIELDS = 64
MAX_BODY = 65536

REQUIRED_FIELDS = ("notification_type", "operation_id", "amount", "withdraw_amount", "currency", "datetime", "codepro")
PERSONAL_FIELDS = ("lastname", "firstname", "fathersname", "email", "phone", "city", "street", "building", "suite", "flat", "zip")
KNOWN_TYPES = ("p2p-incoming", "card-incoming")

_AMOUNT_RE = re.compile(r"^[0-9]{1,12}(?:\.[0-9]{1,2})?$")
_OPERATION_ID_RE = re.compile(r"^[\x21-\x7e]{1,200}$")
_TYPE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DATETIME_RE = re.compile(r"^[\x21-\x7e]{1,64}$")


class NotificationError(ValueError):
    """A notification body was refused; ``code`` is short and stable, ``str()`` says why."""

    code = "invalid"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class TooLarge(NotificationError):
    code = "too_large"


class NotUTF8(NotificationError):
    code = "not_utf8"


class MalformedBody(NotificationError):
    code = "malformed"


class DuplicateKey(NotificationError):
    code = "duplicate_key"


class TooManyFields(NotificationError):
    code = "too_many_fields"


class MissingField(NotificationError):
    code = "missing_field"


class BadNotificationType(NotificationError):
    code = "bad_notification_type"


class BadAmount(NotificationError):
    code = "bad_amount"


class AmountExceedsWithdraw(NotificationError):
    code = "amount_exceeds_withdraw"


class BadCurrency(NotificationError):
    code = "bad_currency"


class BadOperationId(NotificationError):
    code = "bad_operation_id"


class BadBoolean(NotificationError):
    code = "bad_boolean"


class BadDatetime(NotificationError):
    code = "bad_datetime"


@dataclass(frozen=True)
class Notification:
    notification_type: str
    operation_id: str
    amount: Decimal            # what reached the wallet, after the fee
    withdraw_amount: Decimal   # what the payer paid (the form's sum)
    currency: str
    datetime_raw: str          # exactly as received (signed in this form)
    datetime: datetime | None  # parsed, aware; None when in an unknown format
    sender: str
    codepro: bool
    unaccepted: bool
    is_test: bool
    label: str
    sha1_hash: str | None
    sign: str | None
    lastname: str | None = None
    firstname: str | None = None
    fathersname: str | None = None
    email: str | None = None
    phone: str | None = None
    city: str | None = None
    street: str | None = None
    building: str | None = None
    suite: str | None = None
    flat: str | None = None
    zip: str | None = None
    # Every field exactly as received (values are strings); what travels to billing.
    fields: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def held(self) -> bool:
        """The money is not yet usable: protected by a code, or not accepted yet."""
        return self.unaccepted or self.codepro

    @property
    def label_is_ours(self) -> bool:
        """Only labels in our own format can match an invoice."""
        return is_our_label(self.label)

    def __repr__(self) -> str:  # never show personal fields or signatures in logs
        return (f"Notification(type={self.notification_type!r}, operation_id={self.operation_id!r}, "
                f"amount={self.amount}, withdraw_amount={self.withdraw_amount}, label={self.label!r}, "
                f"held={self.held}, is_test={self.is_test})")


def parse_form(body: bytes, max_fields: int = MAX_FIELDS, max_bytes: int = MAX_BODY) -> dict[str, str]:
    """Decode a form-urlencoded UTF-8 body strictly into {key: value}."""
    if not isinstance(body, (bytes, bytearray)):
        raise MalformedBody("body is not bytes")
    body = bytes(body)
    if len(body) > max_bytes:
        raise TooLarge(f"body is {len(body)} bytes, more than {max_bytes}")
    try:
        body.decode("utf-8", "strict")
    except UnicodeDecodeError:
        raise NotUTF8("body is not UTF-8") from None
    parts = [p for p in body.split(b"&") if p]
    if len(parts) > max_fields:
        raise TooManyFields(f"{len(parts)} fields, more than {max_fields}")
    fields: dict[str, str] = {}
    for part in parts:
        if b"=" not in part:
            raise MalformedBody("a field has no '='")
        raw_key, raw_value = part.split(b"=", 1)
        key = _decode_component(raw_key)
        value = _decode_component(raw_value)
        if not key:
            raise MalformedBody("a field has an empty name")
        if key in fields:
            raise DuplicateKey(f"field {_safe(key)} is given twice", key)
        fields[key] = value
    return fields


def _decode_component(raw: bytes) -> str:
    try:
        text = unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8", "strict")
    except UnicodeDecodeError:
        raise NotUTF8("a percent-encoded field is not UTF-8") from None
    if "\x00" in text:
        raise MalformedBody("a field contains a NUL character")
    return text


def _safe(key: str) -> str:
    """A field name fit for an error message (it may be hostile)."""
    return repr(key[:40])


def encode_form(fields: Mapping[str, str] | Iterable[tuple[str, str]]) -> bytes:
    """The inverse of :func:`parse_form` (used by the sandbox and test notifications)."""
    items = fields.items() if isinstance(fields, Mapping) else fields
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in items).encode("ascii")


def parse_notification(body: bytes) -> Notification:
    """Parse and check a notification body; raise a :class:`NotificationError` otherwise."""
    return notification_from_fields(parse_form(body))


def notification_from_fields(fields: Mapping[str, str]) -> Notification:
    """Check raw fields (e.g. those that travelled through the queue) into a Notification."""
    if not isinstance(fields, Mapping):
        raise MalformedBody("fields are not a mapping")
    if len(fields) > MAX_FIELDS:
        raise TooManyFields(f"{len(fields)} fields, more than {MAX_FIELDS}")
    for k, v in fields.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise MalformedBody("field names and values must be text")
        if not k or "\x00" in k or "\x00" in v:
            raise MalformedBody("a field has an empty name or a NUL character")
    for name in REQUIRED_FIELDS:
        if name not in fields:
            raise MissingField(f"field {name} is missing", name)

    notification_type = fields["notification_type"]
    if not _TYPE_RE.fullmatch(notification_type):
        raise BadNotificationType("notification_type is empty or not a simple word", "notification_type")

    operation_id = fields["operation_id"]
    if not _OPERATION_ID_RE.fullmatch(operation_id):
        raise BadOperationId("operation_id must be 1-200 printable ASCII characters", "operation_id")

    amount = _amount(fields, "amount")
    withdraw_amount = _amount(fields, "withdraw_amount")
    if amount > withdraw_amount:
        raise AmountExceedsWithdraw(f"amount {amount} is greater than withdraw_amount {withdraw_amount}", "amount")

    currency = fields["currency"]
    if currency != "643":
        raise BadCurrency("currency is not 643 (rubles)", "currency")

    datetime_raw = fields["datetime"]
    if not _DATETIME_RE.fullmatch(datetime_raw):
        raise BadDatetime("datetime is empty, too long or not printable ASCII", "datetime")

    personal = {name: fields.get(name) for name in PERSONAL_FIELDS}
    return Notification(
        notification_type=notification_type,
        operation_id=operation_id,
        amount=amount,
        withdraw_amount=withdraw_amount,
        currency=currency,
        datetime_raw=datetime_raw,
        datetime=parse_datetime(datetime_raw),
        sender=fields.get("sender", ""),
        codepro=_boolean(fields, "codepro"),
        unaccepted=_boolean(fields, "unaccepted"),
        is_test=_boolean(fields, "test_notification"),
        label=fields.get("label", ""),
        sha1_hash=fields.get("sha1_hash"),
        sign=fields.get("sign"),
        fields=dict(fields),
        **personal,
    )


def _amount(fields: Mapping[str, str], name: str) -> Decimal:
    raw = fields[name]
    if not _AMOUNT_RE.fullmatch(raw):
        raise BadAmount(f"{name} is not an amount with at most two decimal places", name)
    value = Decimal(raw)
    if value <= 0:
        raise BadAmount(f"{name} is not positive", name)
    return value.quantize(Decimal("0.01"))


def _boolean(fields: Mapping[str, str], name: str) -> bool:
    raw = fields.get(name, "false")
    if raw == "true":
        return True
    if raw == "false":
        return False
    raise BadBoolean(f"{name} is neither true nor false", name)


def parse_datetime(raw: str) -> datetime | None:
    """Both observed forms (``2011-07-01T09:00:00.000+04:00``, ``2014-04-28T16:31:28Z``) and
    other ISO 8601 with an offset; ``None`` if unknown or without an offset."""
    try:
        value = datetime.fromisoformat(raw)
    except (ValueError, OverflowError):
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        return None
    return value


__all__ = [
    "Notification", "parse_notification", "notification_from_fields", "parse_form", "encode_form",
    "parse_datetime", "NotificationError", "TooLarge", "NotUTF8", "MalformedBody", "DuplicateKey",
    "TooManyFields", "MissingField", "BadNotificationType", "BadAmount", "AmountExceedsWithdraw",
    "BadCurrency", "BadOperationId", "BadBoolean", "BadDatetime", "MAX_FIELDS", "REQUIRED_FIELDS",
    "PERSONAL_FIELDS", "KNOWN_TYPES",
]
