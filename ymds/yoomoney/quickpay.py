"""The quickpay form and the fee arithmetic.

The recipient pays YooMoney's fee, so what reaches the wallet (the notification's
``amount``) is less than what the payer paid (``withdraw_amount``, the form's ``sum``):

- ``AC`` (bank card):        credited = sum * (1 - card_fee)
- ``PC`` (YooMoney wallet):  credited = sum - sum * wallet_fee / (1 + wallet_fee) = sum / (1 + wallet_fee)

Results are rounded to kopecks with ROUND_HALF_UP, as YooMoney's own form calculator did
(``toFixed(2)``); the known example ``withdraw_amount 301.50 -> amount 300.00`` at a 0.5 %
wallet fee comes out exactly.  Rates change: they are configuration (``card_fee``,
``wallet_fee`` in ``[yoomoney]``).
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Protocol

PAYMENT_TYPES = ("AC", "PC")
MAX_LABEL = 64
KOPECK = Decimal("0.01")


class Fees(Protocol):
    """The fee rates (a :class:`ymds.config.YooMoneyConfig` is one)."""

    @property
    def card_fee(self) -> Decimal: ...

    @property
    def wallet_fee(self) -> Decimal: ...


def check_payment_type(payment_type: str) -> str:
    if payment_type == "MC":
        raise ValueError('paymentType "MC" (phone balance) is no longer accepted by YooMoney')
    if payment_type not in PAYMENT_TYPES:
        raise ValueError(f'paymentType must be "AC" (card) or "PC" (wallet), not {payment_type!r}')
    return payment_type


def check_sum(amount: Decimal) -> Decimal:
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise ValueError(f"sum must be a positive Decimal, not {amount!r}")
    if amount != amount.quantize(KOPECK):
        raise ValueError(f"sum {amount} has more than two decimal places")
    return amount.quantize(KOPECK)


def format_sum(amount: Decimal) -> str:
    return f"{check_sum(amount):.2f}"


def quickpay_fields(wallet: str, payment_type: str, amount: Decimal, label: str, success_url: str) -> list[tuple[str, str]]:
    """Form fields to POST to the quickpay URL, in a stable order."""
    if not wallet:
        raise ValueError("no wallet number configured")
    if len(label) > MAX_LABEL:
        raise ValueError(f"label is longer than {MAX_LABEL} characters")
    return [
        ("receiver", wallet),
        ("quickpay-form", "button"),
        ("paymentType", check_payment_type(payment_type)),
        ("sum", format_sum(amount)),
        ("label", label),
        ("successURL", success_url),
    ]


def credited_amount(amount: Decimal, payment_type: str, config: Fees) -> Decimal:
    """What reaches the wallet when the payer pays ``amount`` with ``payment_type``."""
    amount = check_sum(amount)
    if check_payment_type(payment_type) == "AC":
        credited = amount * (1 - config.card_fee)
    else:
        credited = amount - amount * config.wallet_fee / (1 + config.wallet_fee)
    return credited.quantize(KOPECK, rounding=ROUND_HALF_UP)


def sum_for_credited(credited: Decimal, payment_type: str, config: Fees) -> Decimal:
    """The smallest sum (in kopecks) whose credited amount is at least ``credited``."""
    credited = check_sum(credited)
    if check_payment_type(payment_type) == "AC":
        guess = credited / (1 - config.card_fee)
    else:
        guess = credited * (1 + config.wallet_fee)
    amount = guess.quantize(KOPECK, rounding=ROUND_CEILING)
    while amount > KOPECK and credited_amount(amount - KOPECK, payment_type, config) >= credited:
        amount -= KOPECK
    while credited_amount(amount, payment_type, config) < credited:
        amount += KOPECK
    return amount


__all__ = ["quickpay_fields", "credited_amount", "sum_for_credited", "check_payment_type", "format_sum", "PAYMENT_TYPES"]
