package client_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/httpapi"
	"github.com/tallyhq/tally/internal/keys"
	"github.com/tallyhq/tally/internal/pgtest"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/secrets"
	"github.com/tallyhq/tally/internal/usage"
)

// On plain PostgreSQL only: what this package adds over the API is HTTP, and
// the API's store code is tested on Citus too (internal/postgres, httpapi).
func TestMain(m *testing.M) { pgtest.MainOn(m, pgtest.Postgres) }

// tally is a real tally API on its own database, with one account and a
// key of each role, behind a recorder of the batches it acknowledged.
type tally struct {
	store   *postgres.Store
	box     *secrets.Box
	srv     *httptest.Server // the first replica
	cur     atomic.Pointer[httptest.Server]
	account string
	keys    map[usage.Role]key
	// the answers the server gave to event posts, counted before any proxy
	// could lose them
	requests, accepted, duplicates atomic.Int64
	batchMu                        sync.Mutex
	batchSizes                     []int
}

type key struct{ sid, secret string }

func newTally(t testing.TB) *tally {
	t.Helper()
	pool, _ := pgtest.NewDB(t)
	box, err := secrets.NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	tl := &tally{store: postgres.New(pool, time.Now), box: box, keys: map[usage.Role]key{}}
	acct, err := tl.store.CreateAccount(t.Context(), "Client Test", false)
	if err != nil {
		t.Fatal(err)
	}
	tl.account = acct.SID
	for _, r := range []usage.Role{usage.RoleAdmin, usage.RoleIngest, usage.RoleFinance} {
		k, secret, err := keys.Create(t.Context(), tl.store, box, acct.SID, r, string(r))
		if err != nil {
			t.Fatal(err)
		}
		tl.keys[r] = key{k.SID, secret}
	}
	tl.srv = httptest.NewServer(tl.handler())
	t.Cleanup(tl.srv.Close)
	tl.cur.Store(tl.srv)
	return tl
}

// restart stops the current replica, its in-flight requests cut off (their
// transactions may commit all the same), and starts a fresh one on the same
// database at another address.
func (tl *tally) restart(t testing.TB) {
	old := tl.cur.Load()
	old.CloseClientConnections()
	old.Close()
	time.Sleep(100 * time.Millisecond)
	srv := httptest.NewServer(tl.handler())
	t.Cleanup(srv.Close)
	tl.cur.Store(srv)
}

// storedEvents counts the account's events in the database.
func (tl *tally) storedEvents(t testing.TB) int64 {
	t.Helper()
	var n int64
	if err := tl.store.Pool().QueryRow(t.Context(), `SELECT count(*) FROM events WHERE account_sid = $1`, tl.account).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// handler is a fresh replica of the API (nothing cached), recording what it
// answers to event posts.
func (tl *tally) handler() http.Handler { return tl.handlerWith(nil) }

// handlerWith is handler on a server whose clock is now (nil: the real one).
func (tl *tally) handlerWith(now func() time.Time) http.Handler {
	api := httpapi.New(httpapi.Config{Store: tl.store, Box: tl.box, Now: now})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/events") {
			api.ServeHTTP(w, r)
			return
		}
		rec := &recorder{ResponseWriter: w}
		api.ServeHTTP(rec, r)
		tl.requests.Add(1)
		var res struct{ Accepted, Duplicates int64 }
		if rec.status == http.StatusOK && json.Unmarshal(rec.body.Bytes(), &res) == nil {
			tl.accepted.Add(res.Accepted)
			tl.duplicates.Add(res.Duplicates)
			tl.batchMu.Lock()
			tl.batchSizes = append(tl.batchSizes, int(res.Accepted+res.Duplicates))
			tl.batchMu.Unlock()
		}
	})
}

func (tl *tally) sizes() []int {
	tl.batchMu.Lock()
	defer tl.batchMu.Unlock()
	return append([]int(nil), tl.batchSizes...)
}

type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(code int) { r.status = code; r.ResponseWriter.WriteHeader(code) }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

// activeUsers reads the month's active users as the report API gives them.
func (tl *tally) activeUsers(t testing.TB, month string) int64 {
	t.Helper()
	k := tl.keys[usage.RoleFinance]
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, tl.cur.Load().URL+"/v1/accounts/"+tl.account+"/reports/"+month, nil)
	req.SetBasicAuth(k.sid, k.secret)
	resp, err := tl.cur.Load().Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r struct {
		ActiveUsers *int64 `json:"active_users"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &r) != nil || r.ActiveUsers == nil {
		t.Fatalf("report %s: %d %s", month, resp.StatusCode, b)
	}
	return *r.ActiveUsers
}
