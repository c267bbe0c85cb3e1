"""Outgoing webhooks: signed JSON events delivered from the ledger's outbox (billing role)."""
