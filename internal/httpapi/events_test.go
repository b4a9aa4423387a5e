package httpapi_test

import (
	"fmt"
	"github.com/tallyhq/tally/internal/httpapi"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tallyhq/tally/internal/usage"
)

func TestPostEvents(t *testing.T) {
	e := newEnv(t)
	key := e.keys[e.acme][usage.RoleIngest]
	path := "/v1/accounts/" + e.acme + "/events"
	body := batch(eventJSON("e1", "alice", "2026-10-05T12:00:00Z"), eventJSON("e2", "bob", "2026-10-06T12:00:00Z"))

	r := e.post(key, path, body)
	if r.status != http.StatusOK {
		t.Fatalf("post: %d %s", r.status, r.body)
	}
	if got := strings.TrimSpace(string(r.body)); got != `{"accepted":2,"duplicates":0,"late":0}` {
		t.Fatalf("body %s", got)
	}
	r = e.post(key, path, body)
	if got := strings.TrimSpace(string(r.body)); r.status != 200 || got != `{"accepted":0,"duplicates":2,"late":0}` {
		t.Fatalf("retry: %d %s", r.status, got)
	}
	if r.header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id header")
	}
}

func TestPostEventsErrors(t *testing.T) {
	e := newEnv(t)
	key := e.keys[e.acme][usage.RoleIngest]
	path := "/v1/accounts/" + e.acme + "/events"
	good := eventJSON("g1", "alice", "2026-10-05T12:00:00Z")
	bad := strings.Replace(eventJSON("b1", "alice", "2026-10-05T12:00:00Z"), `"sdk"`, `"rest"`, 1)
	bad = strings.Replace(bad, `"send"`, `"join"`, 1)
	tests := []struct {
		name        string
		contentType string
		body        string
		want        int
		wantErrors  int
	}{
		{"one bad event", "application/json", batch(good, bad, strings.Replace(bad, "b1", "b2", 1)), 422, 2},
		{"future event", "application/json", batch(eventJSON("f", "a", "2026-11-23T12:05:01Z")), 422, 1},
		{"1999", "application/json", batch(eventJSON("f", "a", "1999-12-31T23:59:59Z")), 422, 1},
		{"malformed", "application/json", `{"events":[`, 400, 0},
		{"text/plain", "text/plain", batch(good), 415, 0},
		{"no content type", "", batch(good), 415, 0},
		{"json with charset", "application/json; charset=utf-8", batch(good), 200, 0},
		{"too large", "application/json", batch(good) + strings.Repeat(" ", 1<<20), 413, 0},
		{"ndjson bad line", "application/x-ndjson", good + "\n" + bad + "\n", 422, 1},
		{"ndjson malformed", "application/x-ndjson", good + "\n{oops\n", 400, 0},
		{"ndjson empty", "application/x-ndjson", "\n", 422, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(e.srv, key, "POST", path, tt.contentType, strings.NewReader(tt.body))
			if r.status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.status, tt.want, r.body)
			}
			if tt.want == 200 {
				return
			}
			if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
			p := r.json(t)
			errs, _ := p["errors"].([]any)
			if len(errs) != tt.wantErrors {
				t.Fatalf("%d errors, want %d: %s", len(errs), tt.wantErrors, r.body)
			}
		})
	}
	// Nothing of the refused bodies is stored: only g1, from the charset case.
	var n int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM events`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d events stored (%v), want 1", n, err)
	}
}

func TestValidationNamesEveryEvent(t *testing.T) {
	e := newEnv(t)
	key := e.keys[e.acme][usage.RoleIngest]
	body := batch(
		eventJSON("ok", "alice", "2026-10-05T12:00:00Z"),
		`{"id":"x","activity":"create","source":"sdk","service_sid":"IS 1","identity":"","occurred_at":"2026-10-05T12:00:00Z","extra":true}`,
	)
	r := e.post(key, "/v1/accounts/"+e.acme+"/events", body)
	if r.status != 422 {
		t.Fatalf("status %d", r.status)
	}
	got := map[string]bool{}
	for _, x := range r.json(t)["errors"].([]any) {
		fe := x.(map[string]any)
		if fe["index"] != float64(1) || fe["message"] == "" {
			t.Errorf("error %v", fe)
		}
		got[fe["field"].(string)] = true
	}
	for _, f := range []string{"extra", "source", "service_sid", "identity"} {
		if !got[f] {
			t.Errorf("no error for %s: %s", f, r.body)
		}
	}
}

// ndjsonBody streams n events without building the body in memory.
func ndjsonBody(n int, prefix string) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < n; i++ {
			fmt.Fprintf(pw, `{"id":"%s-%d","activity":"join","source":"sdk","service_sid":"IS%d","identity":"user-%d","occurred_at":"2026-10-%02dT12:00:00Z"}`+"\n",
				prefix, i, i%3, i%5000, 1+i%28)
		}
		pw.Close()
	}()
	return pr
}

func TestNDJSON100kLines(t *testing.T) {
	e := newEnv(t)
	key := e.keys[e.acme][usage.RoleIngest]
	path := "/v1/accounts/" + e.acme + "/events"
	r := e.do(e.srv, key, "POST", path, "application/x-ndjson", ndjsonBody(100_000, "n"))
	if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"accepted":100000,"duplicates":0,"late":0}` {
		t.Fatalf("100k lines: %d %s", r.status, r.body)
	}
	var users, identities int
	e.fold(t)
	err := e.pool.QueryRow(t.Context(), `SELECT count(*), count(DISTINCT identity) FROM month_users`).Scan(&users, &identities)
	if err != nil || users != 15000 || identities != 5000 {
		t.Fatalf("%d active users, %d identities (%v), want 15000 and 5000", users, identities, err)
	}
	r = e.do(e.srv, key, "POST", path, "application/x-ndjson", ndjsonBody(100_001, "m"))
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("100 001 lines: %d %s", r.status, r.body)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t)
	limited := httptestServer(e, httpapi.Limit{Rate: 2, Burst: 5})
	key := e.keys[e.acme][usage.RoleIngest]
	statuses := map[int]int{}
	var last response
	for i := 0; i < 20; i++ {
		r := e.do(limited, key, "POST", "/v1/accounts/"+e.acme+"/events", "application/json",
			strings.NewReader(batch(eventJSON(fmt.Sprint("rl-", i), "alice", "2026-10-05T12:00:00Z"))))
		statuses[r.status]++
		if r.status == 429 {
			last = r
		}
		if r.status >= 500 {
			t.Fatalf("5xx under rate limiting: %d %s", r.status, r.body)
		}
	}
	if statuses[200] < 5 || statuses[429] < 10 {
		t.Fatalf("statuses %v: want the burst of 5 accepted and most of the rest refused", statuses)
	}
	for _, h := range []string{"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
		if last.header.Get(h) == "" {
			t.Errorf("429 without %s", h)
		}
	}
	if last.json(t)["status"] != float64(429) {
		t.Errorf("problem %s", last.body)
	}
	// Another key has its own bucket.
	if r := e.do(limited, e.keys[e.acme][usage.RoleAdmin], "POST", "/v1/accounts/"+e.acme+"/events", "application/json",
		strings.NewReader(batch(eventJSON("rl-admin", "alice", "2026-10-05T12:00:00Z")))); r.status != 200 {
		t.Fatalf("another key: %d", r.status)
	}
}
