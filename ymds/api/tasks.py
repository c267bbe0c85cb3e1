"""Billing-side handlers of the REST API (they run in the billing role, the only one that
touches the ledger): ``api_authenticate``, ``api_invoice``, ``list_payments``.  Creating an
invoice is billing's ``create_invoice``; a subscription is ``subscription_status``."""

from __future__ import annotations

import re

from ymds.billing.ledger import PAYMENT_STATUSES
from ymds.billing.tasks import InvalidTaskArgs, _int
from ymds.links import is_our_label, pay_url
from ymds.webhooks.events import invoice_data, payment_data

_HASH = re.compile(r"^[0-9a-f]{64}$")
MAX_PAGE = 500


class ApiTasks:
    def __init__(self, config, ledger, clock):
        self.config = config
        self.ledger = ledger
        self.clock = clock

    def register(self, registry) -> None:
        registry.register("api_authenticate", self.api_authenticate)
        registry.register("api_invoice", self.api_invoice)
        registry.register("list_payments", self.list_payments)

    async def api_authenticate(self, args: dict) -> dict | None:
        """{key_hash} -> {key_id, scopes} for an active key, else None."""
        digest = args.get("key_hash") if isinstance(args, dict) else None
        if not isinstance(digest, str) or not _HASH.fullmatch(digest):
            return None
        key = await self.ledger.api_key_lookup(digest)
        if key is None or key.revoked_at is not None:
            return None
        return {"key_id": key.id, "scopes": list(key.scopes)}

    async def api_invoice(self, args: dict) -> dict | None:
        label = args.get("label") if isinstance(args, dict) else None
        if not isinstance(label, str) or not is_our_label(label):
            return None
        invoice = await self.ledger.get_invoice(label)
        if invoice is None:
            return None
        url = pay_url(self.config.server.public_url, self.config.links.secret, invoice.label, int(invoice.expires_at))
        return {**invoice_data(invoice), "pay_url": url}

    async def list_payments(self, args: dict) -> dict:
        """{since, until (unix seconds), status, label, chat_id, cursor, limit} ->
        {"payments": [...], "next_cursor": int|None}, oldest first."""
        if not isinstance(args, dict):
            raise InvalidTaskArgs("the job's arguments must be an object")
        filters = {}
        for name in ("since", "until"):
            value = args.get(name)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise InvalidTaskArgs(f"{name} must be Unix seconds")
                filters[name] = float(value)
        status = args.get("status")
        if status is not None:
            if status not in PAYMENT_STATUSES:
                raise InvalidTaskArgs(f"status must be one of {', '.join(PAYMENT_STATUSES)}")
            filters["status"] = status
        label = args.get("label")
        if label is not None:
            if not isinstance(label, str) or len(label) > 256:
                raise InvalidTaskArgs("label must be text")
            filters["label"] = label
        chat_id = _int(args, "chat_id", optional=True)
        if chat_id is not None:
            filters["chat_id"] = chat_id
        cursor = _int(args, "cursor", optional=True)
        limit = _int(args, "limit", optional=True) or 100
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidTaskArgs(f"limit must be between 1 and {MAX_PAGE}")
        page = await self.ledger.list_payments(after_cursor=cursor, limit=limit, **filters)
        return {"payments": [payment_data(p) for p in page.payments], "next_cursor": page.next_cursor}
