-- Usage alerts (CONTRACT §14, issue 24): an account's thresholds on the
-- current month's active users or billed amount, the months each alert
-- fired in, and the outbox of signed webhooks.
--
-- Every table is keyed by account first and distributed by account on
-- Citus, colocated with the rollup, so that evaluating an account, firing
-- an alert and writing its delivery are one transaction on one worker.
--
-- An alert fires at most once per month: the primary key of alert_firings
-- is that rule. The firing and its delivery row are written together.
--
-- alert_deliveries is the outbox. A worker claims a due row by moving its
-- next_attempt_at past the attempt's timeout (a lease) and counting the
-- attempt, in one statement on rows locked FOR UPDATE SKIP LOCKED, then
-- sends outside any transaction and records the outcome only if the row is
-- still at that attempt. A worker that dies mid-send leaves the row due
-- again when the lease runs out: nothing pending is lost.
-- +goose Up
CREATE TABLE alerts (
    account_sid   text COLLATE "C" NOT NULL REFERENCES accounts (account_sid),
    alert_sid     text COLLATE "C" NOT NULL CHECK (alert_sid ~ '^AL[0-9a-f]{32}$'),
    friendly_name text NOT NULL DEFAULT '',
    metric        text NOT NULL CHECK (metric IN ('active_users', 'amount')),
    threshold     numeric NOT NULL CHECK (threshold > 0),
    webhook_url   text NOT NULL,
    secret_sealed bytea NOT NULL,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (account_sid, alert_sid)
);

CREATE TABLE alert_firings (
    account_sid text COLLATE "C" NOT NULL,
    alert_sid   text COLLATE "C" NOT NULL,
    month       date NOT NULL CHECK (extract(day FROM month) = 1),
    value       numeric NOT NULL,
    reached_at  timestamptz NOT NULL,
    PRIMARY KEY (account_sid, alert_sid, month)
);

CREATE TABLE alert_deliveries (
    account_sid      text COLLATE "C" NOT NULL,
    id               text COLLATE "C" NOT NULL CHECK (id ~ '^WH[0-9a-f]{32}$'),
    alert_sid        text COLLATE "C" NOT NULL,
    month            date NOT NULL,
    body             text NOT NULL,
    status           text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL,
    next_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text,
    delivered_at     timestamptz,
    PRIMARY KEY (account_sid, id)
);

-- The worker's scan for due rows reads pending ones only.
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX alert_deliveries_alert ON alert_deliveries (account_sid, alert_sid, created_at);

SELECT tally_distribute('alerts', 'account');
SELECT tally_distribute('alert_firings', 'account');
SELECT tally_distribute('alert_deliveries', 'account');

-- +goose Down
DROP TABLE alert_deliveries;
DROP TABLE alert_firings;
DROP TABLE alerts;
