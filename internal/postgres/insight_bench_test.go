package postgres_test

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// todaysStats are the statistics' statements before issue 25, timed
// beside the new ones in the same run.
var todaysStats = []string{
	`SELECT count(*), count(*) FILTER (WHERE events = 1), count(*) FILTER (WHERE activities & ~$4::smallint = 0),
    count(*) FILTER (WHERE cardinality(endpoints) >= 3), count(*) FILTER (WHERE identity_flags & 1::smallint <> 0),
    count(*) FILTER (WHERE identity_flags & 2::smallint <> 0), coalesce(sum(events), 0)
FROM month_users WHERE account_sid = $1 AND month = $2 AND ($3::text IS NULL OR service_sid = $3)`,
	`SELECT count(*) FROM users WHERE account_sid = $1 AND first_month = $2 AND ($3::text IS NULL OR service_sid = $3)`,
	`SELECT count(*) FROM month_users p WHERE p.account_sid = $1 AND p.month = ($2::date - interval '1 month')::date AND ($3::text IS NULL OR p.service_sid = $3)
  AND NOT EXISTS (SELECT 1 FROM month_users m WHERE m.account_sid = $1 AND m.month = $2
                  AND m.service_sid = p.service_sid AND m.identity = p.identity)`,
	`SELECT service_sid, identity, events FROM month_users WHERE account_sid = $1 AND month = $2 AND ($3::text IS NULL OR service_sid = $3)
ORDER BY events DESC, service_sid, identity LIMIT 10`,
}

// TestMeasureIdentityInsight times the statistics of one account-month of
// TALLY_MEASURE_INSIGHT users (e.g. 1000000; skipped unset) as they were
// before issue 25 and as they are now, and the first page of lookalike
// groups, each the best of 5 runs, in the same run. The month is loaded
// straight into the rollup, as the bench's LoadMonth does: identities
// user-N@example.com on 3 services (each its own lookalike key, like the
// bench's), except that every 10th is spelled User-N@Example.com (a key
// set) and every 100th of those also exists in lower case (a group; the
// lower-case twin is marked with its own identity as key, as the fold
// marks it).
func TestMeasureIdentityInsight(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("TALLY_MEASURE_INSIGHT"))
	if n == 0 {
		t.Skip("set TALLY_MEASURE_INSIGHT to a number of users")
	}
	s, pool, ac := newStore(t)
	ctx := t.Context()
	m, _ := usage.ParseMonth("2026-10")
	start := time.Now()
	for _, st := range []string{
		`INSERT INTO month_users (account_sid, month, service_sid, identity, first_activity, first_event_id, first_at, last_at,
		     events, activities, sources, endpoints, last_received_at, identity_flags, lookalike, reserved)
		 SELECT $1, $2::date, 'IS' || lpad((i % 3)::text, 32, '0'),
		        CASE WHEN i % 10 = 0 THEN 'User-' || i || '@Example.com' ELSE 'user-' || i || '@example.com' END,
		        'send', 'e' || i, $2::date, $2::date + interval '1 day', 1 + i % 7, (1 << (i % 8))::smallint, 1,
		        CASE WHEN i % 4 = 0 THEN ARRAY['a', 'b', 'c'] ELSE ARRAY['a'] END, now(), 1,
		        CASE WHEN i % 10 = 0 THEN 'user-' || i || '@example.com' END, 128
		 FROM generate_series(1, $3::int) AS i`,
		`INSERT INTO month_users (account_sid, month, service_sid, identity, first_activity, first_event_id, first_at, last_at,
		     events, activities, sources, endpoints, last_received_at, identity_flags, lookalike, reserved)
		 SELECT $1, $2::date, 'IS' || lpad((i % 3)::text, 32, '0'), 'user-' || i || '@example.com',
		        'send', 'e' || i, $2::date, $2::date, 1, 8, 2, '{}', now(), 1, 'user-' || i || '@example.com', 128
		 FROM generate_series(1000, $3::int, 1000) AS i`,
		`INSERT INTO users (account_sid, service_sid, identity, first_month)
		 SELECT account_sid, service_sid, identity, month FROM month_users WHERE account_sid = $1 AND month = $2::date`,
	} {
		args := []any{ac, m.Start(), n}
		if !strings.Contains(st, "$3") {
			args = args[:2]
		}
		if _, err := pool.Exec(ctx, st, args...); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range []string{`VACUUM (ANALYZE) month_users`, `VACUUM (ANALYZE) users`} {
		if _, err := pool.Exec(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("loaded %d users in %v", count(t, pool, `SELECT count(*) FROM month_users WHERE account_sid = $1`, ac), time.Since(start).Round(time.Second))

	best := func(name string, fn func() error) time.Duration {
		var b time.Duration
		for i := range 3 {
			st := time.Now()
			if err := fn(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if d := time.Since(st); i == 0 || d < b {
				b = d
			}
		}
		return b
	}
	todays := func() error {
		return pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			for i, q := range todaysStats {
				args := []any{ac, m.Start(), nil}
				if i == 0 {
					args = append(args, usage.RESTOnlyActivities)
				}
				rows, err := tx.Query(ctx, q, args...)
				if err != nil {
					return err
				}
				rows.Close()
				if rows.Err() != nil {
					return rows.Err()
				}
			}
			return nil
		})
	}
	var st usage.IdentityStats
	// Interleaved, so that the machine's load weighs on both alike.
	var today, now time.Duration
	for i := range 5 {
		a := best("today's stats", todays)
		b := best("stats", func() (err error) { st, err = s.IdentityStats(ctx, ac, m, nil); return err })
		if i == 0 || a < today {
			today = a
		}
		if i == 0 || b < now {
			now = b
		}
	}
	var groups []usage.LookalikeGroup
	look := best("lookalikes", func() (err error) {
		groups, err = s.LookalikeGroups(ctx, postgres.LookalikeQuery{AccountSID: ac, Month: m, Limit: 101})
		return err
	})
	flagged := best("flag=lookalike", func() error {
		_, err := s.Identities(ctx, postgres.IdentityQuery{AccountSID: ac, Month: m, Flag: "lookalike", Limit: 101})
		return err
	})
	t.Logf("%d active identities, %d lookalike, %d authenticate-only, %d update-only, reserved %v",
		st.ActiveIdentities, st.LookalikeIdentities, st.AuthenticateOnlyIdentities, st.UpdateOnlyIdentities, st.ReservedCharacters)
	t.Logf("today's stats %v; stats now %v (%.2f×); lookalike groups, first page of 100: %v (%d groups); flag=lookalike, first page: %v",
		today.Round(time.Millisecond), now.Round(time.Millisecond), float64(now)/float64(today), look.Round(time.Millisecond),
		len(groups), flagged.Round(time.Millisecond))
	stmts := postgres.AccountStatements()
	for _, c := range []struct {
		name string
		args []any
	}{
		{"identity stats", []any{m.Start(), nil, usage.RESTOnlyActivities, usage.FlagReserved, usage.FlagRandomLike,
			usage.Authenticate.Bit(), usage.Update.Bit()}},
		{"lookalike count", []any{m.Start(), nil}},
		{"month new users", []any{m.Start(), nil}},
		{"churned", []any{m.Prev().Start(), m.Start(), nil}},
		{"top identities", []any{m.Start(), nil}},
		{"month rate card", []any{m.Start()}},
	} {
		d := best(c.name, func() error {
			rows, err := pool.Query(ctx, stmts[c.name].SQL, append([]any{ac}, c.args...)...)
			if err != nil {
				return err
			}
			rows.Close()
			return rows.Err()
		})
		t.Logf("  %s: %v", c.name, d.Round(time.Millisecond))
	}
	// The lookalike statements read the rows whose key is set (the partial
	// index), and a page of flag=lookalike walks the month from its
	// position, probing the partial index per row: a scan of the month, or
	// a semi join of all of it, would make them O(users) again (the
	// groups' first page read the month and took 3.3 s).
	for name, args := range map[string][]any{
		"lookalike count":           {m.Start(), nil},
		"lookalike groups":          {m.Start(), nil, nil, "", "", 101},
		"identities flag lookalike": {m.Start(), nil, "", "", "", "%", 101},
	} {
		if plan := explain(t, pool, stmts[name].SQL, append([]any{ac}, args...)...); strings.Contains(plan, "Seq Scan") ||
			strings.Contains(plan, "Semi Join") {
			t.Errorf("%s reads the whole month:\n%s", name, plan)
		}
	}
	if want := int64(2 * (n / 1000)); st.LookalikeIdentities != want {
		t.Errorf("%d lookalike identities, want %d", st.LookalikeIdentities, want)
	}
}
