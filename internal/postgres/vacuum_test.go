package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/pgtest"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// TestFoldsVacuumThePendingEvents: while an account ingests and the
// background folds delete what they fold, rollup_pending keeps the size
// of what is pending at once, because the folds vacuum it: its pages are
// reused rather than appended to, and the rows a read steps over are gone.
// Left to autovacuum, which looks once a minute and only past 20 000 dead
// rows, it would hold every event of the test.
func TestFoldsVacuumThePendingEvents(t *testing.T) {
	s, pool, ac := newStore(t)
	vacuumed := make(chan error, 100)
	s.OnPendingVacuum(1000, func(_ time.Duration, err error) { vacuumed <- err })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.FoldInBackground(ctx, 10*time.Millisecond, postgres.FoldParts, nil, nil)
	}()
	t.Cleanup(func() { cancel(); <-done })

	size := `SELECT pg_relation_size('rollup_pending')`
	if pgtest.Engine() == pgtest.Citus {
		size = `SELECT citus_relation_size('rollup_pending')`
	}
	const rounds, perRound = 8, 2000
	var first int64
	for r := range rounds {
		es := make([]usage.Event, perRound)
		for i := range es {
			es[i] = ev(fmt.Sprintf("r%d-%d", r, i), fmt.Sprintf("user-%d", i%300), "2026-11-02T10:00:00Z")
		}
		record(t, s, ac, events(es...))
		deadline := time.Now().Add(30 * time.Second)
		for count(t, pool, `SELECT count(*) FROM rollup_pending`) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: events still pending after 30 s", r)
			}
			time.Sleep(10 * time.Millisecond)
		}
		select {
		case err := <-vacuumed:
			if err != nil {
				t.Fatalf("round %d: vacuum: %v", r, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: %d events folded and no vacuum", r, perRound)
		}
		if r == 0 {
			first = count(t, pool, size)
		}
	}
	last := count(t, pool, size)
	t.Logf("rollup_pending after the first of %d rounds of %d events: %d bytes; after the last: %d", rounds, perRound, first, last)
	if last > 3*first {
		t.Errorf("rollup_pending grew from %d to %d bytes over %d rounds of %d events, each folded: its pages were not reused",
			first, last, rounds, perRound)
	}
	if got := activeUsers(t, s, ac, "2026-11"); got != 300 {
		t.Errorf("active users %d, want 300", got)
	}
}
