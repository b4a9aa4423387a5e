package postgres_test

import (
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/billing"
	"github.com/tallyhq/tally/internal/usage"
)

// TestActivitiesMergeAcrossFolds: a user who used the SDK, then after a fold
// was updated through REST, is not REST-only: the rollup row merges the
// activities of both folds.
func TestActivitiesMergeAcrossFolds(t *testing.T) {
	s, _, ac := newStore(t)
	oct := mustMonth(t, "2026-10")
	record(t, s, ac, events(ev("e1", "alice", "2026-10-05T12:00:00Z"))) // send, sdk
	fold(t, s)
	update := ev("e2", "alice", "2026-10-06T12:00:00Z")
	update.Activity, update.Source = usage.Update, usage.REST
	record(t, s, ac, events(update))
	fold(t, s)
	r, err := s.ProvisionalReport(t.Context(), ac, oct)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Services) != 1 || r.Services[0].RESTOnlyUsers != 0 {
		t.Fatalf("services %+v: alice used the SDK, so no user is REST-only", r.Services)
	}
	st, err := s.IdentityStats(t.Context(), ac, oct, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.RESTOnlyIdentities != 0 {
		t.Fatalf("%d REST-only identities, want 0", st.RESTOnlyIdentities)
	}
}

// TestBodyDuringFinalizationIsLate: a body for a month that is being
// finalized waits for the finalization, then counts its new user as late
// and flags the month for a revision, so the user lands in version 2. Were
// the body to commit while the finalization holds the month, the user
// would be in neither version. It runs the monthly job's own finalization
// (billing.Finalize), whose decisions are made on the store's HoldMonth.
func TestBodyDuringFinalizationIsLate(t *testing.T) {
	s, pool, ac := newStore(t)
	oct := mustMonth(t, "2026-10")
	record(t, s, ac, events(ev("e1", "alice", "2026-10-05T12:00:00Z")))

	done := make(chan usage.IngestResult, 1)
	fail := make(chan error, 1)
	s.AfterMonthLock(func() {
		s.AfterMonthLock(nil)
		go func() {
			res, err := s.RecordEvents(t.Context(), ac, events(ev("e2", "bob", "2026-10-06T12:00:00Z")))
			if err != nil {
				fail <- err
				return
			}
			done <- res
		}()
		select {
		case res := <-done:
			t.Errorf("a body for the month committed while the finalization held it: %+v", res)
			done <- res
		case err := <-fail:
			t.Errorf("the body failed: %v", err)
		case <-time.After(500 * time.Millisecond):
		}
	})
	v1, err := billing.Finalize(t.Context(), s, ac, oct)
	if err != nil {
		t.Fatal(err)
	}
	if !v1.Stored || v1.Report.ActiveUsers != 1 {
		t.Fatalf("version 1: stored %v with %d users, want alice alone", v1.Stored, v1.Report.ActiveUsers)
	}
	var res usage.IngestResult
	select {
	case res = <-done:
	case err := <-fail:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("the body did not finish after the finalization")
	}
	if res.Accepted != 1 || res.Late != 1 {
		t.Fatalf("the body during finalization: %+v, want 1 accepted and late", res)
	}
	if n := count(t, pool, `SELECT count(*) FROM account_months WHERE account_sid = $1 AND revision_due`, ac); n != 1 {
		t.Fatalf("%d months flagged for a revision, want 1", n)
	}
	v2, err := billing.Finalize(t.Context(), s, ac, oct)
	if err != nil {
		t.Fatal(err)
	}
	if !v2.Stored || *v2.Report.Version != 2 || v2.Report.Supersedes == nil || *v2.Report.Supersedes != 1 ||
		*v2.Report.AddedUsers != 1 || v2.Report.ActiveUsers != 2 {
		t.Fatalf("version 2: stored %v, %+v", v2.Stored, v2.Report)
	}
}

func mustMonth(t *testing.T, s string) usage.Month {
	t.Helper()
	m, err := usage.ParseMonth(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
