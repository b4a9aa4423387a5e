-- Every user ever seen, with its first and last activity ever: new users of a
-- month are those whose first activity falls in it.
-- +goose Up
CREATE TABLE users (
    account_sid text COLLATE "C" NOT NULL,
    service_sid text COLLATE "C" NOT NULL,
    identity    text COLLATE "C" NOT NULL,
    first_at    timestamptz NOT NULL,
    last_at     timestamptz NOT NULL,
    PRIMARY KEY (account_sid, service_sid, identity)

) WITH (fillfactor = 80); -- room for HOT updates: rows are upserted by every batch

-- +goose Down
DROP TABLE users;
