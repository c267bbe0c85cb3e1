-- ymds ledger, version 7 (SQLite): which signature proved each payment (issue 14).
-- wallet_signatures: the first time a notification verified by `sign` was applied for a
-- wallet; from then on a notification verified by sha1_hash alone is a downgrade (someone
-- stripped `sign`) and is quarantined like a forged one.
CREATE TABLE wallet_signatures (
    wallet       TEXT PRIMARY KEY,
    sign_seen_at REAL NOT NULL
);
-- payment_signatures: the scheme that verified each applied notification
-- (sign | sha1 | unsigned: an internal job without any signature).
CREATE TABLE payment_signatures (
    operation_id TEXT PRIMARY KEY,
    scheme       TEXT NOT NULL,
    recorded_at  REAL NOT NULL
);
