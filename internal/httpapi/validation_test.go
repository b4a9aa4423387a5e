package httpapi_test

import (
	"strings"
	"testing"

	"github.com/tallyhq/tally/internal/usage"
)

// TestSmallDeviations pins the smaller points of the hardening review: each
// request and the answer the contract wants.
func TestSmallDeviations(t *testing.T) {
	e := newEnv(t)
	ingest := e.keys[e.acme][usage.RoleIngest]
	platform := e.keys[e.platform][usage.RoleAdmin]
	events := "/v1/accounts/" + e.acme + "/events"
	ev := func(at string) string { return batch(eventJSON("t-"+at, "alice", at)) }
	tests := []struct {
		name, method, path, contentType, body string
		key                                   cred
		want                                  int
		field                                 string // named in errors when set
	}{
		{"blank NDJSON lines are not counted", "POST", events, "application/x-ndjson",
			strings.Repeat("\n", 100_000) + eventJSON("b1", "alice", "2026-11-05T12:00:00Z") + "\n" + strings.Repeat("\r\n  \n", 10), ingest, 200, ""},
		{"offset +24:00", "POST", events, "application/json", ev("2026-11-05T12:00:00+24:00"), ingest, 422, "occurred_at"},
		{"offset -24:00", "POST", events, "application/json", ev("2026-11-05T12:00:00-24:00"), ingest, 422, "occurred_at"},
		{"offset +23:60", "POST", events, "application/json", ev("2026-11-05T12:00:00+23:60"), ingest, 422, "occurred_at"},
		{"offset +23:59", "POST", events, "application/json", ev("2026-11-05T12:00:00+23:59"), ingest, 200, ""},
		{"offset -23:59", "POST", events, "application/json", ev("2026-11-05T12:00:00-23:59"), ingest, 200, ""},
		{"NDJSON offset +24:00", "POST", events, "application/x-ndjson", eventJSON("n24", "alice", "2026-11-05T12:00:00+24:00") + "\n", ingest, 422, "occurred_at"},
		{"empty JSON batch", "POST", events, "application/json", `{"events":[]}`, ingest, 422, "events"},
		{"NDJSON of blank lines only", "POST", events, "application/x-ndjson", "\n\n", ingest, 422, "events"},
		{"unit_price as a number", "PUT", "/v1/accounts/" + e.acme + "/rate-card", "application/json",
			`{"currency":"USD","free_users":0,"tiers":[{"up_to":null,"unit_price":0.05}]}`, platform, 422, "unit_price"},
		{"account name with a tab", "POST", "/v1/accounts", "application/json", `{"name":"Acme\tCorp"}`, platform, 422, "name"},
		{"account name ending in a tab", "POST", "/v1/accounts", "application/json", `{"name":"Acme\t"}`, platform, 422, "name"},
		{"account name with CR LF", "POST", "/v1/accounts", "application/json", `{"name":"Acme\r\nCorp"}`, platform, 422, "name"},
		{"account name with DEL", "POST", "/v1/accounts", "application/json", `{"name":"Acme\u007fCorp"}`, platform, 422, "name"},
		{"account name with U+0085", "POST", "/v1/accounts", "application/json", `{"name":"Acme\u0085"}`, platform, 422, "name"},
		{"account name blank", "POST", "/v1/accounts", "application/json", `{"name":"   "}`, platform, 422, "name"},
		{"account name with @ and accents", "POST", "/v1/accounts", "application/json", `{"name":"Ácme @ Corp"}`, platform, 201, ""},
		{"identity stats of next month", "GET", "/v1/accounts/" + e.acme + "/identities/stats?month=2026-12", "", "", e.keys[e.acme][usage.RoleAdmin], 422, "month"},
		{"identity stats of this month", "GET", "/v1/accounts/" + e.acme + "/identities/stats?month=2026-11", "", "", e.keys[e.acme][usage.RoleAdmin], 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(e.srv, tt.key, tt.method, tt.path, tt.contentType, strings.NewReader(tt.body))
			if r.status != tt.want {
				t.Fatalf("status %d, want %d: %.300s", r.status, tt.want, r.body)
			}
			if tt.field == "" {
				return
			}
			errs, _ := r.json(t)["errors"].([]any)
			if len(errs) == 0 {
				t.Fatalf("no errors member: %s", r.body)
			}
			fe := errs[0].(map[string]any)
			if fe["field"] != tt.field {
				t.Fatalf("errors name %v, want %s: %s", fe["field"], tt.field, r.body)
			}
			// "index" is the position of an event: only errors about one have it.
			_, hasIndex := fe["index"]
			if perEvent := tt.field == "occurred_at"; hasIndex != perEvent {
				t.Fatalf("index present %v, want %v: %s", hasIndex, perEvent, r.body)
			}
		})
	}
	var names []string
	rows, err := e.pool.Query(t.Context(), `SELECT name FROM accounts`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.ContainsAny(n, "\t\r\n\x7f\u0085") {
			t.Fatalf("account name %q stored", n)
		}
	}
}
