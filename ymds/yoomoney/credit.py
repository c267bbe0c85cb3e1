"""What an invoice is worth in the notification's *signed* ``amount``.

``sha1_hash`` covers ``amount`` (what reached the wallet after YooMoney's fee) but not
``withdraw_amount`` (what the payer paid).  When a notification was verified by sha1
alone, billing must therefore decide from ``amount``: an invoice of price P paid by
payment type T is paid in full when ``amount >= credited(P, T)``, the fee arithmetic of
:mod:`ymds.yoomoney.quickpay` with the configured ``card_fee``/``wallet_fee``.

The payment type comes from the signed ``notification_type``: ``card-incoming`` is a
bank card (``AC``), ``p2p-incoming`` a YooMoney wallet (``PC``).  If the configured
fee is lower than YooMoney's real one, payments look short (held for the owner), never
larger than they were: the error is on the safe side.

Pure functions, no I/O; ``fees`` is anything with ``card_fee`` and ``wallet_fee``
Decimals (a :class:`ymds.config.YooMoneyConfig`).
"""

from __future__ import annotations

from decimal import Decimal

from ymds.yoomoney.quickpay import KOPECK, Fees, credited_amount, sum_for_credited

PAYMENT_TYPE_BY_NOTIFICATION = {"card-incoming": "AC", "p2p-incoming": "PC"}


def payment_type_of(notification_type: str) -> str | None:
    """``AC``/``PC`` for the signed notification_type, None for a type we do not know."""
    return PAYMENT_TYPE_BY_NOTIFICATION.get(notification_type)


def expected_credit(price: Decimal, payment_type: str, fees: Fees) -> Decimal:
    """The ``amount`` YooMoney reports when an invoice of ``price`` is paid with ``payment_type``."""
    return credited_amount(price, payment_type, fees)


def credit_covers(price: Decimal, notification_type: str, amount: Decimal, fees: Fees) -> bool:
    """True when the signed ``amount`` pays an invoice of ``price`` in full.

    An unknown notification type must reach the *higher* of the two credits (the smaller
    fee), so that an unknown type can never make a short payment look full.
    """
    payment_type = payment_type_of(notification_type)
    if payment_type is None:
        needed = max(expected_credit(price, t, fees) for t in PAYMENT_TYPE_BY_NOTIFICATION.values())
    else:
        needed = expected_credit(price, payment_type, fees)
    return amount >= needed


def paid_equivalent(amount: Decimal, notification_type: str, fees: Fees) -> Decimal:
    """The smallest form sum whose credit is at least the signed ``amount``: what the payer
    paid, reconstructed from signed facts only (use it where ``withdraw_amount`` was used).

    For an unknown type the smaller reconstruction is returned (the safe side).
    """
    amount = amount.quantize(KOPECK)
    payment_type = payment_type_of(notification_type)
    types = (payment_type,) if payment_type else tuple(PAYMENT_TYPE_BY_NOTIFICATION.values())
    return min(sum_for_credited(amount, t, fees) for t in types)


__all__ = ["payment_type_of", "expected_credit", "credit_covers", "paid_equivalent", "PAYMENT_TYPE_BY_NOTIFICATION"]
