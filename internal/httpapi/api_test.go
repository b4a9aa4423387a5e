package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tallyhq/tally/internal/httpapi"
	"github.com/tallyhq/tally/internal/keys"
	"github.com/tallyhq/tally/internal/pgtest"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/secrets"
	"github.com/tallyhq/tally/internal/usage"
)

// env is one API server on its own database, with a platform account, two
// ordinary accounts and a key of every role on each.
type env struct {
	t     *testing.T
	pool  *pgxpool.Pool
	store *postgres.Store
	box   *secrets.Box
	srv   *httptest.Server
	logs  *syncBuffer
	now   time.Time

	platform, acme, other string
	keys                  map[string]map[usage.Role]cred // account → role → key
}

type cred struct{ sid, secret string }

// fold folds every pending event into the rollup, for a test that reads
// month_users directly (the API's reads fold by themselves).
func (e *env) fold(t *testing.T) {
	t.Helper()
	if _, err := e.store.FoldRollup(t.Context(), ""); err != nil {
		t.Fatalf("FoldRollup: %v", err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEnvPool(t *testing.T) (*pgxpool.Pool, string) { return pgtest.NewDB(t) }

func newEnv(t *testing.T) *env {
	t.Helper()
	pool, _ := pgtest.NewDB(t)
	box, err := secrets.NewBox(bytes.Repeat([]byte{42}, 32))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, pool: pool, box: box, logs: &syncBuffer{}, now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC),
		keys: map[string]map[usage.Role]cred{}}
	e.store = postgres.New(pool, func() time.Time { return e.now })
	e.srv = e.newServer(time.Second)
	for _, a := range []struct {
		name     string
		platform bool
		sid      *string
	}{{"Platform", true, &e.platform}, {"Acme", false, &e.acme}, {"Other", false, &e.other}} {
		acct, err := e.store.CreateAccount(t.Context(), a.name, a.platform)
		if err != nil {
			t.Fatal(err)
		}
		*a.sid = acct.SID
		e.keys[acct.SID] = map[usage.Role]cred{}
		for _, r := range []usage.Role{usage.RoleAdmin, usage.RoleIngest, usage.RoleFinance} {
			k, secret, err := keys.Create(t.Context(), e.store, box, acct.SID, r, string(r))
			if err != nil {
				t.Fatal(err)
			}
			e.keys[acct.SID][r] = cred{k.SID, secret}
		}
	}
	return e
}

// newServer starts another replica on the same database.
func (e *env) newServer(keyTTL time.Duration) *httptest.Server {
	return e.newServerWith(httpapi.Config{KeyTTL: keyTTL})
}

// httptestServer starts a replica whose ingest and token routes have limit.
func httptestServer(e *env, limit httpapi.Limit) *httptest.Server {
	return e.newServerWith(httpapi.Config{IngestLimit: limit, TokenLimit: limit})
}

func (e *env) newServerWith(cfg httpapi.Config) *httptest.Server {
	cfg.Store, cfg.Box, cfg.Now = e.store, e.box, func() time.Time { return e.now }
	cfg.Logger = slog.New(slog.NewJSONHandler(e.logs, nil))
	h := httpapi.New(cfg)
	srv := httptest.NewServer(h)
	e.t.Cleanup(srv.Close)
	return srv
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

func (e *env) do(srv *httptest.Server, c cred, method, path, contentType string, body io.Reader) response {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), method, srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if c.sid != "" {
		req.SetBasicAuth(c.sid, c.secret)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func (e *env) post(c cred, path, body string) response {
	return e.do(e.srv, c, http.MethodPost, path, "application/json", strings.NewReader(body))
}

func (e *env) get(c cred, path string) response {
	return e.do(e.srv, c, http.MethodGet, path, "", nil)
}

func eventJSON(id, identity, at string) string {
	return fmt.Sprintf(`{"id":%q,"activity":"send","source":"sdk","service_sid":"IS1","identity":%q,"occurred_at":%q}`, id, identity, at)
}

func batch(events ...string) string { return `{"events":[` + strings.Join(events, ",") + `]}` }
