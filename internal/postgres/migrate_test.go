package postgres_test

import (
	"testing"

	"github.com/tallyhq/tally/internal/postgres"
)

// TestEventsMigrationRoundTrip takes events stored in the table keyed by id
// down to the month-partitioned table and its event_ids, and back up,
// without losing one or its idempotency.
func TestEventsMigrationRoundTrip(t *testing.T) {
	s, pool, ac := newStore(t)
	record(t, s, ac, events(ev("e1", "alice", "2026-10-05T12:00:00Z"), ev("e2", "bob", "2026-11-01T00:00:00Z"),
		ev("e3", "bob", "2026-11-30T23:59:59Z")))
	m, err := postgres.NewMigrator(pool)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Down(t.Context()); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		sql  string
		want int64
	}{
		{`SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass`, 2},
		{`SELECT count(*) FROM events_2026_11`, 2},
		{`SELECT count(*) FROM event_ids`, 3},
	}
	for _, c := range checks {
		if n := count(t, pool, c.sql); n != c.want {
			t.Errorf("after down: %s = %d, want %d", c.sql, n, c.want)
		}
	}
	if err := m.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, `SELECT count(*) FROM events`); n != 3 {
		t.Fatalf("after up: %d events, want 3", n)
	}
	got := record(t, s, ac, events(ev("e2", "bob", "2026-11-01T00:00:00Z"), ev("e4", "carol", "2026-11-02T00:00:00Z")))
	if got != (postgres.IngestResult{Accepted: 1, Duplicates: 1}) {
		t.Fatalf("after the round trip: %+v, want 1 accepted and 1 duplicate", got)
	}
}
