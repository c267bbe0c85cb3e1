-- ymds ledger, version 6 (SQLite): the owner's dashboard.
-- report_money: money accepted (every payment not held), per half hour of received_at
-- (bucket = floor(received_at / 1800)) and kind, in kopecks; kept by apply_payment in the
-- payment's own transaction, so the dashboard never scans payments.  Half-hour buckets
-- let any owner's time zone with a whole or half-hour offset sum its own local days.
-- The slot spreads concurrent payments of one half hour over 16 rows (PostgreSQL row locks
-- are held until commit: one row would make every payment wait for the previous fsync).
CREATE TABLE report_money (
    bucket  INTEGER NOT NULL,
    kind    TEXT NOT NULL,                    -- subscription | donation
    amount  INTEGER NOT NULL,                 -- kopecks
    count   INTEGER NOT NULL,
    slot    INTEGER NOT NULL DEFAULT 0,      -- one of 16 rows per bucket and kind (by operation id)
    PRIMARY KEY (bucket, kind, slot)
);
-- report_chats: when each chat's subscription was first granted (new subscribers).
CREATE TABLE report_chats (
    chat_id       INTEGER PRIMARY KEY,
    first_paid_at REAL NOT NULL
);
CREATE INDEX report_chats_by_first ON report_chats (first_paid_at);
-- report_active: active subscribers, recorded by billing when the dashboard asks (UTC day).
CREATE TABLE report_active (
    day    INTEGER PRIMARY KEY,
    active INTEGER NOT NULL,
    at     REAL NOT NULL
);
-- admin_actions: one row per dashboard form submission (its idempotency key).
CREATE TABLE admin_actions (
    idempotency_key TEXT PRIMARY KEY,
    admin           TEXT NOT NULL,
    action          TEXT NOT NULL,
    target          TEXT NOT NULL,
    result          TEXT NOT NULL DEFAULT '{}',
    at              REAL NOT NULL
);
INSERT INTO report_money (bucket, kind, amount, count)
    SELECT CAST(p.received_at / 1800 AS INTEGER), CASE WHEN i.kind = 'subscription' THEN 'subscription' ELSE 'donation' END,
           SUM(CAST(REPLACE(p.amount, '.', '') AS INTEGER)), COUNT(*)
    FROM payments p LEFT JOIN invoices i ON i.label = p.invoice_label
    WHERE p.held = 0 GROUP BY 1, 2;
INSERT INTO report_chats (chat_id, first_paid_at)
    SELECT chat_id, MIN(COALESCE(accepted_at, received_at)) FROM payments
    WHERE granted_until IS NOT NULL AND chat_id IS NOT NULL GROUP BY chat_id;
