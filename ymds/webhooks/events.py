"""Which webhook events a ledger change makes, and their data.

Every event has a cause key (``invoice.paid:<operation_id>``, ``subscription.expired:<chat>:<end>``)
so the outbox holds it once however often billing re-derives it (a redelivered job).
Money is a string with two decimals, times are ISO 8601 UTC.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from ymds.billing.ledger import GRANTING, Invoice, Payment, Subscription


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat()


def money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.quantize(Decimal('0.01')):f}"


def invoice_data(invoice: Invoice) -> dict[str, Any]:
    meta = dict(invoice.metadata or {})
    return {
        "label": invoice.label, "kind": invoice.kind, "plan": invoice.plan, "chat_id": invoice.chat_id,
        "amount": money(invoice.amount), "currency": "RUB", "status": invoice.status,
        "description": invoice.description, "metadata": meta, "customer": meta.get("customer"),
        "created_at": iso(invoice.created_at), "expires_at": iso(invoice.expires_at), "paid_at": iso(invoice.paid_at),
    }


def payment_data(payment: Payment) -> dict[str, Any]:
    """What integrators see of a payment: no sender, no raw fields (personal data)."""
    return {
        "operation_id": payment.operation_id, "label": payment.label, "invoice_label": payment.invoice_label,
        "amount": money(payment.withdraw_amount), "credited": money(payment.amount), "currency": "RUB",
        "status": payment.status, "held": payment.held, "source": payment.source,
        "notification_type": payment.notification_type, "chat_id": payment.chat_id,
        "received_at": iso(payment.received_at), "accepted_at": iso(payment.accepted_at),
        "granted_until": iso(payment.granted_until),
    }


def payment_events(payment: Payment, invoice: Invoice | None) -> list[tuple[str, str, dict]]:
    """(type, cause, data) for a recorded payment; none while it is held."""
    op = payment.operation_id
    status = payment.status
    events: list[tuple[str, str, dict]] = []
    if status == "unmatched" or (invoice is None and status != "held"):
        events.append(("payment.unmatched", f"payment.unmatched:{op}", {"payment": payment_data(payment)}))
        return events
    if invoice is None:
        return events
    if status in GRANTING:
        events.append(("invoice.paid", f"invoice.paid:{op}",
                       {"invoice": invoice_data(invoice), "payment": payment_data(payment)}))
        if payment.granted_until is not None and invoice.chat_id is not None:
            events.append(("subscription.extended", f"subscription.extended:{op}", {
                "subscription": {"chat_id": invoice.chat_id, "plan": invoice.plan, "ends_at": iso(payment.granted_until),
                                 "active": True},
                "invoice_label": invoice.label, "operation_id": op}))
    elif status == "underpaid":
        events.append(("invoice.underpaid", f"invoice.underpaid:{op}",
                       {"invoice": invoice_data(invoice), "payment": payment_data(payment)}))
    return events


def expiry_event(subscription: Subscription) -> tuple[str, str, dict]:
    end = int(subscription.ends_at)
    return ("subscription.expired", f"subscription.expired:{subscription.chat_id}:{end}", {
        "subscription": {"chat_id": subscription.chat_id, "plan": subscription.plan,
                         "ends_at": iso(subscription.ends_at), "active": False}})
