-- Scale-out on Citus (docs/scale-out.md), and a fold that needs no
-- single-node lock or sequence.
--
-- rollup_pending becomes one plain table again, indexed by account: a fold
-- is per account (internal/postgres/fold.go), deleting the events it folds,
-- so a read folds its own account without waiting for anyone else's, and
-- on Citus each fold is one statement routed to the worker holding the
-- account. The slot partitions and their sequence (migration 00013) lived
-- on one node only; TRUNCATE of a slot under concurrent ingest deadlocked
-- on Citus. Deleted rows are vacuumed as soon as a fold's worth is dead.
--
-- tally_distribute(table, how) distributes a table when the citus extension
-- is installed in this database, and does nothing otherwise, so one set of
-- migrations serves both engines: 'account' hash-distributes by account_sid
-- in the colocation group of events, 'reference' copies the table to every
-- node (small global tables: accounts, keys, looked up by SID alone).
-- Tables already distributed are left as they are. Later migrations that
-- create tables call it too.
-- +goose Up
CREATE TABLE rollup_pending_folded (
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
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000,
        autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 100000);
INSERT INTO rollup_pending_folded
SELECT account_sid, month, service_sid, identity, event_id, occurred_at, activity, activity_bit, source_bit,
       endpoint_id, identity_flags, received_at
FROM rollup_pending;
DROP TABLE rollup_pending;
DROP SEQUENCE rollup_slot;
ALTER TABLE rollup_pending_folded RENAME TO rollup_pending;
CREATE INDEX rollup_pending_account ON rollup_pending (account_sid);

-- +goose StatementBegin
CREATE FUNCTION tally_distribute(tbl regclass, how text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    done boolean;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    -- Triggers on distributed tables (the write-once reports) run on the
    -- shards; Citus asks for this to be said out loud.
    SET LOCAL citus.enable_unsafe_triggers = on;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relname = 'pg_dist_partition' AND n.nspname = 'pg_catalog') THEN
        -- Distributing accounts makes the tables that reference it "Citus
        -- local tables" (partmethod n, repmodel s) on the way: those are
        -- not done yet. (EXECUTE does not set FOUND.)
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = $1
                 AND CASE $2 WHEN ''reference'' THEN partmethod = ''n'' AND repmodel = ''t''
                             ELSE partmethod = ''h'' END)' INTO done USING tbl, how;
        IF done THEN
            RETURN;
        END IF;
    END IF;
    IF how = 'reference' THEN
        EXECUTE 'SELECT create_reference_table($1)' USING tbl;
    ELSIF how = 'account' THEN
        IF tbl = 'events'::regclass THEN
            EXECUTE 'SELECT create_distributed_table($1, ''account_sid'', colocate_with => ''none'')' USING tbl;
        ELSE
            EXECUTE 'SELECT create_distributed_table($1, ''account_sid'', colocate_with => ''events'')' USING tbl;
        END IF;
    ELSE
        RAISE EXCEPTION 'tally_distribute: unknown kind %', how;
    END IF;
END
$$;
-- +goose StatementEnd

-- A lease per background job, so that at most one replica runs the
-- monthly job at a time: a row every node shares, where an advisory lock
-- lives in one node. A lease that is not renewed expires, so a replica that
-- died holding it holds nothing for long.
CREATE TABLE job_leases (
    name       text COLLATE "C" PRIMARY KEY,
    holder     text NOT NULL,
    expires_at timestamptz NOT NULL
);

SELECT tally_distribute('accounts', 'reference');
SELECT tally_distribute('job_leases', 'reference');
SELECT tally_distribute('api_keys', 'reference');
SELECT tally_distribute('events', 'account');
SELECT tally_distribute('rollup_pending', 'account');
SELECT tally_distribute('month_users', 'account');
SELECT tally_distribute('users', 'account');
SELECT tally_distribute('account_months', 'account');
SELECT tally_distribute('rate_cards', 'account');
SELECT tally_distribute('report_versions', 'account');
SELECT tally_distribute('report_roster', 'account');

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE
    t text;
    distributed boolean;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        SET LOCAL citus.enable_unsafe_triggers = on;
        -- Several tables undistributed in one transaction: Citus refuses
        -- the second after a parallel copy of the first.
        SET LOCAL citus.multi_shard_modify_mode = 'sequential';
        FOREACH t IN ARRAY ARRAY['job_leases', 'report_roster', 'report_versions', 'rate_cards', 'account_months', 'users',
                                 'month_users', 'rollup_pending', 'events', 'api_keys', 'accounts'] LOOP
            EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = $1::regclass)'
                INTO distributed USING t;
            IF distributed THEN
                EXECUTE 'SELECT undistribute_table($1::regclass, cascade_via_foreign_keys => true)' USING t;
            END IF;
        END LOOP;
    END IF;
END
$$;
-- +goose StatementEnd
DROP FUNCTION tally_distribute(regclass, text);
DROP TABLE job_leases;

CREATE SEQUENCE rollup_slot MINVALUE 0 MAXVALUE 1 START 0;
ALTER TABLE rollup_pending RENAME TO rollup_pending_unslotted;
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
    received_at    timestamptz NOT NULL,
    slot           smallint NOT NULL
) PARTITION BY LIST (slot);
CREATE TABLE rollup_pending_0 PARTITION OF rollup_pending FOR VALUES IN (0) WITH (autovacuum_enabled = false);
CREATE TABLE rollup_pending_1 PARTITION OF rollup_pending FOR VALUES IN (1) WITH (autovacuum_enabled = false);
INSERT INTO rollup_pending SELECT *, 0 FROM rollup_pending_unslotted;
DROP TABLE rollup_pending_unslotted;
