-- The per-month rollup: one row per active user (account, month, service,
-- identity), kept in the same transaction as the events so that a month's
-- active users are read without scanning events and never disagree with them.
-- activities and sources are bit sets (see usage.Activity and usage.Source);
-- identity_flags classifies the identity once (usage.IdentityFlags) so that
-- admin statistics count reserved-character and random-like identities
-- without re-reading them.
-- +goose Up
CREATE TABLE month_users (
    account_sid      text COLLATE "C" NOT NULL,
    month            date NOT NULL CHECK (extract(day FROM month) = 1),
    service_sid      text COLLATE "C" NOT NULL,
    identity         text COLLATE "C" NOT NULL,
    first_activity   text NOT NULL,
    first_event_id   text COLLATE "C" NOT NULL,
    first_at         timestamptz NOT NULL,
    last_at          timestamptz NOT NULL,
    events           bigint NOT NULL CHECK (events > 0),
    activities       smallint NOT NULL,
    sources          smallint NOT NULL,
    endpoints        text[] COLLATE "C" NOT NULL DEFAULT '{}',
    identity_flags   smallint NOT NULL DEFAULT 0,
    last_received_at timestamptz NOT NULL,
    PRIMARY KEY (account_sid, month, service_sid, identity)

) WITH (fillfactor = 80); -- room for HOT updates: rows are upserted by every batch

-- +goose Down
DROP TABLE month_users;
