-- One row per month an account has events in: the scheduler finds the
-- months to finalize here instead of scanning the rollup, and ingestion
-- flags a finalized month that received late events for a revision.
-- +goose Up
CREATE TABLE account_months (
    account_sid    text COLLATE "C" NOT NULL,
    month          date NOT NULL CHECK (extract(day FROM month) = 1),
    final_version  integer,
    revision_due   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (account_sid, month)
);

CREATE INDEX account_months_due ON account_months (month) WHERE final_version IS NULL OR revision_due;

-- +goose Down
DROP TABLE account_months;
