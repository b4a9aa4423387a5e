package postgres_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/usage"
)

// TestBodiesFoldAnAccountOverItsBound: a body of an account whose pending
// events are over the bound folds them before it is stored (backlog.go),
// with no background fold running: the account's pending events stay
// within the bound plus the bodies in flight, another account's are left
// alone, and every event is counted once although bodies fold each
// other's events side by side.
func TestBodiesFoldAnAccountOverItsBound(t *testing.T) {
	s, pool, ac := newStore(t)
	other, err := s.CreateAccount(t.Context(), "Other", false)
	if err != nil {
		t.Fatal(err)
	}
	const bound, clients, bodies, size, users = 2500, 4, 5, 1000, 3000
	s.SetMaxPending(bound)
	s.ProbeBacklogEveryBody()

	at := time.Date(2026, 10, 3, 0, 0, 0, 0, time.UTC)
	body := func(prefix string, n int) *usage.EventList {
		var l usage.EventList
		for i := range size {
			l.Events = append(l.Events, usage.Event{ID: fmt.Sprintf("%s-%d-%d", prefix, n, i), Activity: usage.Send,
				Source: usage.SDK, ServiceSID: "IS1", Identity: fmt.Sprintf("u%d", (n*size+i*7)%users),
				OccurredAt: at.Add(time.Duration(i) * time.Second)})
		}
		return &l
	}
	// The other account stays under the bound: nothing folds it.
	record(t, s, other.SID, body("o", 0))
	record(t, s, other.SID, body("o", 1))

	var (
		mu   sync.Mutex
		most int64
		wg   sync.WaitGroup
	)
	for c := range clients {
		wg.Go(func() {
			for b := range bodies {
				if _, err := s.RecordEvents(t.Context(), ac, body("a", c*bodies+b)); err != nil {
					t.Errorf("RecordEvents: %v", err)
					return
				}
				var n int64
				if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM rollup_pending WHERE account_sid = $1`, ac).Scan(&n); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				most = max(most, n)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if limit := int64(bound + clients*size); most > limit {
		t.Errorf("%d events of the account pending at most, want at most %d (the bound %d and %d bodies in flight)", most, limit, bound, clients)
	}
	if n := count(t, pool, `SELECT count(*) FROM rollup_pending WHERE account_sid = $1`, other.SID); n != 2*size {
		t.Errorf("the other account has %d events pending, want %d: a body folded another account", n, 2*size)
	}
	// Every event counted once: the rollup holds them all.
	fold(t, s)
	if n := count(t, pool, `SELECT coalesce(sum(events), 0) FROM month_users WHERE account_sid = $1`, ac); n != clients*bodies*size {
		t.Errorf("the rollup counts %d events, want %d", n, clients*bodies*size)
	}
	if n := activeUsers(t, s, ac, "2026-10"); n != users {
		t.Errorf("%d active users, want %d", n, users)
	}
}

// TestProbeStandsOnlyUnderHalfTheBound: bodies sent back to back, faster
// than the probe's interval, still find the account over the bound as soon
// as it is: a probe stands only while what was recorded since keeps the
// backlog under half the bound, so the backlog never passes the bound by
// more than a body.
func TestProbeStandsOnlyUnderHalfTheBound(t *testing.T) {
	s, pool, ac := newStore(t)
	const bound, bodies, size = 2500, 12, 1000
	s.SetMaxPending(bound)
	at := time.Date(2026, 10, 3, 0, 0, 0, 0, time.UTC)
	var most int64
	for b := range bodies {
		var l usage.EventList
		for i := range size {
			l.Events = append(l.Events, usage.Event{ID: fmt.Sprintf("b%d-%d", b, i), Activity: usage.Send,
				Source: usage.SDK, ServiceSID: "IS1", Identity: fmt.Sprintf("u%d", i), OccurredAt: at})
		}
		record(t, s, ac, &l)
		most = max(most, count(t, pool, `SELECT count(*) FROM rollup_pending WHERE account_sid = $1`, ac))
	}
	if most > bound+size {
		t.Errorf("%d events pending at most, want at most %d (the bound and one body)", most, bound+size)
	}
	if most <= bound {
		t.Errorf("%d events pending at most: the bodies never passed the bound, the test shows nothing", most)
	}
}
