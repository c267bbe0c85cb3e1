"""Moderation of what the overlay shows: ``min_alert_amount`` and ``blocked_words_file``.

Billing applies :func:`moderate` before appending a donation event: below the minimum
there is no alert (the goal still counts the money); blocked words in the name and
message are masked.  Masking is case-insensitive and matches whole words, ё as е.
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Iterable

from ymds.overlay.events import DonationEvent

MASK = "***"


def load_blocked_words(path: str) -> frozenset[str]:
    """One word or phrase a line; blank lines and lines starting with # are ignored.
    Raises OSError / UnicodeDecodeError for the caller to turn into a ConfigError."""
    with open(path, encoding="utf-8") as f:
        return frozenset(_norm(line.strip()) for line in f if line.strip() and not line.lstrip().startswith("#"))


def _norm(text: str) -> str:
    return text.casefold().replace("ё", "е")


class WordMask:
    """Masks the blocked words of one list (compiled once)."""

    def __init__(self, words: Iterable[str]):
        words = sorted({_norm(w) for w in words if w.strip()}, key=len, reverse=True)
        self._pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)") \
            if words else None

    def __call__(self, text: str | None) -> str | None:
        if text is None or self._pattern is None:
            return text
        # match on a normalised copy (same length: casefold of Cyrillic/Latin letters keeps
        # lengths except a few ligatures, checked below) and cut the original at those spots
        normal = _norm(text)
        if len(normal) != len(text):
            return self._pattern.sub(MASK, normal)
        out, last = [], 0
        for m in self._pattern.finditer(normal):
            out.append(text[last:m.start()])
            out.append(MASK)
            last = m.end()
        out.append(text[last:])
        return "".join(out)


def moderate(event: DonationEvent, min_alert_amount: Decimal, mask: WordMask) -> DonationEvent | None:
    """The event to show, or None when the amount is below ``min_alert_amount``."""
    if event.amount < min_alert_amount:
        return None
    return DonationEvent(event.amount, mask(event.name), mask(event.message), event.paid_at)
