-- users keeps only the month of each user's first activity ever: it is what
-- decides a month's new (and returning) users, and it changes only when a
-- user's events reach back into an earlier month, so ingestion skips known
-- users without locking their rows. The first and last activity ever are
-- the earliest month_users row's first_at and the latest one's last_at,
-- which the per-user history reads anyway.
-- +goose Up
ALTER TABLE users ADD COLUMN first_month date;
UPDATE users SET first_month = date_trunc('month', first_at AT TIME ZONE 'UTC')::date;
ALTER TABLE users ALTER COLUMN first_month SET NOT NULL,
    ADD CONSTRAINT users_first_month_check CHECK (extract(day FROM first_month) = 1),
    DROP COLUMN first_at,
    DROP COLUMN last_at;

-- +goose Down
ALTER TABLE users ADD COLUMN first_at timestamptz, ADD COLUMN last_at timestamptz;
UPDATE users u SET first_at = m.first_at, last_at = m.last_at
FROM (SELECT account_sid, service_sid, identity, min(first_at) AS first_at, max(last_at) AS last_at
      FROM month_users GROUP BY 1, 2, 3) m
WHERE m.account_sid = u.account_sid AND m.service_sid = u.service_sid AND m.identity = u.identity;
UPDATE users SET first_at = first_month, last_at = first_month WHERE first_at IS NULL;
ALTER TABLE users ALTER COLUMN first_at SET NOT NULL, ALTER COLUMN last_at SET NOT NULL,
    DROP COLUMN first_month;
