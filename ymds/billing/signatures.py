"""What billing may believe of a payment notification, given the signature that proved it.

The rule (issue 14): no field the signature does not cover may change what is credited or
its state.  ``sha1_hash`` covers ``amount``, ``label``, ``codepro`` but not
``withdraw_amount``, ``unaccepted`` or ``test_notification``; ``sign`` covers every field.

Which scheme proved a job (:func:`job_scheme`):

- the web node says so on the job (``ApplyPayment.scheme``);
- a job without it comes from a web node older than the field, so ``sign`` was NOT
  proven by the job: billing verifies the fields itself with its own secrets, and only a
  ``sign`` that verifies here counts; anything else carrying a signature is ``sha1``;
- a job whose fields carry no signature at all did not come from a web node (it refuses
  unsigned bodies): an internal job (tests, tools) inside the queue's trust boundary,
  recorded as ``unsigned`` and applied as given;
- reconciliation and manual jobs are not notifications: None, no rule applies.

On the ``sha1`` path (:meth:`SignatureRules.sha1_terms`):

1. once a ``sign`` payment was applied for the wallet, a sha1-only one is a downgrade
   (``sign`` was stripped): quarantined like a forged notification;
2. full versus short is decided from the signed ``amount`` with
   :func:`ymds.yoomoney.credit.credit_covers` against the invoice's price, and the ledger
   records :func:`ymds.yoomoney.credit.paid_equivalent` where it kept the claimed
   ``withdraw_amount``;
3. ``unaccepted`` is never trusted: with a wallet API the operation's details decide
   (success → accepted, in progress → held, anything else → quarantined); without one the
   payment is held and the owner is alerted (reconciliation releases it once an API token
   is configured).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

from ymds.billing.ledger import Invoice, PaymentFields
from ymds.sandbox.secret import accepted_secrets
from ymds.yoomoney.credit import credit_covers, paid_equivalent
from ymds.yoomoney.quickpay import KOPECK
from ymds.yoomoney.signature import is_downgrade, verify_any

DOWNGRADE_REASON = "signature: downgrade (sha1_hash only, but this wallet was seen sending sign)"


def job_scheme(fields: Any, source: str, claimed: str | None, config: Any) -> str | None:
    """``sign``, ``sha1``, ``unsigned`` or None (not a notification): see the module docstring."""
    if source != "notification":
        return None
    if claimed in ("sign", "sha1"):
        return claimed
    if not isinstance(fields, Mapping) or not ("sign" in fields or "sha1_hash" in fields):
        return "unsigned"
    checked = verify_any(fields, accepted_secrets(config), config.yoomoney.signature)
    return "sign" if checked.ok and checked.scheme == "sign" else "sha1"


@dataclass(frozen=True)
class Sha1Terms:
    """What a sha1-verified payment is recorded as."""
    fields: PaymentFields      # withdraw_amount replaced by what the signed amount proves
    held: bool | None          # None: let the confirmation decide (see verdict)
    verdict: str               # apply | downgrade | confirm
    alert_owner: bool = False  # held only because nothing could confirm acceptance


def proven_withdraw(invoice: Invoice | None, pf: PaymentFields, fees: Any) -> Decimal:
    """The form sum the signed ``amount`` proves, on the safe side of the invoice's price."""
    equivalent = paid_equivalent(pf.amount, pf.notification_type, fees)
    if invoice is None:
        return equivalent
    if credit_covers(invoice.amount, pf.notification_type, pf.amount, fees):
        return max(equivalent, invoice.amount)
    return min(equivalent, invoice.amount - KOPECK)


class SignatureRules:
    """The ledger-backed half of the rules: the sign-seen flag and the sha1 terms."""

    def __init__(self, config: Any, ledger: Any):
        self.config = config
        self.ledger = ledger

    @property
    def wallet(self) -> str:
        return str(self.config.yoomoney.wallet or "default")

    async def sha1_terms(self, pf: PaymentFields, has_wallet_api: bool) -> Sha1Terms:
        if is_downgrade("sha1", await self.ledger.signatures.sign_seen(self.wallet)):
            return Sha1Terms(pf, None, "downgrade")
        invoice = await self.ledger.invoices.get_invoice(pf.label) if pf.label else None
        withdraw = proven_withdraw(invoice, pf, self.config.yoomoney)
        codepro = pf.raw.get("codepro", "false").strip().lower() in ("true", "1")  # signed by sha1
        proven = dataclasses.replace(pf, withdraw_amount=withdraw, held=True)
        if codepro:
            return Sha1Terms(proven, True, "apply")
        if has_wallet_api:
            return Sha1Terms(proven, None, "confirm")
        return Sha1Terms(proven, True, "apply", alert_owner=True)

    async def record(self, operation_id: str, scheme: str, now: float) -> None:
        await self.ledger.signatures.record(self.wallet, operation_id, scheme, now)


__all__ = ["job_scheme", "SignatureRules", "Sha1Terms", "proven_withdraw", "DOWNGRADE_REASON"]
