-- An account's rate card, as given (unit prices are decimal strings inside
-- the JSON, never floats). A copy is stored with each report version.
-- +goose Up
CREATE TABLE rate_cards (
    account_sid text COLLATE "C" PRIMARY KEY REFERENCES accounts (account_sid),
    card        jsonb NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- +goose Down
DROP TABLE rate_cards;
