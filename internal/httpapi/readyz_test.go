package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tallyhq/tally/internal/httpapi"
)

// TestReadyzTellsBusyFromUnreachable: with every pool connection in use and
// the database fine, /readyz answers at once that the replica is busy, not
// that the database is unreachable; once connections are free, it is ready.
func TestReadyzTellsBusyFromUnreachable(t *testing.T) {
	e := newEnv(t)
	srv := e.newServerWith(httpapi.Config{Ready: func(r *http.Request) error { return e.store.Ping(r.Context()) }})
	readyz := func(t *testing.T) (int, map[string]any) {
		t.Helper()
		client := &http.Client{Timeout: 3 * time.Second}
		resp, err := client.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatalf("no answer within 3 s: %v", err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	var held []*pgxpool.Conn
	release := func() {
		for _, c := range held {
			c.Release()
		}
		held = nil
	}
	defer release() // the pool cannot close while they are out
	for range e.pool.Config().MaxConns {
		c, err := e.pool.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	status, body := readyz(t)
	detail, _ := body["detail"].(string)
	if status != http.StatusServiceUnavailable || !strings.HasSuffix(body["type"].(string), "/busy") || strings.Contains(detail, "unreachable") {
		t.Fatalf("pool exhausted: %d %v, want 503 busy", status, body)
	}
	release()
	if status, body := readyz(t); status != http.StatusOK {
		t.Fatalf("pool free: %d %v, want 200", status, body)
	}
}
