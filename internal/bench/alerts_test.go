package bench

import (
	"testing"
	"time"
)

// TestAlertsWorkload: the alerts bench's events all fall in the current
// month, none after now (alerts compare the current month only, and a
// future event would be refused), and UsersPerAccount counts what each
// account receives when Post sends the bodies round robin: the thresholds
// are tenths of it, so a miscount leaves alerts unfired or fires them all
// on the first body.
func TestAlertsWorkload(t *testing.T) {
	now := time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)
	w := NewWorkload(5000, "t", 1).InMonth(now)
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, e := range w.Events {
		if e.OccurredAt.Before(start) || e.OccurredAt.After(now) {
			t.Fatalf("event at %s, outside %s..%s", e.OccurredAt, start, now)
		}
	}
	const batch, accounts = 100, 7
	got := w.UsersPerAccount(batch, accounts)
	bodies := w.Bodies(batch, false)
	want := make([]map[string]bool, accounts)
	for i := range want {
		want[i] = map[string]bool{}
	}
	for i := range bodies {
		for _, e := range w.Events[i*batch : min((i+1)*batch, len(w.Events))] {
			want[i%accounts][e.Identity] = true
		}
	}
	for i := range accounts {
		if got[i] != len(want[i]) || got[i] == 0 {
			t.Errorf("account %d: %d users, want %d", i, got[i], len(want[i]))
		}
	}
}
