"""``ymds reverify``: look again at quarantined notifications.

A notification lands in quarantine when its signature did not verify (a wrong secret, a
scheme we did not yet know, a forgery).  After the owner fixes the secret or the scheme,
this re-checks each one with the current configuration, and with operation-details when an
API token exists (which confirms a payment independently of any signature), and applies
those that pass.  Forgeries stay in quarantine.
"""

from __future__ import annotations

import time
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
    from ymds.yoomoney.notification import NotificationError, parse_form
    from ymds.yoomoney.signature import verify

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
            result = verify(fields, config.yoomoney.notification_secret, config.yoomoney.signature)
            if result.ok:
                how = f"reverified:{result.scheme}"
            elif wallet_api is not None:
                how, held = await _ask_api(wallet_api, pf)
            if how is None:
                counts["still_quarantined"] += 1
                continue
            now = now_source.seconds()
            applied = await ledger.payments.apply_payment(pf, "notification", now, held=held)
            if tasks is not None:
                await tasks.follow_up(applied)
            await ledger.quarantine.quarantine_resolve(q.id, f"{how}:{applied.outcome}", now)
            counts["api_confirmed" if how.startswith("api") else "applied"] += 1
            log.info("quarantined notification {id} applied ({how}): {outcome}", id=q.id, how=how,
                     outcome=applied.outcome)
    return counts


async def _ask_api(wallet_api, pf: PaymentFields) -> tuple[Any, Any]:
    from ymds.yoomoney.wallet_api import WalletAPIError
    try:
        op = await wallet_api.operation_details(pf.operation_id)
    except WalletAPIError as e:
        log.info("reverify: operation-details for {operation_id}: {code}", operation_id=pf.operation_id, code=e.code)
        return None, None
    if op.operation_id != pf.operation_id or op.amount != pf.amount or (op.label or "") != pf.label:
        return None, None
    if op.direction and op.direction != "in":
        return None, None
    if op.status == "success":
        return "api_confirmed", False
    if op.status == "in_progress":
        return "api_confirmed_held", True
    return None, None
