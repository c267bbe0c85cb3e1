"""The webhook outbox: endpoints, events written at most once per cause, one pending
delivery per (endpoint, event), a per-endpoint lease so one deliverer keeps events in order,
and the attempt log."""

from __future__ import annotations

import secrets
from typing import Any, Iterable, Mapping

from twisted.internet.defer import Deferred, fail

from ymds.billing.database import Database
from ymds.billing.ledger import LedgerError, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from ymds.billing.sql import DELIVERY_SELECT, ENDPOINT_COLS, delivery_from_row, endpoint_from_row, json_text


class WebhookStore:
    """IWebhookStore over SQL."""

    def __init__(self, db: Database):
        self._db = db

    # --- webhooks: endpoints ------------------------------------------------------------

    def webhook_endpoint_add(self, endpoint_id: str, url: str, events: Iterable[str], secret: str,
                             now: float) -> Deferred[WebhookEndpoint]:
        wanted = tuple(events)

        def q(txn: Any) -> Any:
            self._db.execute(txn, "INSERT INTO webhook_endpoints (id, url, events, secret, created_at) VALUES (?, ?, ?, ?, ?)",
                             (endpoint_id, url, " ".join(wanted), secret, now))
            self._db.add_event(txn, now, "webhook_endpoint_added", endpoint_id=endpoint_id, events=list(wanted))
            return WebhookEndpoint(endpoint_id, url, wanted, secret, now)
        return self._db.run(q)

    def webhook_endpoint_get(self, endpoint_id: str) -> Deferred[WebhookEndpoint | None]:
        def q(txn: Any) -> WebhookEndpoint | None:
            row = self._db.one(txn, f"SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE id = ?", (endpoint_id,))
            return None if row is None else endpoint_from_row(row)
        return self._db.run(q, write=False)

    def webhook_endpoints(self, include_removed: bool = False) -> Deferred[list[WebhookEndpoint]]:
        def q(txn: Any) -> Any:
            where = "" if include_removed else " WHERE removed_at IS NULL"
            rows = self._db.all(txn, f"SELECT {ENDPOINT_COLS} FROM webhook_endpoints{where} ORDER BY created_at, id")
            counts = {}
            for endpoint_id, status, n in self._db.all(txn, "SELECT endpoint_id, status, COUNT(*) FROM webhook_deliveries "
                                                         "WHERE status <> 'delivered' GROUP BY endpoint_id, status"):
                counts[(endpoint_id, status)] = int(n)
            return [endpoint_from_row(r, counts.get((r[0], "pending"), 0), counts.get((r[0], "failed"), 0)) for r in rows]
        return self._db.run(q, write=False)

    def webhook_endpoint_remove(self, endpoint_id: str, now: float) -> Deferred[bool]:
        def q(txn: Any) -> Any:
            cur = self._db.execute(txn, "UPDATE webhook_endpoints SET removed_at = ? WHERE id = ? AND removed_at IS NULL",
                          (now, endpoint_id))
            if cur.rowcount == 1:
                self._db.add_event(txn, now, "webhook_endpoint_removed", endpoint_id=endpoint_id)
                return True
            return False
        return self._db.run(q)

    # --- webhooks: the outbox -----------------------------------------------------------

    def _wanting(self, txn: Any, event_type: str) -> list[str]:
        rows = self._db.all(txn, "SELECT id, events FROM webhook_endpoints WHERE removed_at IS NULL ORDER BY id")
        return [id_ for id_, events in rows if event_type in events.split() or "*" in events.split()]

    def webhook_emit(self, events: Iterable[tuple[str, str, Mapping[str, Any]]], now: float) -> Deferred[list[str]]:
        emitted = [(str(t), str(c), dict(d)) for t, c, d in events]

        def q(txn: Any) -> Any:
            concerned: list[str] = []
            for event_type, cause, data in emitted:
                row = self._db.one(txn, "INSERT INTO webhook_events (id, cause, type, created_at, data) VALUES (?, ?, ?, ?, ?) "
                                     "ON CONFLICT (cause) DO NOTHING RETURNING seq",
                                (f"evt_{secrets.token_hex(12)}", cause, event_type, now, json_text(data)))
                if row is not None:
                    for endpoint_id in self._wanting(txn, event_type):
                        self._db.execute(txn, "INSERT INTO webhook_deliveries (endpoint_id, event_seq, status, attempts, "
                                     "next_attempt_at) VALUES (?, ?, 'pending', 0, ?)", (endpoint_id, row[0], now))
                    seq = row[0]
                else:
                    seq = self._db.one(txn, "SELECT seq FROM webhook_events WHERE cause = ?", (cause,))[0]
                for (endpoint_id,) in self._db.all(txn, "SELECT endpoint_id FROM webhook_deliveries WHERE event_seq = ? "
                                                     "AND status = 'pending' ORDER BY endpoint_id", (seq,)):
                    if endpoint_id not in concerned:
                        concerned.append(endpoint_id)
            return concerned
        return self._db.run(q)

    def webhook_claim(self, endpoint_id: str, token: str, now: float, lease: float) -> Deferred[bool]:
        def q(txn: Any) -> Any:
            cur = self._db.execute(txn, "UPDATE webhook_endpoints SET lease_token = ?, lease_until = ? WHERE id = ? "
                               "AND removed_at IS NULL AND (lease_token IS NULL OR lease_token = ? OR lease_until <= ?)",
                          (token, now + lease, endpoint_id, token, now))
            return cur.rowcount == 1
        return self._db.run(q)

    def webhook_release(self, endpoint_id: str, token: str) -> Deferred[bool]:
        def q(txn: Any) -> Any:
            return self._db.execute(txn, "UPDATE webhook_endpoints SET lease_token = NULL, lease_until = NULL "
                                "WHERE id = ? AND lease_token = ?", (endpoint_id, token)).rowcount == 1
        return self._db.run(q)

    def webhook_next(self, endpoint_id: str) -> Deferred[WebhookDelivery | None]:
        def q(txn: Any) -> Any:
            row = self._db.one(txn, f"{DELIVERY_SELECT} WHERE d.endpoint_id = ? AND d.status = 'pending' "
                                 "ORDER BY d.event_seq LIMIT 1", (endpoint_id,))
            return None if row is None else delivery_from_row(row)
        return self._db.run(q, write=False)

    def webhook_record_attempt(self, endpoint_id: str, event_seq: int, now: float, status_code: int | None,
                               error: str | None, duration: float, outcome: str,
                               next_attempt_at: float | None = None) -> Deferred[bool]:
        if outcome not in ("delivered", "retry", "failed"):
            return fail(LedgerError(f"attempt outcome {outcome!r} is not delivered, retry or failed"))
        error = None if error is None else str(error)[:500]

        def q(txn: Any) -> Any:
            self._db.execute(txn, "INSERT INTO webhook_attempts (endpoint_id, event_seq, at, status_code, error, duration, outcome) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", (endpoint_id, event_seq, now, status_code, error, duration, outcome))
            status = "pending" if outcome == "retry" else outcome
            cur = self._db.execute(txn, "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, "
                               "first_attempt_at = COALESCE(first_attempt_at, ?), next_attempt_at = ?, last_error = ?, "
                               "done_at = ? WHERE endpoint_id = ? AND event_seq = ? AND status = 'pending'",
                          (status, now, next_attempt_at if next_attempt_at is not None else now, error,
                           None if outcome == "retry" else now, endpoint_id, event_seq))
            return cur.rowcount == 1
        return self._db.run(q)

    def webhook_due(self, now: float, limit: int = 1000) -> Deferred[list[str]]:
        def q(txn: Any) -> Any:
            rows = self._db.all(txn, "SELECT w.id FROM webhook_endpoints w WHERE w.removed_at IS NULL "
                                  "AND (w.lease_token IS NULL OR w.lease_until <= ?) AND (SELECT d.next_attempt_at FROM "
                                  "webhook_deliveries d WHERE d.endpoint_id = w.id AND d.status = 'pending' "
                                  "ORDER BY d.event_seq LIMIT 1) <= ? ORDER BY w.id LIMIT ?", (now, now, int(limit)))
            return [r[0] for r in rows]
        return self._db.run(q, write=False)

    def webhook_redeliver(self, now: float, event_id: str | None = None, endpoint_id: str | None = None,
                          since: float | None = None) -> Deferred[list[str]]:
        if event_id is None and endpoint_id is None:
            return fail(LedgerError("webhook_redeliver needs an event id or an endpoint id"))

        def q(txn: Any) -> Any:
            where: list[str] = []
            params: list[Any] = []
            if event_id is not None:
                where.append("id = ?")
                params.append(event_id)
            if since is not None:
                where.append("created_at >= ?")
                params.append(since)
            events = self._db.all(txn, "SELECT seq, type FROM webhook_events WHERE " + " AND ".join(where or ["1 = 1"])
                               + " ORDER BY seq", params)
            concerned: list[str] = []
            for seq, event_type in events:
                targets = self._wanting(txn, event_type)
                if endpoint_id is not None:
                    targets = [t for t in targets if t == endpoint_id]
                for target in targets:
                    cur = self._db.execute(txn, "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, "
                                       "first_attempt_at = NULL, next_attempt_at = ?, last_error = NULL, done_at = NULL "
                                       "WHERE endpoint_id = ? AND event_seq = ?", (now, target, seq))
                    if cur.rowcount == 0:
                        self._db.execute(txn, "INSERT INTO webhook_deliveries (endpoint_id, event_seq, status, attempts, "
                                     "next_attempt_at) VALUES (?, ?, 'pending', 0, ?)", (target, seq, now))
                    if target not in concerned:
                        concerned.append(target)
            if concerned:
                self._db.add_event(txn, now, "webhook_redeliver", event_id=event_id, endpoint_id=endpoint_id,
                                since=since, deliveries=len(events))
            return concerned
        return self._db.run(q)

    def webhook_deliveries(self, endpoint_id: str | None = None, event_id: str | None = None, status: str | None = None,
                           limit: int = 100) -> Deferred[list[WebhookDelivery]]:
        where: list[str] = []
        params: list[Any] = []
        for clause, value in (("d.endpoint_id = ?", endpoint_id), ("e.id = ?", event_id), ("d.status = ?", status)):
            if value is not None:
                where.append(clause)
                params.append(value)

        def q(txn: Any) -> Any:
            query = DELIVERY_SELECT + (" WHERE " + " AND ".join(where) if where else "")
            rows = self._db.all(txn, query + " ORDER BY d.event_seq, d.endpoint_id LIMIT ?", params + [int(limit)])
            return [delivery_from_row(r) for r in rows]
        return self._db.run(q, write=False)

    def webhook_attempts(self, endpoint_id: str | None = None, event_id: str | None = None,
                         limit: int = 100) -> Deferred[list[WebhookAttempt]]:
        where: list[str] = []
        params: list[Any] = []
        for clause, value in (("a.endpoint_id = ?", endpoint_id), ("e.id = ?", event_id)):
            if value is not None:
                where.append(clause)
                params.append(value)

        def q(txn: Any) -> Any:
            query = ("SELECT a.id, a.endpoint_id, e.id, a.at, a.status_code, a.error, a.duration, a.outcome "
                     "FROM webhook_attempts a JOIN webhook_events e ON e.seq = a.event_seq")
            if where:
                query += " WHERE " + " AND ".join(where)
            rows = self._db.all(txn, query + " ORDER BY a.id LIMIT ?", params + [int(limit)])
            return [WebhookAttempt(*r) for r in rows]
        return self._db.run(q, write=False)
