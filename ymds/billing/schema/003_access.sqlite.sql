-- ymds ledger, version 3 (SQLite): access to paid chats (issue 15).
-- The one live join-request link of each (subscriber, chat): the primary key is the
-- one-live-link rule; a swap is a compare-and-swap on invite_link.
CREATE TABLE access_invites (
    user_id     INTEGER NOT NULL,
    chat_id     INTEGER NOT NULL,
    invite_link TEXT NOT NULL UNIQUE,
    expire_date INTEGER NOT NULL,             -- Unix time the link stops working
    created_at  REAL NOT NULL,
    PRIMARY KEY (user_id, chat_id)
);

-- The people the bot has seen join or leave each paid chat (the latest status), for
-- `ymds members`.
CREATE TABLE access_members (
    chat_id     INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    status      TEXT NOT NULL,                -- member administrator creator left kicked restricted
    joined_at   REAL,                         -- when last seen becoming a member
    seen_at     REAL NOT NULL,
    PRIMARY KEY (chat_id, user_id)
);

-- Removals due when a subscription's grace ends: one per (user, chat, subscription end),
-- claimed by one billing process (claimed_at) and dropped when done.
CREATE TABLE access_removals (
    user_id     INTEGER NOT NULL,
    chat_id     INTEGER NOT NULL,
    ends_at     REAL NOT NULL,                -- the subscription end it is for
    due_at      REAL NOT NULL,                -- ends_at + telegram.grace
    claimed_at  REAL,
    PRIMARY KEY (user_id, chat_id, ends_at)
);
CREATE INDEX access_removals_due ON access_removals (due_at);
