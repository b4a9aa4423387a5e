-- rollup_pending becomes two partitions, one per slot. Bodies append to the
-- partition of the current slot (the sequence rollup_slot, read without a
-- snapshot, so a switch is seen at once); the background fold switches the
-- slot, waits for the bodies still writing the other partition, folds all
-- of it and empties it with TRUNCATE (internal/postgres/fold.go). Deleting
-- each folded row, and vacuuming it afterwards, was about a fifth of a fold.
-- The partitions are not vacuumed automatically: each is emptied every
-- second fold, and a vacuum of a partition being filled is wasted work.
-- +goose Up
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

-- +goose Down
ALTER TABLE rollup_pending RENAME TO rollup_pending_slotted;

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

INSERT INTO rollup_pending
SELECT account_sid, month, service_sid, identity, event_id, occurred_at, activity, activity_bit, source_bit,
       endpoint_id, identity_flags, received_at
FROM rollup_pending_slotted;
DROP TABLE rollup_pending_slotted;
DROP SEQUENCE rollup_slot;
