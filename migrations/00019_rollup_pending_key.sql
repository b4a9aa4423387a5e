-- rollup_pending gets a primary key, (account_sid, event_id): unique, as
-- only an account's new events are appended, and it serves the fold's
-- lookup by account as the plain index did. Without a key the table has
-- no replica identity, and Citus cannot move its shards by logical
-- replication: isolate_tenant_to_new_shard, citus_move_shard_placement and
-- the rebalancer refused it unless writes were blocked for the whole copy
-- (docs/scale-out.md).
-- +goose Up
ALTER TABLE rollup_pending ADD CONSTRAINT rollup_pending_pkey PRIMARY KEY (account_sid, event_id);
DROP INDEX rollup_pending_account;

-- +goose Down
CREATE INDEX rollup_pending_account ON rollup_pending (account_sid);
ALTER TABLE rollup_pending DROP CONSTRAINT rollup_pending_pkey;
