-- ymds ledger, version 2 (SQLite): the integration API and outgoing webhooks.
-- API keys are kept only as the SHA-256 of the key; the key itself is shown once.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,             -- public id, e.g. key_3f2a9c1d
    key_hash    TEXT NOT NULL UNIQUE,         -- hex SHA-256 of the whole key
    name        TEXT NOT NULL DEFAULT '',
    scopes      TEXT NOT NULL,                -- space separated
    created_at  REAL NOT NULL,
    revoked_at  REAL
);

-- One row per (API key, Idempotency-Key): a retried create returns the same invoice.
CREATE TABLE idempotency_keys (
    key_id        TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    invoice_label TEXT NOT NULL,
    created_at    REAL NOT NULL,
    PRIMARY KEY (key_id, idem_key)
);
CREATE INDEX idempotency_by_time ON idempotency_keys (created_at);

CREATE TABLE webhook_endpoints (
    id          TEXT PRIMARY KEY,             -- e.g. we_0123456789ab
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,                -- space separated event types
    secret      TEXT NOT NULL,                -- HMAC key for Ymds-Signature
    created_at  REAL NOT NULL,
    removed_at  REAL,
    lease_token TEXT,                         -- the deliverer working on this endpoint now
    lease_until REAL
);

-- The outbox: one row per cause (e.g. invoice.paid:<operation_id>), never two.
CREATE TABLE webhook_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,         -- evt_..., what receivers dedup on
    cause       TEXT NOT NULL UNIQUE,
    type        TEXT NOT NULL,
    created_at  REAL NOT NULL,
    data        TEXT NOT NULL
);

CREATE TABLE webhook_deliveries (
    endpoint_id      TEXT NOT NULL,
    event_seq        INTEGER NOT NULL,
    status           TEXT NOT NULL,           -- pending delivered failed
    attempts         INTEGER NOT NULL DEFAULT 0,
    first_attempt_at REAL,
    next_attempt_at  REAL NOT NULL,
    last_error       TEXT,
    done_at          REAL,
    PRIMARY KEY (endpoint_id, event_seq)
);
CREATE INDEX webhook_deliveries_by_status ON webhook_deliveries (status, endpoint_id, event_seq);

-- The delivery log: every attempt with its answer.
CREATE TABLE webhook_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id TEXT NOT NULL,
    event_seq   INTEGER NOT NULL,
    at          REAL NOT NULL,
    status_code INTEGER,
    error       TEXT,
    duration    REAL NOT NULL,
    outcome     TEXT NOT NULL                 -- delivered retry failed
);
CREATE INDEX webhook_attempts_by_event ON webhook_attempts (event_seq);
CREATE INDEX webhook_attempts_by_endpoint ON webhook_attempts (endpoint_id, id);
