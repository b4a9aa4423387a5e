-- Indexes for the monthly job's figures (internal/postgres/reports.go), so
-- that each is an index-only range over one account-month instead of a sort
-- or a join: a month's distinct identities, whatever their service, are
-- read in identity order; its new users are the users whose first month it
-- is. At 1 M users: distinct identities 1.5 → 0.6 s, new users 0.44 →
-- 0.19 s. Updates of month_users stay HOT (identity never changes); each
-- new user-month and user adds one index entry.
-- Built concurrently, so a deployment keeps ingesting while they build.
-- +goose NO TRANSACTION
-- +goose Up
CREATE INDEX CONCURRENTLY IF NOT EXISTS month_users_identity ON month_users (account_sid, month, identity);
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_first_month ON users (account_sid, first_month, service_sid);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS users_first_month;
DROP INDEX CONCURRENTLY IF EXISTS month_users_identity;
