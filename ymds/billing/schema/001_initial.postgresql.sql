-- ymds ledger, version 1 (PostgreSQL). Money is NUMERIC(12,2); times are Unix seconds.
CREATE TABLE invoices (
    label        TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,               -- subscription | donation
    plan         TEXT,
    days         INTEGER,                     -- the plan's days when the invoice was made
    chat_id      BIGINT,
    user_id      BIGINT,
    amount       NUMERIC(12,2) NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    metadata     TEXT NOT NULL DEFAULT '{}',
    status       TEXT NOT NULL,               -- open paid underpaid overpaid expired late held
    created_at   DOUBLE PRECISION NOT NULL,
    expires_at   DOUBLE PRECISION NOT NULL,
    paid_at      DOUBLE PRECISION,
    operation_id TEXT
);
CREATE INDEX invoices_open_by_chat ON invoices (chat_id, plan, status);
CREATE INDEX invoices_by_status_expiry ON invoices (status, expires_at);

CREATE TABLE payments (
    seq             BIGSERIAL PRIMARY KEY,
    operation_id    TEXT NOT NULL UNIQUE,
    label           TEXT NOT NULL DEFAULT '',
    invoice_label   TEXT,
    amount          NUMERIC(12,2) NOT NULL,
    withdraw_amount NUMERIC(12,2) NOT NULL,
    notification_type TEXT NOT NULL DEFAULT '',
    datetime_raw    TEXT NOT NULL DEFAULT '',
    sender          TEXT NOT NULL DEFAULT '',
    held            SMALLINT NOT NULL DEFAULT 0,
    status          TEXT NOT NULL,            -- paid overpaid underpaid late unmatched held
    source          TEXT NOT NULL,            -- notification | reconcile | manual
    received_at     DOUBLE PRECISION NOT NULL,
    accepted_at     DOUBLE PRECISION,
    chat_id         BIGINT,
    granted_until   DOUBLE PRECISION,
    notified        SMALLINT NOT NULL DEFAULT 0,
    raw             TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX payments_by_time ON payments (received_at);
CREATE INDEX payments_by_label ON payments (label);
CREATE INDEX payments_by_chat ON payments (chat_id);

CREATE TABLE subscriptions (
    chat_id         BIGINT PRIMARY KEY,
    plan            TEXT,
    ends_at         DOUBLE PRECISION NOT NULL,
    updated_at      DOUBLE PRECISION NOT NULL,
    reminded_window INTEGER,                  -- smallest reminder window already sent for ends_at
    expired         SMALLINT NOT NULL DEFAULT 0
);
CREATE INDEX subscriptions_by_end ON subscriptions (expired, ends_at);

CREATE TABLE quarantine (
    id          BIGSERIAL PRIMARY KEY,
    body        TEXT NOT NULL,
    body_hash   TEXT NOT NULL,
    size        INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    remote      TEXT NOT NULL DEFAULT '',
    received_at DOUBLE PRECISION NOT NULL,
    last_seen   DOUBLE PRECISION NOT NULL,
    count       INTEGER NOT NULL DEFAULT 1,
    resolved_at DOUBLE PRECISION,
    resolution  TEXT
);
CREATE UNIQUE INDEX quarantine_by_hash ON quarantine (body_hash);
CREATE INDEX quarantine_unresolved ON quarantine (resolved_at);

CREATE TABLE events (
    id           BIGSERIAL PRIMARY KEY,
    at           DOUBLE PRECISION NOT NULL,
    kind         TEXT NOT NULL,
    label        TEXT,
    chat_id      BIGINT,
    operation_id TEXT,
    data         TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_by_label ON events (label);
CREATE INDEX events_by_chat ON events (chat_id);

CREATE TABLE blocked_chats (
    chat_id    BIGINT PRIMARY KEY,
    blocked_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE cursors (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
