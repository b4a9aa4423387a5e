package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/tallyhq/tally/internal/billing"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// LoadMonth adds the events numbered [from, to) of users users to one
// account-month straight into the tables, then rebuilds the account's
// rollup from all of its events the way ingestion keeps it, so that big
// months load in minutes rather than hours. Event i belongs to user
// i % users: loading [0, n) and then [n, 2n) doubles the events of the same
// users.
func (e *Env) LoadMonth(ctx context.Context, accountSID string, m usage.Month, from, to, users int) error {
	steps := []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO events (account_sid, occurred_at, event_id, activity, source, service_sid, identity, endpoint_id, received_at)
		 SELECT $1, $2::timestamptz + (i % 2419200) * interval '1 second', 'load-' || i,
		        (ARRAY['create','update','authenticate','send','join','add','invite','remove'])[1 + i % 8],
		        CASE WHEN i % 8 IN (0, 1) THEN 'rest' ELSE 'sdk' END,
		        'IS' || lpad(((i % $5) % 3)::text, 32, '0'), 'user-' || (i % $5), 'device-' || (i % 5), now()
		 FROM generate_series($3::bigint, $4::bigint - 1) AS i`, []any{accountSID, m.Start(), from, to, users}},
		{`DELETE FROM month_users WHERE account_sid = $1`, []any{accountSID}},
		{`DELETE FROM users WHERE account_sid = $1`, []any{accountSID}},
		{`INSERT INTO month_users (account_sid, month, service_sid, identity, first_activity, first_event_id, first_at, last_at,
		     events, activities, sources, endpoints, last_received_at)
		 SELECT account_sid, $2::date, service_sid, identity,
		        (array_agg(activity ORDER BY occurred_at, event_id))[1], (array_agg(event_id ORDER BY occurred_at, event_id))[1],
		        min(occurred_at), max(occurred_at), count(*), 1, 1, array_agg(DISTINCT endpoint_id), max(received_at)
		 FROM events WHERE account_sid = $1 GROUP BY account_sid, service_sid, identity`, []any{accountSID, m.Start()}},
		{`INSERT INTO users (account_sid, service_sid, identity, first_month)
		 SELECT account_sid, service_sid, identity, month FROM month_users WHERE account_sid = $1 AND month = $2::date`,
			[]any{accountSID, m.Start()}},
		{`INSERT INTO account_months (account_sid, month) VALUES ($1, $2::date) ON CONFLICT DO NOTHING`, []any{accountSID, m.Start()}},
		// Compacted, so that the second load's month reads as many pages as
		// the first's: what the job reads grows with users, not events.
		{`VACUUM (FULL, ANALYZE) month_users, users`, nil},
		{`ANALYZE events`, nil},
	}
	for i, st := range steps {
		if _, err := e.Pool.Exec(ctx, st.sql, st.args...); err != nil {
			return fmt.Errorf("load step %d: %w", i, err)
		}
	}
	return nil
}

// CountDistinct times the scan the rollup exists to avoid.
func (e *Env) CountDistinct(ctx context.Context, accountSID string, m usage.Month) (time.Duration, int64, error) {
	start := time.Now()
	var n int64
	err := e.Pool.QueryRow(ctx, `SELECT count(DISTINCT (service_sid, identity)) FROM events
		WHERE account_sid = $1 AND occurred_at >= $2 AND occurred_at < $3`, accountSID, m.Start(), m.End()).Scan(&n)
	return time.Since(start), n, err
}

// Job times the monthly job's computation of the report (figures, billing
// inputs and the checksum over the whole roster), as a provisional run.
func Job(ctx context.Context, store *postgres.Store, accountSID string, m usage.Month) (time.Duration, int64, error) {
	start := time.Now()
	r, err := store.ProvisionalReport(ctx, accountSID, m)
	return time.Since(start), r.ActiveUsers, err
}

// Finalize times storing version 1 (figures, frozen roster and checksum).
func Finalize(ctx context.Context, store *postgres.Store, accountSID string, m usage.Month) (time.Duration, error) {
	start := time.Now()
	_, err := billing.Finalize(ctx, store, accountSID, m)
	return time.Since(start), err
}

// IdentityStats times the admin statistics of the month.
func IdentityStats(ctx context.Context, store *postgres.Store, accountSID string, m usage.Month) (time.Duration, error) {
	start := time.Now()
	_, err := store.IdentityStats(ctx, accountSID, m, nil)
	return time.Since(start), err
}
