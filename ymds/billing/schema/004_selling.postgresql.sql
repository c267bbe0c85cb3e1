-- ymds ledger, version 4 (PostgreSQL): selling tools (issue 19) — trials, promo codes, gift and
-- access codes.  Every limit is a row the ledger counts under a lock or a unique key.

-- One trial per Telegram user per plan, ever: the primary key is the limit.  A paid trial's
-- row is 'reserved' with its invoice; it is deleted if that invoice expires unpaid.
CREATE TABLE trials (
    user_id       BIGINT NOT NULL,
    plan          TEXT NOT NULL,
    chat_id       BIGINT NOT NULL,
    status        TEXT NOT NULL,              -- granted (free) | reserved (paid, its invoice)
    invoice_label TEXT,
    days          INTEGER NOT NULL,
    created_at    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (user_id, plan)
);
CREATE INDEX trials_by_invoice ON trials (invoice_label);

CREATE TABLE promo_codes (
    code        TEXT PRIMARY KEY,             -- upper case
    percent     INTEGER,                      -- exactly one of percent / off
    off         NUMERIC(12,2),
    plans       TEXT NOT NULL DEFAULT '',     -- space separated plan ids; '' = every plan
    uses        INTEGER,                      -- NULL = unlimited
    per_user    INTEGER,
    starts_at   DOUBLE PRECISION,
    ends_at     DOUBLE PRECISION,
    first_only  INTEGER NOT NULL DEFAULT 0,   -- only for chats that never paid for a subscription
    created_at  DOUBLE PRECISION NOT NULL,
    disabled_at DOUBLE PRECISION
);

-- One row per discounted invoice: a use is reserved when the invoice is made and released
-- when it expires unpaid.  uses / per_user count the rows not released.
CREATE TABLE promo_uses (
    invoice_label TEXT PRIMARY KEY,
    code          TEXT NOT NULL,
    chat_id       BIGINT NOT NULL,
    plan          TEXT NOT NULL,
    full_price    NUMERIC(12,2) NOT NULL,
    price         NUMERIC(12,2) NOT NULL,
    status        TEXT NOT NULL,              -- reserved | released
    created_at    DOUBLE PRECISION NOT NULL,
    released_at   DOUBLE PRECISION
);
CREATE INDEX promo_uses_by_code ON promo_uses (code, status, chat_id);

-- The code a chat applied with /promo or /start promo_CODE (the pay links made after it).
CREATE TABLE promo_applied (
    chat_id    BIGINT PRIMARY KEY,
    code       TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE access_codes (
    code         TEXT PRIMARY KEY,
    plan         TEXT,                        -- NULL: --days without a plan (keeps the chat's plan)
    days         INTEGER NOT NULL,
    uses         INTEGER NOT NULL,
    expires_at   DOUBLE PRECISION,
    created_at   DOUBLE PRECISION NOT NULL,
    gift_invoice TEXT UNIQUE                  -- a gift: the paid invoice that bought it (one code each)
);

-- One redemption per chat per code; a code's uses count these rows.
CREATE TABLE code_redemptions (
    code     TEXT NOT NULL,
    chat_id  BIGINT NOT NULL,
    at       DOUBLE PRECISION NOT NULL,
    ends_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (code, chat_id)
);

-- The promo code fixed into the paid invoice, recorded in the payment's own row.
ALTER TABLE payments ADD COLUMN promo_code TEXT;
