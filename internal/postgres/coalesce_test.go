package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// TestCoalescerGroupsConcurrentBodies records many small bodies for two
// accounts at once: every event is stored exactly once under its own
// account, repeats across bodies count once, and the bodies shared
// transactions (fewer flushes than bodies).
func TestCoalescerGroupsConcurrentBodies(t *testing.T) {
	s, pool, ac := newStore(t)
	other, err := s.CreateAccount(t.Context(), "Other", false)
	if err != nil {
		t.Fatal(err)
	}
	c := postgres.NewCoalescer(s, 1)
	c.MaxEvents = 50
	var flushes, accepted, duplicates atomic.Int64
	c.Observe = func(r usage.IngestResult) {
		flushes.Add(1)
		accepted.Add(r.Accepted)
		duplicates.Add(r.Duplicates)
	}
	const bodies = 400
	var wg sync.WaitGroup
	errs := make(chan error, bodies)
	for i := range bodies {
		wg.Go(func() {
			account := ac
			if i%4 == 0 {
				account = other.SID
			}
			// Two events per body, like a verification with two grants;
			// every tenth body repeats the previous body's first event.
			id := i
			if i%10 == 9 {
				id = i - 1
			}
			body := []usage.Event{
				ev(fmt.Sprintf("e%d-chat", id), fmt.Sprintf("user-%d", i%37), "2026-10-05T12:00:00Z"),
				ev(fmt.Sprintf("e%d-sync", i), fmt.Sprintf("user-%d", i%37), "2026-10-05T12:00:01Z"),
			}
			if err := c.Record(t.Context(), account, body); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	stored := count(t, pool, `SELECT count(*) FROM events`)
	distinctIDs := count(t, pool, `SELECT count(DISTINCT (account_sid, event_id)) FROM events`)
	// Bodies 9, 19, … repeat the first event of bodies 8, 18, …; those pairs
	// have the same account only when both are not multiples of 4.
	want := int64(2 * bodies)
	for i := 9; i < bodies; i += 10 {
		if (i%4 == 0) == ((i-1)%4 == 0) {
			want--
		}
	}
	if stored != want || distinctIDs != want {
		t.Fatalf("%d events stored (%d distinct), want %d", stored, distinctIDs, want)
	}
	if accepted.Load() != want || accepted.Load()+duplicates.Load() != 2*bodies {
		t.Fatalf("observed %d accepted and %d duplicates, want %d and %d", accepted.Load(), duplicates.Load(), want, 2*bodies-want)
	}
	if n := count(t, pool, `SELECT count(*) FROM events WHERE account_sid = $1`, other.SID); n == 0 || n >= want {
		t.Fatalf("%d events under the other account", n)
	}
	if f := flushes.Load(); f >= bodies || f == 0 {
		t.Fatalf("%d flushes for %d bodies: nothing was grouped", f, bodies)
	}
	if got := activeUsers(t, s, ac, "2026-10"); got != 37 {
		t.Fatalf("%d active users, want 37", got)
	}
}

// TestCoalescerReportsFailureToTheWholeGroup: when the transaction fails,
// every caller of the group gets the error and nothing is stored.
func TestCoalescerReportsFailureToTheWholeGroup(t *testing.T) {
	s, pool, ac := newStore(t)
	c := postgres.NewCoalescer(s, 1)
	pool.Close() // every flush now fails
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 20 {
		wg.Go(func() {
			err := c.Record(context.Background(), ac, []usage.Event{ev(fmt.Sprintf("e%d", i), "alice", "2026-10-05T12:00:00Z")})
			if errors.Is(err, usage.ErrUnavailable) {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 20 {
		t.Fatalf("%d of 20 callers saw the database unavailable", failed.Load())
	}
}
