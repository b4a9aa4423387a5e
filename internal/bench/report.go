package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// LoadMonth writes events events for users users into one account-month
// straight into the tables, with the rollup built the way ingestion keeps
// it, so that big months load in minutes rather than hours.
func (e *Env) LoadMonth(ctx context.Context, accountSID string, m usage.Month, events, users int) error {
	steps := []string{
		`INSERT INTO events (account_sid, occurred_at, event_id, activity, source, service_sid, identity, endpoint_id, received_at)
		 SELECT $1, $2::timestamptz + (i % 2419200) * interval '1 second', 'load-' || i,
		        (ARRAY['create','update','authenticate','send','join','add','invite','remove'])[1 + i % 8],
		        CASE WHEN i % 8 IN (0, 1) THEN 'rest' ELSE 'sdk' END,
		        'IS' || lpad(((i % $4) % 3)::text, 32, '0'), 'user-' || (i % $4), 'device-' || (i % 5), now()
		 FROM generate_series(0, $3 - 1) AS i`,
		`INSERT INTO month_users (account_sid, month, service_sid, identity, first_activity, first_event_id, first_at, last_at,
		     events, activities, sources, endpoints, last_received_at)
		 SELECT account_sid, $2::date, service_sid, identity,
		        (array_agg(activity ORDER BY occurred_at, event_id))[1], (array_agg(event_id ORDER BY occurred_at, event_id))[1],
		        min(occurred_at), max(occurred_at), count(*), 1, 1, array_agg(DISTINCT endpoint_id), max(received_at)
		 FROM events WHERE account_sid = $1 GROUP BY account_sid, service_sid, identity`,
		`INSERT INTO users (account_sid, service_sid, identity, first_month)
		 SELECT account_sid, service_sid, identity, month FROM month_users WHERE account_sid = $1 AND month = $2::date`,
		`INSERT INTO account_months (account_sid, month) VALUES ($1, $2::date)`,
		`ANALYZE`,
	}
	args := [][]any{{accountSID, m.Start(), events, users}, {accountSID, m.Start()}, {accountSID, m.Start()}, {accountSID, m.Start()}, nil}
	for i, sql := range steps {
		if _, err := e.Pool.Exec(ctx, sql, args[i]...); err != nil {
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
	_, err := store.FinalizeMonth(ctx, accountSID, m)
	return time.Since(start), err
}

// IdentityStats times the admin statistics of the month.
func IdentityStats(ctx context.Context, store *postgres.Store, accountSID string, m usage.Month) (time.Duration, error) {
	start := time.Now()
	_, err := store.IdentityStats(ctx, accountSID, m, nil)
	return time.Since(start), err
}
