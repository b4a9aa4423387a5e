-- Every accepted event, append-only, range-partitioned by calendar month
-- (UTC) on occurred_at. Partitions are created on demand by the ingest path,
-- so no month has to be prepared ahead.
-- +goose Up
CREATE TABLE events (
    account_sid text COLLATE "C" NOT NULL,
    occurred_at timestamptz NOT NULL,
    event_id    text COLLATE "C" NOT NULL,
    activity    text NOT NULL,
    source      text NOT NULL,
    service_sid text COLLATE "C" NOT NULL,
    identity    text COLLATE "C" NOT NULL,
    actor       text,
    channel_sid text,
    endpoint_id text,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (account_sid, occurred_at, event_id)
) PARTITION BY RANGE (occurred_at);

-- +goose Down
DROP TABLE events;
