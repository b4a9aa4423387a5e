-- One unpartitioned events table keyed by (account, event id) is both the
-- record of every accepted event and the idempotency table: a new event costs
-- one heap tuple and one index entry instead of two of each (events by
-- month plus event_ids), and duplicates are decided by the insert itself
-- (ON CONFLICT DO NOTHING ... RETURNING). Nothing reads events by month (the
-- rollup answers every question), so the month partitions bought nothing.
-- +goose Up
CREATE TABLE events_by_id (
    account_sid text COLLATE "C" NOT NULL,
    event_id    text COLLATE "C" NOT NULL,
    occurred_at timestamptz NOT NULL,
    activity    text NOT NULL,
    source      text NOT NULL,
    service_sid text COLLATE "C" NOT NULL,
    identity    text COLLATE "C" NOT NULL,
    actor       text,
    channel_sid text,
    endpoint_id text,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (account_sid, event_id)
);
INSERT INTO events_by_id (account_sid, event_id, occurred_at, activity, source, service_sid, identity, actor,
    channel_sid, endpoint_id, received_at)
SELECT account_sid, event_id, occurred_at, activity, source, service_sid, identity, actor,
    channel_sid, endpoint_id, received_at
FROM events ORDER BY account_sid, event_id;
DROP TABLE events;
DROP TABLE event_ids;
ALTER TABLE events_by_id RENAME TO events;
ALTER INDEX events_by_id_pkey RENAME TO events_pkey;

-- +goose Down
CREATE TABLE events_by_month (
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
-- +goose StatementBegin
DO $$
DECLARE
    m date;
BEGIN
    FOR m IN SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date FROM events LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF events_by_month FOR VALUES FROM (%L) TO (%L)',
            to_char(m, '"events_"YYYY"_"MM'), m::timestamp AT TIME ZONE 'UTC',
            (m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
    END LOOP;
END
$$;
-- +goose StatementEnd
INSERT INTO events_by_month SELECT account_sid, occurred_at, event_id, activity, source, service_sid, identity,
    actor, channel_sid, endpoint_id, received_at FROM events;
CREATE TABLE event_ids (
    account_sid text COLLATE "C" NOT NULL,
    event_id    text COLLATE "C" NOT NULL,
    PRIMARY KEY (account_sid, event_id)
);
INSERT INTO event_ids SELECT account_sid, event_id FROM events;
DROP TABLE events;
ALTER TABLE events_by_month RENAME TO events;
ALTER INDEX events_by_month_pkey RENAME TO events_pkey;
