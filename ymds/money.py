"""How an amount of rubles is written for people: one formatter for the bot, the pages, the
dashboard and the overlay, so that "1 990,00 ₽" looks the same everywhere."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

CENT = Decimal("0.01")
NBSP = "\u00a0"


def amount_text(value: Decimal | str | int, lang: str = "ru") -> str:
    """The number only: "1 990,00" in ru (no-break space groups thousands), "1,990.00" in en.

    Raises ValueError for something that is not a finite amount.
    """
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"not an amount: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    text = f"{amount.quantize(CENT):,.2f}"
    return text.replace(",", NBSP).replace(".", ",") if lang == "ru" else text


def rubles(value: Decimal | str | int, lang: str = "ru") -> str:
    """ "1 990,00 ₽" in ru, "1,990.00 ₽" in en; "—" for anything that is not an amount."""
    try:
        return amount_text(value, lang) + NBSP + "₽"
    except ValueError:
        return "—"
