"""JSON for job arguments and results, with ``decimal.Decimal`` surviving the trip.

A Decimal is written as the tagged object ``{"$dec": "12.50"}`` and read back as
``Decimal("12.50")``: money never passes through a float.  A dict whose only key is
``"$dec"`` is therefore reserved; one whose value is not a decimal number is refused.
"""
from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

DECIMAL_TAG = "$dec"
# Finite numbers only (plus the signed forms str(Decimal) produces): NaN and
# Infinity have no business in money and would poison comparisons; a bounded exponent
# keeps a forged value from making later arithmetic explode.
_DECIMAL_TEXT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?$")


class CodecError(ValueError):
    """A payload is not valid job JSON (malformed, or a forged tagged value)."""


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise CodecError(f"cannot encode non-finite Decimal {value}")
        return {DECIMAL_TAG: str(value)}
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-encodable in a job")


def _object_hook(obj: dict) -> Any:
    if DECIMAL_TAG in obj and len(obj) == 1:
        text = obj[DECIMAL_TAG]
        if not isinstance(text, str) or len(text) > 64 or not _DECIMAL_TEXT.match(text):
            raise CodecError(f"bad {DECIMAL_TAG} value {str(text)[:40]!r}")
        return Decimal(text)
    return obj


_encoder = json.JSONEncoder(default=_default, ensure_ascii=False, separators=(",", ":"),
                            allow_nan=False)
_decoder = json.JSONDecoder(object_hook=_object_hook)


def dumps(value: Any) -> str:
    """Encode ``value``; raises TypeError/CodecError for what cannot travel."""
    try:
        return _encoder.encode(value)
    except ValueError as e:  # NaN/Infinity floats
        if isinstance(e, CodecError):
            raise
        raise CodecError(str(e)) from None


def loads(text: str | bytes) -> Any:
    """Decode; raises CodecError on malformed input."""
    try:
        return _decoder.decode(text if isinstance(text, str) else text.decode("utf-8"))
    except CodecError:
        raise
    except (ValueError, UnicodeDecodeError) as e:
        raise CodecError(f"malformed job JSON: {e}") from None
