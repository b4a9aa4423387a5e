package billing_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/billing"
	"github.com/tallyhq/tally/internal/usage"
)

// TestRunDueGoesOnAfterAFailure: one account-month that cannot be finalized
// (its rollup is inconsistent) does not keep the account-months after it
// from their versions; its error comes back, and Observe counts it.
func TestRunDueGoesOnAfterAFailure(t *testing.T) {
	f := newFixture(t)
	other, err := f.store.CreateAccount(t.Context(), "Other", false)
	if err != nil {
		t.Fatal(err)
	}
	// Months are run in (month, account) order: break the account that
	// comes first, so that the other comes after the failure.
	broken, healthy := f.ac, other.SID
	if healthy < broken {
		broken, healthy = healthy, broken
	}
	for _, ac := range []string{broken, healthy} {
		if _, err := f.store.RecordEvents(t.Context(), ac, &source{events: []usage.Event{
			event("a1", "IS1", "alice", usage.Send, "2026-10-10T00:00:00Z")}}); err != nil {
			t.Fatal(err)
		}
	}
	// More users begin in October than are active in it.
	if _, err := f.pool.Exec(t.Context(), `INSERT INTO users (account_sid, service_sid, identity, first_month)
		VALUES ($1, 'IS1', 'ghost', '2026-10-01')`, broken); err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	f.job.Observe = func(outcome string, _ time.Duration) { outcomes = append(outcomes, outcome) }
	f.setNow("2026-12-01T00:00:00Z")
	n, err := f.job.RunDue(t.Context())
	if err == nil || !strings.Contains(err.Error(), broken) {
		t.Fatalf("RunDue's error %v does not name the broken account %s", err, broken)
	}
	if n != 1 {
		t.Fatalf("RunDue stored %d versions, want the healthy account's 1", n)
	}
	if _, err := f.store.Version(t.Context(), healthy, oct, nil); err != nil {
		t.Fatalf("the healthy account has no version: %v", err)
	}
	if strings.Join(outcomes, ",") != "error,stored" {
		t.Fatalf("observed %v, want an error and a stored version", outcomes)
	}
}

// TestOneRunAtATime: while one replica's run holds the job's lease, another
// replica's run does nothing; once it is released, or has expired, the
// other runs.
func TestOneRunAtATime(t *testing.T) {
	f := newFixture(t)
	f.post(event("a1", "IS1", "alice", usage.Send, "2026-10-10T00:00:00Z"))
	f.setNow("2026-12-01T00:00:00Z")
	if got, err := f.store.TakeLease(t.Context(), "monthly-report-job", "another-replica", time.Hour); err != nil || !got {
		t.Fatalf("TakeLease: %v %v", got, err)
	}
	replica := &billing.Job{Store: f.store, Now: f.clock}
	n, err := replica.RunDue(t.Context())
	if err != nil || n != 0 {
		t.Fatalf("RunDue while another run holds the lease stored %d (%v), want nothing", n, err)
	}
	if _, err := f.store.Version(t.Context(), f.ac, oct, nil); !errors.Is(err, usage.ErrNotFound) {
		t.Fatalf("a version was stored under another run's lease: %v", err)
	}
	f.setNow("2026-12-01T01:00:01Z") // the other run's lease has expired
	if n, err := replica.RunDue(t.Context()); err != nil || n != 1 {
		t.Fatalf("RunDue after the lease expired stored %d (%v), want 1", n, err)
	}
	// The run released its lease: the other replica takes it at once.
	if got, err := f.store.TakeLease(t.Context(), "monthly-report-job", "another-replica", time.Hour); err != nil || !got {
		t.Fatalf("the lease was not released after the run: %v %v", got, err)
	}
}
