package postgres_test

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// TestFiguresMatchEvents counts random months both ways: the report's
// figures, read from the rollup, and the same figures by their definitions
// over the stored events. Identities repeat across services (distinct
// identities < active users) and users return across months (new users <
// active users).
func TestFiguresMatchEvents(t *testing.T) {
	s, pool, ac := newStore(t)
	recordRandomMonths(t, s, ac)
	const byDefinition = `
WITH e AS (SELECT *, date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date AS month FROM events WHERE account_sid = $1),
firsts AS (SELECT service_sid, identity, min(month) AS first_month FROM e GROUP BY 1, 2),
u AS (SELECT service_sid, identity,
             (array_agg(activity ORDER BY occurred_at, event_id))[1] AS first_activity,
             bool_and(activity IN ('create', 'update')) AS rest_only
      FROM e WHERE month = $2 GROUP BY 1, 2)
SELECT service_sid, sum(n), sum(nw), sum(rest), string_agg(first_activity || '=' || n, ',' ORDER BY first_activity)
FROM (SELECT u.service_sid, u.first_activity, count(*) AS n, count(*) FILTER (WHERE f.first_month = $2) AS nw,
             count(*) FILTER (WHERE u.rest_only) AS rest
      FROM u JOIN firsts f USING (service_sid, identity) GROUP BY 1, 2) AS g
GROUP BY service_sid ORDER BY service_sid`
	for _, month := range []string{"2026-08", "2026-09", "2026-10"} {
		m, _ := usage.ParseMonth(month)
		r, err := s.ProvisionalReport(t.Context(), ac, m)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, sf := range r.Services {
			var acts []string
			for _, a := range usage.Activities {
				if n := sf.ByFirstActivity[a]; n > 0 {
					acts = append(acts, fmt.Sprintf("%s=%d", a, n))
				}
			}
			got = append(got, fmt.Sprintf("%s %d %d %d %s", sf.ServiceSID, sf.ActiveUsers, sf.NewUsers, sf.RESTOnlyUsers, sortedJoin(acts)))
		}
		rows, err := pool.Query(t.Context(), byDefinition, ac, m.Start())
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		var total, newUsers int64
		for rows.Next() {
			var svc, acts string
			var n, nw, rest int64
			if err := rows.Scan(&svc, &n, &nw, &rest, &acts); err != nil {
				t.Fatal(err)
			}
			want = append(want, fmt.Sprintf("%s %d %d %d %s", svc, n, nw, rest, acts))
			total += n
			newUsers += nw
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s figures:\n%s\nby definition:\n%s", month, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if month != "2026-08" && (newUsers == 0 || newUsers == total) { // August is the first month: all new
			t.Errorf("%s: %d new of %d active users; the test needs both new and returning users", month, newUsers, total)
		}
		distinct := count(t, pool, `SELECT count(DISTINCT identity) FROM events WHERE account_sid = $1
			AND occurred_at >= $2 AND occurred_at < $3`, ac, m.Start(), m.End())
		if r.ActiveUsers != total || r.DistinctIdentities != distinct || distinct >= total {
			t.Errorf("%s: active %d distinct %d, by definition %d and %d", month, r.ActiveUsers, r.DistinctIdentities, total, distinct)
		}
		through := time.Time{}
		if err := pool.QueryRow(t.Context(), `SELECT max(received_at) FROM events WHERE account_sid = $1
			AND occurred_at >= $2 AND occurred_at < $3`, ac, m.Start(), m.End()).Scan(&through); err != nil {
			t.Fatal(err)
		}
		if r.EventsThrough == nil || !r.EventsThrough.Equal(through) {
			t.Errorf("%s: events_through %v, want %v", month, r.EventsThrough, through)
		}
	}
}

// recordRandomMonths records 4000 random events of August to October 2026
// for 400 identities on 3 services, in bodies of random sizes.
func recordRandomMonths(t *testing.T, s *postgres.Store, ac string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	start := time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)
	var all []usage.Event
	for i := range 4000 {
		a := usage.Activities[rng.IntN(8)]
		src := usage.SDK
		if a == usage.Create || a == usage.Update || (a.Allows(usage.REST) && rng.IntN(2) == 0) {
			src = usage.REST
		}
		all = append(all, usage.Event{
			ID: fmt.Sprintf("e%d", i), Activity: a, Source: src,
			ServiceSID: fmt.Sprintf("IS%d", rng.IntN(3)), Identity: fmt.Sprintf("user-%d", rng.IntN(400)),
			OccurredAt: start.Add(time.Duration(rng.Int64N(int64(90 * 24 * time.Hour)))),
		})
	}
	for len(all) > 0 {
		n := min(len(all), 1+rng.IntN(500))
		record(t, s, ac, &usage.EventList{Events: all[:n]})
		all = all[n:]
	}
}

// TestFiguresRefuseAnInconsistentRollup: a user whose first month has no
// active row for the user's service is a broken invariant, reported as an
// error rather than counted.
func TestFiguresRefuseAnInconsistentRollup(t *testing.T) {
	s, pool, ac := newStore(t)
	record(t, s, ac, events(ev("e1", "alice", "2026-10-05T12:00:00Z")))
	fold(t, s)
	if _, err := pool.Exec(t.Context(), `INSERT INTO users (account_sid, service_sid, identity, first_month)
		VALUES ($1, 'IS-gone', 'bob', '2026-10-01')`, ac); err != nil {
		t.Fatal(err)
	}
	m, _ := usage.ParseMonth("2026-10")
	_, err := s.ProvisionalReport(t.Context(), ac, m)
	if err == nil || !strings.Contains(err.Error(), "inconsistent") {
		t.Fatalf("ProvisionalReport: %v, want an inconsistent rollup", err)
	}
}

func sortedJoin(xs []string) string {
	slices.Sort(xs)
	return strings.Join(xs, ",")
}

// TestRosterReadsTheKeyInOrder: the provisional roster's month rows come
// from the primary key in its order, with no sort, for a whole month of
// an account (where the planner prefers a sequential scan and a sort).
func TestRosterReadsTheKeyInOrder(t *testing.T) {
	_, pool, ac := newStore(t)
	ctx := t.Context()
	m, _ := usage.ParseMonth("2026-10")
	if _, err := pool.Exec(ctx, `INSERT INTO month_users (account_sid, month, service_sid, identity, first_activity,
		    first_event_id, first_at, last_at, events, activities, sources, endpoints, last_received_at, identity_flags, reserved)
		SELECT $1, $2::date, 'IS' || (i % 3), 'user-' || i, 'send', 'e' || i, $2::date, $2::date, 1, 8, 1, '{}', now(), 0, 0
		FROM generate_series(1, 5000) AS i ORDER BY random()`, ac, m.Start()); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE month_users`); err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, postgres.RosterSettings); err != nil {
		t.Fatal(err)
	}
	plan := explain(t, tx, postgres.ProvisionalRoster, ac, m.Start(), "", "", nil)
	if strings.Contains(plan, "Sort") || !regexp.MustCompile(`Index Scan using month_users_pkey`).MatchString(plan) {
		t.Fatalf("the roster's rows are not read from the primary key in order:\n%s", plan)
	}
}
