-- ymds ledger, version 8 (SQLite): broadcasts and their recipients, and the keys of
-- subscriber changes made through the API.
-- A broadcast's recipients are fixed when it is first started: a second run (after a crash
-- or a kill) sends to the same people, never to whoever joined since.
CREATE TABLE broadcasts (
    id          TEXT PRIMARY KEY,             -- bc_ + hash of the text and the audience
    audience    TEXT NOT NULL,                -- active | expired | all
    plan        TEXT,                         -- only this plan's subscribers, or every plan
    text_hash   TEXT NOT NULL,                -- hex SHA-256 of the text (the text is not kept)
    total       INTEGER NOT NULL,
    created_at  REAL NOT NULL,
    finished_at REAL
);

CREATE TABLE broadcast_recipients (
    broadcast_id TEXT NOT NULL,
    chat_id      INTEGER NOT NULL,
    status       TEXT NOT NULL,               -- pending sent blocked failed
    done_at      REAL,
    PRIMARY KEY (broadcast_id, chat_id)
);
CREATE INDEX broadcast_recipients_by_status ON broadcast_recipients (broadcast_id, status);

-- One row per API key and Idempotency-Key of a grant, extend or revoke: a retried request
-- changes nothing a second time; the same key with another request is refused.
CREATE TABLE subscriber_requests (
    request_key  TEXT PRIMARY KEY,            -- <api key id>:<Idempotency-Key>
    request_hash TEXT NOT NULL,               -- hex SHA-256 of the action, chat and body
    chat_id      INTEGER NOT NULL,
    created_at   REAL NOT NULL
);
