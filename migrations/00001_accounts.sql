-- Accounts are the tenants; the platform account runs the deployment and its
-- keys may act on every account.
-- +goose Up
CREATE TABLE accounts (
    account_sid text COLLATE "C" PRIMARY KEY CHECK (account_sid ~ '^AC[0-9a-f]{32}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
    platform    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE accounts;
