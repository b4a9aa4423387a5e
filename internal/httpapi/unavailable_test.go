package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tallyhq/tally/internal/httpapi"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/secrets"
	"github.com/tallyhq/tally/internal/usage"
)

// TestDatabaseDown points the API at a port where nothing listens: requests
// that need the database answer 503 with Retry-After within a bounded time,
// /readyz fails and /healthz still answers.
func TestDatabaseDown(t *testing.T) {
	cfg, err := pgxpool.ParseConfig("postgres://tally@127.0.0.1:1/tally?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := postgres.New(pool, nil)
	box, _ := secrets.NewBox(bytes.Repeat([]byte{1}, 32))
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Store: store, Box: box,
		Ready: func(r *http.Request) error { return store.Ping(r.Context()) }}))
	defer srv.Close()

	tests := []struct {
		name, method, path string
		auth               bool
		want               int
	}{
		{"healthz", "GET", "/healthz", false, 200},
		{"readyz", "GET", "/readyz", false, 503},
		{"events", "POST", "/v1/accounts/" + usage.NewAccountSID() + "/events", true, 503},
		{"keys", "GET", "/v1/accounts/" + usage.NewAccountSID() + "/keys", true, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, tt.method, srv.URL+tt.path, strings.NewReader(`{"events":[]}`))
			req.Header.Set("Content-Type", "application/json")
			if tt.auth {
				req.SetBasicAuth(usage.NewKeySID(), strings.Repeat("a", 32))
			}
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("no answer within 10s: %v", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want == 503 {
				if resp.Header.Get("Retry-After") == "" {
					t.Error("503 without Retry-After")
				}
				var p map[string]any
				json.NewDecoder(resp.Body).Decode(&p)
				if p["status"] != float64(503) {
					t.Errorf("problem %v", p)
				}
			}
			t.Logf("answered in %v", time.Since(start).Round(time.Millisecond))
		})
	}
}
