-- Ingestion no longer updates the rollup row of every user it sees: a body
-- appends its new events here, in the transaction that inserts them into
-- events, and a fold (internal/postgres/fold.go) later deletes them from
-- here and merges them into month_users and users in one transaction.
-- Appending a row costs a fraction of updating a rollup row, and a fold
-- updates each row once for all the events it gathered. Every read of the
-- rollup folds its account first, so reads stay exact; a row is in exactly
-- one of the two places at any time, so nothing is counted twice or lost.
-- No index: a fold takes the table in physical order.
-- +goose Up
CREATE TABLE rollup_pending (
    account_sid    text COLLATE "C" NOT NULL,
    month          date NOT NULL,
    service_sid    text COLLATE "C" NOT NULL,
    identity       text COLLATE "C" NOT NULL,
    event_id       text COLLATE "C" NOT NULL,
    occurred_at    timestamptz NOT NULL,
    activity       text NOT NULL,
    activity_bit   smallint NOT NULL,
    source_bit     smallint NOT NULL,
    endpoint_id    text COLLATE "C",
    identity_flags smallint NOT NULL,
    received_at    timestamptz NOT NULL
);

-- +goose Down
-- Fold what is still pending before the table goes: the rollup of version
-- 11 is updated by every body and must hold every event.
WITH d AS (DELETE FROM rollup_pending RETURNING *),
agg AS MATERIALIZED (
    SELECT account_sid, month, service_sid, identity,
           (array_agg(activity ORDER BY occurred_at, event_id))[1] AS first_activity,
           (array_agg(event_id ORDER BY occurred_at, event_id))[1] AS first_event_id,
           min(occurred_at) AS first_at, max(occurred_at) AS last_at, count(*) AS events,
           bit_or(activity_bit) AS activities, bit_or(source_bit) AS sources,
           coalesce(array_agg(DISTINCT endpoint_id ORDER BY endpoint_id) FILTER (WHERE endpoint_id IS NOT NULL),
                    '{}') AS endpoints,
           min(identity_flags) AS identity_flags, max(received_at) AS last_received_at
    FROM d GROUP BY account_sid, month, service_sid, identity
),
rollup AS (
    INSERT INTO month_users AS m (account_sid, month, service_sid, identity, first_activity, first_event_id,
        first_at, last_at, events, activities, sources, endpoints, last_received_at, identity_flags)
    SELECT account_sid, month, service_sid, identity, first_activity, first_event_id, first_at, last_at, events,
           activities, sources, endpoints, last_received_at, identity_flags
    FROM agg
    ON CONFLICT (account_sid, month, service_sid, identity) DO UPDATE SET
        first_activity = CASE WHEN (EXCLUDED.first_at, EXCLUDED.first_event_id) < (m.first_at, m.first_event_id)
                              THEN EXCLUDED.first_activity ELSE m.first_activity END,
        first_event_id = CASE WHEN (EXCLUDED.first_at, EXCLUDED.first_event_id) < (m.first_at, m.first_event_id)
                              THEN EXCLUDED.first_event_id ELSE m.first_event_id END,
        first_at = least(m.first_at, EXCLUDED.first_at),
        last_at = greatest(m.last_at, EXCLUDED.last_at),
        events = m.events + EXCLUDED.events,
        activities = m.activities | EXCLUDED.activities,
        sources = m.sources | EXCLUDED.sources,
        endpoints = ARRAY(SELECT DISTINCT e FROM unnest(m.endpoints || EXCLUDED.endpoints) AS e ORDER BY e),
        last_received_at = greatest(m.last_received_at, EXCLUDED.last_received_at)
    RETURNING account_sid, service_sid, identity, month
)
INSERT INTO users AS u (account_sid, service_sid, identity, first_month)
SELECT account_sid, service_sid, identity, min(month) FROM rollup GROUP BY 1, 2, 3
ON CONFLICT (account_sid, service_sid, identity) DO UPDATE SET first_month = EXCLUDED.first_month
WHERE EXCLUDED.first_month < u.first_month;
DROP TABLE rollup_pending;
