-- Console sign-in sessions (CONTRACT §12). The session lives on the server,
-- not in the cookie, so that logging out, the 12-hour limit and the
-- revocation of the key behind a session take effect at once on every
-- replica. Only the SHA-256 of the session token is stored: a copy of the
-- table does not let anyone sign in.
--
-- A session is looked up by its token alone, before its account is known,
-- so on Citus it is a small reference table like api_keys.
-- +goose Up
CREATE TABLE console_sessions (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    key_sid    text COLLATE "C" NOT NULL REFERENCES api_keys (key_sid),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);

-- Sign-in removes expired sessions; logout and revocation need no index.
CREATE INDEX console_sessions_expires_at ON console_sessions (expires_at);

SELECT tally_distribute('console_sessions', 'reference');

-- +goose Down
DROP TABLE console_sessions;
