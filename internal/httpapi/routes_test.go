package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tallyhq/tally/internal/usage"
)

// TestWrongMethod: a method that an existing path does not have is 405 with
// Allow, and a path that does not exist is 404; both problem documents say
// why in detail.
func TestWrongMethod(t *testing.T) {
	e := newEnv(t)
	key := e.keys[e.acme][usage.RoleAdmin]
	acct := "/v1/accounts/" + e.acme
	tests := []struct {
		name, method, path string
		want               int
		allow              []string
	}{
		{"GET events", "GET", acct + "/events", 405, []string{"POST"}},
		{"PATCH events", "PATCH", acct + "/events", 405, []string{"POST"}},
		{"DELETE report", "DELETE", acct + "/reports/2026-10", 405, []string{"GET"}},
		{"POST rate card", "POST", acct + "/rate-card", 405, []string{"GET", "PUT"}},
		{"PUT accounts", "PUT", "/v1/accounts", 405, []string{"GET", "POST"}},
		{"POST healthz", "POST", "/healthz", 405, []string{"GET"}},
		{"unknown path", "GET", acct + "/nothing", 404, nil},
		{"unknown version", "GET", "/v2/accounts", 404, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(e.srv, key, tt.method, tt.path, "application/json", strings.NewReader("{}"))
			if r.status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.status, tt.want, r.body)
			}
			p := r.json(t)
			if p["status"] != float64(tt.want) || p["detail"] == nil || p["detail"] == "" {
				t.Fatalf("problem without status or detail: %s", r.body)
			}
			if r.header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("Content-Type %q", r.header.Get("Content-Type"))
			}
			allow := r.header.Get("Allow")
			for _, m := range tt.allow {
				if !strings.Contains(allow, m) {
					t.Fatalf("Allow %q lacks %s", allow, m)
				}
			}
		})
	}
}

// TestNotFoundHasDetail: every 404, whoever raises it, carries a detail.
func TestNotFoundHasDetail(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, path string
		key        cred
	}{
		{"another account", "/v1/accounts/" + e.other + "/keys", e.keys[e.acme][usage.RoleAdmin]},
		{"no rate card", "/v1/accounts/" + e.acme + "/rate-card", e.keys[e.acme][usage.RoleFinance]},
		{"no version", "/v1/accounts/" + e.acme + "/reports/2026-10?version=7", e.keys[e.acme][usage.RoleFinance]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.get(tt.key, tt.path)
			if r.status != http.StatusNotFound {
				t.Fatalf("status %d, want 404: %s", r.status, r.body)
			}
			if d, _ := r.json(t)["detail"].(string); d == "" {
				t.Fatalf("404 without detail: %s", r.body)
			}
		})
	}
}
