package httpapi_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/usage"
)

// TestBacklogMetrics: /metrics says how many accepted events wait for a
// fold and how long the oldest has waited, read from the database at each
// scrape, and both fall to 0 once they are folded.
func TestBacklogMetrics(t *testing.T) {
	e := newEnv(t)
	key := e.keys[e.acme][usage.RoleIngest]
	body := `{"events":[` + eventJSON("b1", "alice", "2026-11-20T10:00:00Z") + `,` +
		eventJSON("b2", "bob", "2026-11-20T10:00:00Z") + `]}`
	if r := e.post(key, "/v1/accounts/"+e.acme+"/events", body); r.status != 200 {
		t.Fatalf("ingest: %d %s", r.status, r.body)
	}
	other := e.keys[e.other][usage.RoleIngest]
	if r := e.post(other, "/v1/accounts/"+e.other+"/events", `{"events":[`+eventJSON("c1", "carol", "2026-11-20T10:00:00Z")+`]}`); r.status != 200 {
		t.Fatalf("ingest: %d %s", r.status, r.body)
	}
	e.now = e.now.Add(90 * time.Second)
	scrape := func() string { return string(e.get(cred{}, "/metrics").body) }
	for _, want := range []string{"tally_rollup_pending_events 3\n", "tally_rollup_pending_oldest_seconds 90\n"} {
		if m := scrape(); !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(m, "tally_rollup_pending"))
		}
	}
	if _, err := e.store.FoldRollup(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tally_rollup_pending_events 0\n", "tally_rollup_pending_oldest_seconds 0\n"} {
		if m := scrape(); !strings.Contains(m, want) {
			t.Errorf("after a fold, metrics lack %q:\n%s", want, grepLines(m, "tally_rollup_pending"))
		}
	}
}

// grepLines is the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
