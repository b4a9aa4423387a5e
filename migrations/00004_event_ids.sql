-- The idempotency key is (account, event id) whatever occurred_at a retry
-- carries. A unique index on the month-partitioned events table would have to
-- include occurred_at, so deduplication has its own unpartitioned table.
-- +goose Up
CREATE TABLE event_ids (
    account_sid text COLLATE "C" NOT NULL,
    event_id    text COLLATE "C" NOT NULL,
    PRIMARY KEY (account_sid, event_id)
);

-- +goose Down
DROP TABLE event_ids;
