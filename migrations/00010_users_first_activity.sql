-- users keeps only the first activity ever: it is what decides a month's new
-- users, and it rarely changes, so ingestion can skip known users without
-- locking their rows. The last activity ever is the latest month_users row's
-- last_at, which the per-user history reads anyway.
-- +goose Up
ALTER TABLE users DROP COLUMN last_at;

-- +goose Down
ALTER TABLE users ADD COLUMN last_at timestamptz;
UPDATE users u SET last_at = m.last_at
FROM (SELECT account_sid, service_sid, identity, max(last_at) AS last_at
      FROM month_users GROUP BY 1, 2, 3) m
WHERE m.account_sid = u.account_sid AND m.service_sid = u.service_sid AND m.identity = u.identity;
UPDATE users SET last_at = first_at WHERE last_at IS NULL;
ALTER TABLE users ALTER COLUMN last_at SET NOT NULL;
