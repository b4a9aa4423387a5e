package postgres_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/usage"
)

// TestFoldPartsKeepLookalikeMarks: an identity that is its own lookalike
// key ("user3-7") and its twin ("USER3-7", whose key it is) arrive new in
// the same body and are folded by the four parts side by side, round after
// round. The identity that is the key must end up marked with its own
// identity (pendingLookalike), so that every member of a group has its key
// set. foldPart hashes the key, so a pair is always folded by one part; a
// part that hashed the identity would fold the two in separate snapshots,
// each blind to the other's rows, and lose marks.
func TestFoldPartsKeepLookalikeMarks(t *testing.T) {
	s, pool, ac := newStore(t)
	s.SetMaxPending(0) // the folds below, all four parts at once, are the only ones
	const rounds, pairs = 20, 50
	at := time.Date(2026, 10, 3, 0, 0, 0, 0, time.UTC)
	for r := range rounds {
		var l usage.EventList
		for p := range pairs {
			key := fmt.Sprintf("user%d-%d", r, p)
			if usage.LookalikeKey(key) != key || usage.LookalikeKey(strings.ToUpper(key)) != key {
				t.Fatalf("%q is not its own key or not the key of %q", key, strings.ToUpper(key))
			}
			for i, id := range []string{key, strings.ToUpper(key)} {
				l.Events = append(l.Events, usage.Event{ID: fmt.Sprintf("%d-%d-%d", r, p, i), Activity: usage.Send,
					Source: usage.SDK, ServiceSID: "IS1", Identity: id, OccurredAt: at})
			}
		}
		record(t, s, ac, &l)
		fold(t, s)
	}
	if n := count(t, pool, `SELECT count(*) FROM month_users m WHERE m.account_sid = $1 AND m.lookalike IS NULL
		AND EXISTS (SELECT 1 FROM month_users k WHERE k.account_sid = m.account_sid AND k.month = m.month
		            AND k.service_sid = m.service_sid AND k.lookalike = m.identity)`, ac); n != 0 {
		t.Errorf("%d identities are the key of a twin but not marked", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM month_users WHERE account_sid = $1 AND lookalike = identity`, ac); n != rounds*pairs {
		t.Errorf("%d identities marked as their own key, want %d", n, rounds*pairs)
	}
}
