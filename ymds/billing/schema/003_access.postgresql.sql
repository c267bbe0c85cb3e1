-- ymds ledger, version 3 (PostgreSQL): access to paid chats (issue 15).
-- The one live join-request link of each (subscriber, chat): the primary key is the
-- one-live-link rule; a swap is a compare-and-swap on invite_link.
CREATE TABLE access_invites (
    user_id     BIGINT NOT NULL,
    chat_id     BIGINT NOT NULL,
    invite_link TEXT NOT NULL UNIQUE,
    expire_date BIGINT NOT NULL,             -- Unix time the link stops working
    created_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (user_id, chat_id)
);

-- The people the bot has seen join or leave each paid chat (the latest status), for
-- `ymds members`.
CREATE TABLE access_members (
    chat_id     BIGINT NOT NULL,
    user_id     BIGINT NOT NULL,
    status      TEXT NOT NULL,                -- member administrator creator left kicked restricted
    joined_at   DOUBLE PRECISION,                         -- when last seen becoming a member
    seen_at     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (chat_id, user_id)
);

-- Removals due when a subscription's grace ends: one per (user, chat, subscription end),
-- claimed by one billing process (claimed_at) and dropped when done.
CREATE TABLE access_removals (
    user_id     BIGINT NOT NULL,
    chat_id     BIGINT NOT NULL,
    ends_at     DOUBLE PRECISION NOT NULL,                -- the subscription end it is for
    due_at      DOUBLE PRECISION NOT NULL,                -- ends_at + telegram.grace
    claimed_at  DOUBLE PRECISION,
    PRIMARY KEY (user_id, chat_id, ends_at)
);
CREATE INDEX access_removals_due ON access_removals (due_at);
