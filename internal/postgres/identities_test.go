package postgres_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tallyhq/tally/internal/usage"
)

// TestIdentityStatsMatchEvents counts random months both ways: the stats,
// read from the rollup, and the same figures by their definitions over the
// stored events, for all services and for one.
func TestIdentityStatsMatchEvents(t *testing.T) {
	s, pool, ac := newStore(t)
	recordRandomMonths(t, s, ac)
	// $2 the month, $3 the one before, $4 a service or null.
	const byDefinition = `
WITH e AS (SELECT *, date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date AS month FROM events
           WHERE account_sid = $1 AND ($4::text IS NULL OR service_sid = $4)),
firsts AS (SELECT service_sid, identity, min(month) AS first_month FROM e GROUP BY 1, 2),
this AS (SELECT service_sid, identity, count(*) AS n FROM e WHERE month = $2 GROUP BY 1, 2),
prev AS (SELECT DISTINCT service_sid, identity FROM e WHERE month = $3)
SELECT (SELECT count(*) FROM this),
       (SELECT count(*) FROM this JOIN firsts USING (service_sid, identity) WHERE first_month = $2),
       (SELECT count(*) FROM this JOIN firsts USING (service_sid, identity) WHERE first_month < $2),
       (SELECT count(*) FROM prev WHERE (service_sid, identity) NOT IN (SELECT service_sid, identity FROM this)),
       (SELECT count(*) FROM this WHERE n = 1),
       (SELECT coalesce(sum(n), 0) FROM this)`
	one := "IS1"
	for _, month := range []string{"2026-08", "2026-09", "2026-10", "2026-11"} {
		for _, svc := range []*string{nil, &one} {
			m, _ := usage.ParseMonth(month)
			st, err := s.IdentityStats(t.Context(), ac, m, svc)
			if err != nil {
				t.Fatal(err)
			}
			got := fmt.Sprint(st.ActiveIdentities, st.NewIdentities, st.ReturningIdentities, st.ChurnedIdentities,
				st.OneTimeIdentities, st.Events)
			var active, nw, ret, churned, once, events int64
			if err := pool.QueryRow(t.Context(), byDefinition, ac, m.Start(), m.Prev().Start(), svc).
				Scan(&active, &nw, &ret, &churned, &once, &events); err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprint(active, nw, ret, churned, once, events); got != want {
				t.Errorf("%s service %v: active new returning churned one-time events = %s, by definition %s",
					month, svc, got, want)
			}
			if month == "2026-09" && (nw == 0 || ret == 0) {
				t.Errorf("%s: %d new and %d returning identities; the test needs both", month, nw, ret)
			}
		}
	}
}

// TestIdentityStatsRefuseAnInconsistentRollup: more identities beginning
// in a month than are active in it is a broken invariant, reported as an
// error rather than counted.
func TestIdentityStatsRefuseAnInconsistentRollup(t *testing.T) {
	s, pool, ac := newStore(t)
	record(t, s, ac, events(ev("e1", "alice", "2026-10-05T12:00:00Z")))
	fold(t, s)
	if _, err := pool.Exec(t.Context(), `INSERT INTO users (account_sid, service_sid, identity, first_month)
		VALUES ($1, 'IS-gone', 'bob', '2026-10-01'), ($1, 'IS-gone', 'carol', '2026-10-01')`, ac); err != nil {
		t.Fatal(err)
	}
	m, _ := usage.ParseMonth("2026-10")
	_, err := s.IdentityStats(t.Context(), ac, m, nil)
	if err == nil || !strings.Contains(err.Error(), "inconsistent") {
		t.Fatalf("IdentityStats: %v, want an inconsistent rollup", err)
	}
}
