"""``ymds reverify``: look again at quarantined notifications.

A notification lands in quarantine when its signature did not verify (a wrong secret, a
scheme we did not yet know, a forgery).  After the owner fixes the secret or the scheme,
this re-checks each one with the current configuration, and with operation-details when an
API token exists (which confirms a payment independently of any signature), and applies
those that pass.  Forgeries stay in quarantine.

The rules of ymds.billing.signatures hold here too (issue 14): a quarantined body is
unverified, so nothing it says beyond what its signature covers is believed.  A ``sign``
that verifies is applied as is; otherwise operation-details decides when a wallet API is
given, and then ``withdraw_amount`` comes from the API (amount plus fee), never from the
body; a body proven by sha1 alone without an API is applied on the sha1 terms (held,
``withdraw_amount`` proven from the signed amount), unless it is a downgrade.
"""

from __future__ import annotations

import dataclasses
import time
from decimal import Decimal
from typing import Any

from twisted.logger import Logger

from ymds.billing.ledger import BadPaymentFields, PaymentFields

log = Logger()


class _WallClock:
    """For the command line, which has no reactor clock to hand in."""

    @staticmethod
    def seconds() -> float:
        return time.time()


async def reverify(ledger, config, wallet_api=None, clock=None, tasks=None, batch: int = 200) -> dict[str, int]:
    """Re-check every unresolved quarantined notification; returns counts:
    checked, applied (by signature), api_confirmed, still_quarantined, unparseable.

    ``clock`` gives "now" (default: the ledger's reactor); ``tasks`` (BillingTasks) sends the
    usual follow-up messages for what gets applied.
    """
    from ymds.billing.signatures import SignatureRules
    from ymds.sandbox.secret import accepted_secrets
    from ymds.yoomoney.notification import NotificationError, parse_form
    from ymds.yoomoney.signature import verify_any

    rules = SignatureRules(config, ledger)

    now_source = clock if clock is not None else _WallClock()
    counts = {"checked": 0, "applied": 0, "api_confirmed": 0, "still_quarantined": 0, "unparseable": 0}
    after = 0
    while True:
        rows = await ledger.quarantine.quarantine_list(unresolved_only=True, limit=batch, after_id=after)
        if not rows:
            break
        for q in rows:
            after = q.id
            if not q.body:
                continue  # an overflow counter: nothing to check
            counts["checked"] += 1
            try:
                fields = parse_form(q.body.encode("utf-8"))
                pf = PaymentFields.from_fields(fields)
            except (NotificationError, BadPaymentFields, UnicodeError):
                counts["unparseable"] += 1
                continue
            how = None
            held = None
            result = verify_any(fields, accepted_secrets(config), config.yoomoney.signature)
            if result.ok and result.scheme == "sign":
                how = "reverified:sign"
            elif wallet_api is not None:
                how, held, pf = await _ask_api(wallet_api, pf, config)
            elif result.ok:
                terms = await rules.sha1_terms(pf, has_wallet_api=False)
                if terms.verdict != "downgrade":
                    how, held, pf = "reverified:sha1", True, terms.fields
            if how is None:
                counts["still_quarantined"] += 1
                continue
            now = now_source.seconds()
            if how.startswith("reverified:"):
                await rules.record(pf.operation_id, how.split(":")[1], now)
            applied = await ledger.payments.apply_payment(pf, "notification", now, held=held)
            if tasks is not None:
                await tasks.follow_up(applied)
            await ledger.quarantine.quarantine_resolve(q.id, f"{how}:{applied.outcome}", now)
            counts["api_confirmed" if how.startswith("api") else "applied"] += 1
            log.info("quarantined notification {id} applied ({how}): {outcome}", id=q.id, how=how,
                     outcome=applied.outcome)
    return counts


async def _ask_api(wallet_api: Any, pf: PaymentFields, config: Any) -> tuple[str | None, bool | None, PaymentFields]:
    """operation-details' verdict, and the fields with ``withdraw_amount`` taken from the
    API (amount plus fee) instead of the unverified body."""
    from ymds.yoomoney.wallet_api import WalletAPIError
    try:
        op = await wallet_api.operation_details(pf.operation_id)
    except WalletAPIError as e:
        log.info("reverify: operation-details for {operation_id}: {code}", operation_id=pf.operation_id, code=e.code)
        return None, None, pf
    if op.operation_id != pf.operation_id or op.amount != pf.amount or (op.label or "") != pf.label:
        return None, None, pf
    if op.direction and op.direction != "in":
        return None, None, pf
    if op.status not in ("success", "in_progress"):
        return None, None, pf
    proven = dataclasses.replace(pf, withdraw_amount=Decimal(op.notification_fields(config.yoomoney)["withdraw_amount"]))
    if op.status == "success":
        return "api_confirmed", False, proven
    return "api_confirmed_held", True, proven
