-- API keys authenticate every /v1 request. The secret is stored only sealed
-- (AES-256-GCM under the master key), never in clear.
-- +goose Up
CREATE TABLE api_keys (
    account_sid   text COLLATE "C" NOT NULL REFERENCES accounts (account_sid),
    key_sid       text COLLATE "C" NOT NULL CHECK (key_sid ~ '^SK[0-9a-f]{32}$'),
    role          text NOT NULL CHECK (role IN ('admin', 'ingest', 'finance')),
    friendly_name text NOT NULL DEFAULT '',
    secret_sealed bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    PRIMARY KEY (account_sid, key_sid)
);

-- Requests name a key by its SID alone.
CREATE UNIQUE INDEX api_keys_key_sid ON api_keys (key_sid);

-- +goose Down
DROP TABLE api_keys;
