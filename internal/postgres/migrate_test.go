package postgres_test

import (
	"testing"

	"github.com/tallyhq/tally/internal/pgtest"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
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
	if err := m.DownTo(t.Context(), 10); err != nil { // below the events keyed by id (11)
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
	if got != (usage.IngestResult{Accepted: 1, Duplicates: 1}) {
		t.Fatalf("after the round trip: %+v, want 1 accepted and 1 duplicate", got)
	}
}

// TestRollupPendingMigrationDownFolds takes the database below the pending
// table while events are still pending: they must reach month_users and
// users, whose rollup version 11 keeps up to date itself.
func TestRollupPendingMigrationDownFolds(t *testing.T) {
	s, pool, ac := newStore(t)
	record(t, s, ac, events(ev("e1", "alice", "2026-10-05T12:00:00Z"), ev("e2", "alice", "2026-10-06T12:00:00Z")))
	fold(t, s) // alice already has a rollup row: the down migration must merge into it
	record(t, s, ac, events(ev("e3", "alice", "2026-10-01T00:00:00Z"), ev("e4", "bob", "2026-09-30T23:59:59Z")))
	if n := count(t, pool, `SELECT count(*) FROM rollup_pending`); n != 2 {
		t.Fatalf("%d events pending, want 2", n)
	}
	m, err := postgres.NewMigrator(pool)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.DownTo(t.Context(), 11); err != nil { // below rollup_pending (12)
		t.Fatal(err)
	}
	checks := []struct {
		sql  string
		want int64
	}{
		{`SELECT count(*) FROM pg_tables WHERE tablename = 'rollup_pending'`, 0},
		{`SELECT events FROM month_users WHERE identity = 'alice'`, 3},
		{`SELECT count(*) FROM month_users WHERE identity = 'alice' AND first_event_id = 'e3'`, 1},
		{`SELECT count(*) FROM month_users WHERE identity = 'bob' AND month = '2026-09-01'`, 1},
		{`SELECT count(*) FROM users WHERE identity = 'bob' AND first_month = '2026-09-01'`, 1},
		{`SELECT count(*) FROM users`, 2},
	}
	for _, c := range checks {
		if n := count(t, pool, c.sql); n != c.want {
			t.Errorf("after down: %s = %d, want %d", c.sql, n, c.want)
		}
	}
	if err := m.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := activeUsers(t, s, ac, "2026-10"); got != 1 {
		t.Fatalf("after up: %d active users in 2026-10, want 1", got)
	}
}

// TestScaleOutMigrationRoundTrip takes pending events down to the slot
// partitions of migration 13 and back to the table the per-account fold
// reads: none is lost or folded twice.
func TestScaleOutMigrationRoundTrip(t *testing.T) {
	s, pool, ac := newStore(t)
	record(t, s, ac, events(ev("e1", "alice", "2026-10-05T12:00:00Z")))
	fold(t, s)
	record(t, s, ac, events(ev("e2", "alice", "2026-10-06T12:00:00Z"), ev("e3", "bob", "2026-10-07T00:00:00Z")))
	m, err := postgres.NewMigrator(pool)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.DownTo(t.Context(), 14); err != nil { // below the scale-out (15)
		t.Fatal(err)
	}
	for _, c := range []struct {
		sql  string
		want int64
	}{
		{`SELECT count(*) FROM rollup_pending_0`, 2},
		{`SELECT count(*) FROM rollup_pending_1`, 0},
		{`SELECT last_value FROM rollup_slot`, 0},
		{`SELECT count(*) FROM pg_proc WHERE proname = 'tally_distribute'`, 0},
	} {
		if n := count(t, pool, c.sql); n != c.want {
			t.Errorf("after down: %s = %d, want %d", c.sql, n, c.want)
		}
	}
	if err := m.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, `SELECT count(*) FROM rollup_pending`); n != 2 {
		t.Fatalf("after up: %d events pending, want 2", n)
	}
	if pgtest.Engine() == pgtest.Citus {
		// Down undistributed every table; up distributed them again.
		if n := count(t, pool, undistributedTables); n != 0 {
			t.Fatalf("after up: %d tables are not distributed", n)
		}
	}
	if n := count(t, pool, `SELECT count(*) FROM pg_class WHERE relname = 'rollup_slot'`); n != 0 {
		t.Fatalf("after up: the slot sequence is still there")
	}
	record(t, s, ac, events(ev("e4", "carol", "2026-10-08T00:00:00Z")))
	if got := activeUsers(t, s, ac, "2026-10"); got != 3 {
		t.Fatalf("after the round trip: %d active users in 2026-10, want 3", got)
	}
	fold(t, s)
	if n := count(t, pool, `SELECT events FROM month_users WHERE identity = 'alice'`); n != 2 {
		t.Fatalf("alice has %d events in the rollup, want 2", n)
	}
}

// TestReportIndexesMigrationRoundTrip: the figures' indexes (14, users'
// reordered by 21) are built outside a transaction, concurrently, and go
// and come back with their migrations.
func TestReportIndexesMigrationRoundTrip(t *testing.T) {
	s, pool, ac := newStore(t)
	record(t, s, ac, events(ev("e1", "alice", "2026-10-05T12:00:00Z")))
	const indexes = `SELECT count(*) FROM pg_indexes WHERE indexname IN ('month_users_identity', 'users_month_first', 'users_first_month')`
	if n := count(t, pool, indexes); n != 2 {
		t.Fatalf("%d of the 2 indexes after up", n)
	}
	m, err := postgres.NewMigrator(pool)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.DownTo(t.Context(), 20); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, `SELECT count(*) FROM pg_indexes WHERE indexname = 'users_first_month'`); n != 1 {
		t.Fatalf("after down to 20: users_first_month is not back")
	}
	if n := count(t, pool, indexes); n != 2 {
		t.Fatalf("%d of the 2 indexes after down to 20", n)
	}
	if err := m.DownTo(t.Context(), 13); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, indexes); n != 0 {
		t.Fatalf("%d indexes left after down", n)
	}
	if err := m.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, indexes+` AND (SELECT indisvalid FROM pg_index WHERE indexrelid = indexname::regclass)`); n != 2 {
		t.Fatalf("%d of the 2 indexes valid after up again", n)
	}
	if got := activeUsers(t, s, ac, "2026-10"); got != 1 {
		t.Fatalf("after the round trip: %d active users, want 1", got)
	}
}
