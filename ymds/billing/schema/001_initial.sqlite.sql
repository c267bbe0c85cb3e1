-- ymds ledger, version 1 (SQLite). Money is TEXT with exactly two decimals ("199.00"):
-- SQLite has no exact decimal type, and text keeps every kopeck.  Times are Unix seconds.
CREATE TABLE invoices (
    label        TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,               -- subscription | donation
    plan         TEXT,
    days         INTEGER,                     -- the plan's days when the invoice was made
    chat_id      INTEGER,
    user_id      INTEGER,
    amount       TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    metadata     TEXT NOT NULL DEFAULT '{}',
    status       TEXT NOT NULL,               -- open paid underpaid overpaid expired late held
    created_at   REAL NOT NULL,
    expires_at   REAL NOT NULL,
    paid_at      REAL,
    operation_id TEXT
);
CREATE INDEX invoices_open_by_chat ON invoices (chat_id, plan, status);
CREATE INDEX invoices_by_status_expiry ON invoices (status, expires_at);

CREATE TABLE payments (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    operation_id    TEXT NOT NULL UNIQUE,
    label           TEXT NOT NULL DEFAULT '',
    invoice_label   TEXT,
    amount          TEXT NOT NULL,
    withdraw_amount TEXT NOT NULL,
    notification_type TEXT NOT NULL DEFAULT '',
    datetime_raw    TEXT NOT NULL DEFAULT '',
    sender          TEXT NOT NULL DEFAULT '',
    held            INTEGER NOT NULL DEFAULT 0,
    status          TEXT NOT NULL,            -- paid overpaid underpaid late unmatched held
    source          TEXT NOT NULL,            -- notification | reconcile | manual
    received_at     REAL NOT NULL,
    accepted_at     REAL,
    chat_id         INTEGER,
    granted_until   REAL,
    notified        INTEGER NOT NULL DEFAULT 0,
    raw             TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX payments_by_time ON payments (received_at);
CREATE INDEX payments_by_label ON payments (label);
CREATE INDEX payments_by_chat ON payments (chat_id);

CREATE TABLE subscriptions (
    chat_id         INTEGER PRIMARY KEY,
    plan            TEXT,
    ends_at         REAL NOT NULL,
    updated_at      REAL NOT NULL,
    reminded_window INTEGER,                  -- smallest reminder window already sent for ends_at
    expired         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX subscriptions_by_end ON subscriptions (expired, ends_at);

CREATE TABLE quarantine (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    body        TEXT NOT NULL,
    body_hash   TEXT NOT NULL,
    size        INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    remote      TEXT NOT NULL DEFAULT '',
    received_at REAL NOT NULL,
    last_seen   REAL NOT NULL,
    count       INTEGER NOT NULL DEFAULT 1,
    resolved_at REAL,
    resolution  TEXT
);
CREATE UNIQUE INDEX quarantine_by_hash ON quarantine (body_hash);
CREATE INDEX quarantine_unresolved ON quarantine (resolved_at);

CREATE TABLE events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           REAL NOT NULL,
    kind         TEXT NOT NULL,
    label        TEXT,
    chat_id      INTEGER,
    operation_id TEXT,
    data         TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_by_label ON events (label);
CREATE INDEX events_by_chat ON events (chat_id);

CREATE TABLE blocked_chats (
    chat_id    INTEGER PRIMARY KEY,
    blocked_at REAL NOT NULL
);

CREATE TABLE cursors (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
