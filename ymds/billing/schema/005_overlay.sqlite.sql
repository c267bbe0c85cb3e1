-- ymds ledger, version 5 (sqlite): creators (issue 17) — the stream overlay's secret token,
-- which donors chose "show my name publicly", and the overlay outbox.

-- At most one row: the current overlay token (ymds overlay-url --rotate replaces it).
CREATE TABLE overlay_token (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    token       TEXT NOT NULL,
    created_at  REAL NOT NULL
);

-- One row per donation invoice whose donor chose to be shown; no row: private.
CREATE TABLE donation_public (
    label       TEXT PRIMARY KEY,             -- invoices.label
    name        TEXT NOT NULL,
    created_at  REAL NOT NULL
);

-- One row per paid donation to show on the overlay (keyed by the payment's operation id,
-- so a redelivered follow-up adds nothing); sent_at is set once the event is in Redis.
CREATE TABLE overlay_outbox (
    operation_id TEXT PRIMARY KEY,
    created_at   REAL NOT NULL,
    sent_at      REAL,
    entry_id     TEXT
);
CREATE INDEX overlay_outbox_by_pending ON overlay_outbox (sent_at, created_at);
