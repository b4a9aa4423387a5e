package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/internal/usage"
)

var october = time.Date(2026, 10, 5, 12, 0, 0, 0, time.UTC)

// newClient starts a client on tl with k and cfg's other fields, closed at
// the end of the test if the test did not.
func newClient(t testing.TB, baseURL string, k key, cfg client.Config) *client.Client {
	t.Helper()
	cfg.BaseURL, cfg.KeySID, cfg.Secret = baseURL, k.sid, k.secret
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Bounded: a test's server may be gone by now.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Close(ctx)
	})
	return c
}

// noLeaks fails the test if goroutines started after ignore are still there.
func noLeaks(t *testing.T, ignore goleak.Option) {
	t.Helper()
	if err := goleak.Find(ignore); err != nil {
		t.Errorf("goroutines left after Close: %v", err)
	}
}

func sendEvent(id, identity string, at time.Time) client.Event {
	return client.Event{ID: id, Activity: "send", Source: "sdk", ServiceSID: "IS1", Identity: identity, OccurredAt: at}
}

// TestTrackFlushExact: events in batches of 100 through the key's own
// account (asked of /v1/me), an id sent twice counted once, and the month's
// active users exactly the identities tracked.
func TestTrackFlushExact(t *testing.T) {
	tl := newTally(t)
	ignore := goleak.IgnoreCurrent()
	c := newClient(t, tl.srv.URL, tl.keys[usage.RoleIngest], client.Config{BatchSize: 100})
	for i := range 1000 {
		if err := c.Track(t.Context(), sendEvent(fmt.Sprintf("e-%d", i), fmt.Sprintf("user-%d@example.com", i%300), october)); err != nil {
			t.Fatal(err)
		}
	}
	// The client's senders run side by side, so batches may commit in any
	// order: tracked again before the first copy committed, an id would
	// count the second copy (someone-else) instead. Flush first, as a
	// backend that resends after a success would.
	if err := c.Flush(t.Context()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	for i := range 50 { // a backend that tracks the same event again
		if err := c.Track(t.Context(), sendEvent(fmt.Sprintf("e-%d", i), "someone-else", october)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(t.Context()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if got, want := c.Stats(), (client.Stats{Accepted: 1000, Duplicates: 50}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	for _, n := range tl.sizes() {
		if n > 100 {
			t.Errorf("a batch of %d events, want at most BatchSize 100", n)
		}
	}
	if err := c.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	noLeaks(t, ignore)

	admin := newClient(t, tl.srv.URL, tl.keys[usage.RoleAdmin], client.Config{AccountSID: tl.account})
	r, err := admin.Report(t.Context(), "2026-10")
	if err != nil {
		t.Fatal(err)
	}
	if r.ActiveUsers != 300 || r.AccountSID != tl.account || r.Month != "2026-10" || r.Status != "provisional" || r.Version != nil {
		t.Errorf("report: %d active users, account %s, month %s, status %s, version %v; want 300, %s, 2026-10, provisional, nil",
			r.ActiveUsers, r.AccountSID, r.Month, r.Status, r.Version, tl.account)
	}
	if len(r.Services) != 1 || r.Services[0].ServiceSID != "IS1" || r.Services[0].ByFirstActivity["send"] != 300 {
		t.Errorf("report services: %+v", r.Services)
	}
}

// TestTrackAssignsUUIDv7: an event without an ID gets a fresh UUIDv7, so two
// identical events without ids are two events, each stored under its id.
func TestTrackAssignsUUIDv7(t *testing.T) {
	tl := newTally(t)
	c := newClient(t, tl.srv.URL, tl.keys[usage.RoleIngest], client.Config{})
	for range 2 {
		if err := c.Track(t.Context(), sendEvent("", "alice", october)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := c.Stats(); got.Accepted != 2 {
		t.Fatalf("Stats() = %+v, want 2 accepted", got)
	}
	k := tl.keys[usage.RoleAdmin]
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, tl.srv.URL+"/v1/accounts/"+tl.account+"/reports/2026-10/users", nil)
	req.SetBasicAuth(k.sid, k.secret)
	resp, err := tl.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var roster struct {
		Users []struct {
			FirstEventID string `json:"first_event_id"`
			Events       int    `json:"events"`
		} `json:"users"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&roster); err != nil || len(roster.Users) != 1 {
		t.Fatalf("roster: %v %+v", err, roster)
	}
	id, err := uuid.Parse(roster.Users[0].FirstEventID)
	if err != nil || id.Version() != 7 {
		t.Errorf("first_event_id %q: %v, version %d; want a UUIDv7", roster.Users[0].FirstEventID, err, id.Version())
	}
	if roster.Users[0].Events != 2 {
		t.Errorf("alice has %d events, want 2", roster.Users[0].Events)
	}
}

// TestTrackValidatesLikeTheServer: every event Track refuses, the server
// refuses too, naming the same field; and Track refuses before sending.
func TestTrackValidatesLikeTheServer(t *testing.T) {
	tl := newTally(t)
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent.Add(1)
		tl.srv.Config.Handler.ServeHTTP(w, r)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, tl.keys[usage.RoleIngest], client.Config{AccountSID: tl.account})
	ok := sendEvent("ok", "alice", october)
	tests := []struct {
		name  string
		edit  func(*client.Event)
		field string
	}{
		{"unknown activity", func(e *client.Event) { e.Activity = "like" }, "activity"},
		{"pair not allowed", func(e *client.Event) { e.Activity, e.Source = "create", "sdk" }, "source"},
		{"unknown source", func(e *client.Event) { e.Source = "web" }, "source"},
		{"no service", func(e *client.Event) { e.ServiceSID = "" }, "service_sid"},
		{"bad service", func(e *client.Event) { e.ServiceSID = "IS 1" }, "service_sid"},
		{"no identity", func(e *client.Event) { e.Identity = "" }, "identity"},
		{"control character", func(e *client.Event) { e.Identity = "al\x07ice" }, "identity"},
		{"C1 control character", func(e *client.Event) { e.Identity = "al\u0085ice" }, "identity"},
		{"invalid UTF-8", func(e *client.Event) { e.Identity = "al\xffice" }, "identity"},
		{"identity too long", func(e *client.Event) { e.Identity = strings.Repeat("é", 129) }, "identity"},
		{"id too long", func(e *client.Event) { e.ID = strings.Repeat("x", 129) }, "id"},
		{"NUL in id", func(e *client.Event) { e.ID = "a\x00b" }, "id"},
		{"actor too long", func(e *client.Event) { e.Actor = strings.Repeat("b", 257) }, "actor"},
		{"future", func(e *client.Event) { e.OccurredAt = time.Now().Add(10 * time.Minute) }, "occurred_at"},
		{"before 2000", func(e *client.Event) { e.OccurredAt = time.Date(1999, 12, 31, 23, 0, 0, 0, time.UTC) }, "occurred_at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ok
			tt.edit(&e)
			before := sent.Load()
			err := c.Track(t.Context(), e)
			var ce *client.Error
			if !errors.As(err, &ce) || ce.Status != http.StatusUnprocessableEntity || len(ce.Errors) == 0 || ce.Errors[0].Field != tt.field {
				t.Fatalf("Track = %v, want a 422 *client.Error naming %s", err, tt.field)
			}
			if sent.Load() != before {
				t.Errorf("Track sent a request for an invalid event")
			}
			// The server's verdict on the same event.
			ev := map[string]string{"id": e.ID, "activity": e.Activity, "source": e.Source, "service_sid": e.ServiceSID,
				"identity": e.Identity, "occurred_at": e.OccurredAt.Format(time.RFC3339Nano)}
			if e.Actor != "" {
				ev["actor"] = e.Actor
			}
			body, _ := json.Marshal(map[string]any{"events": []any{ev}})
			if strings.Contains(tt.name, "UTF-8") { // json.Marshal would mend it
				body = []byte(strings.Replace(string(body), `al\ufffdice`, "al\xffice", 1))
			}
			k := tl.keys[usage.RoleIngest]
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, tl.srv.URL+"/v1/accounts/"+tl.account+"/events", strings.NewReader(string(body)))
			req.SetBasicAuth(k.sid, k.secret)
			req.Header.Set("Content-Type", "application/json")
			resp, err := tl.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(b), `"field":"`+tt.field+`"`) {
				t.Errorf("the server answered %d %s, want 422 naming %s", resp.StatusCode, b, tt.field)
			}
		})
	}
	if err := c.Track(t.Context(), ok); err != nil {
		t.Fatalf("valid event: %v", err)
	}
}

// TestFlushInterval: a batch that does not fill is sent FlushInterval after
// its first event, without a Flush.
func TestFlushInterval(t *testing.T) {
	tl := newTally(t)
	c := newClient(t, tl.srv.URL, tl.keys[usage.RoleIngest], client.Config{AccountSID: tl.account, FlushInterval: 100 * time.Millisecond})
	start := time.Now()
	for i := range 3 {
		if err := c.Track(t.Context(), sendEvent(fmt.Sprint(i), "alice", october)); err != nil {
			t.Fatal(err)
		}
	}
	for c.Stats().Accepted < 3 {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("after 5s: %+v, want the 3 events sent after 100ms", c.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("sent after %s, before FlushInterval", d)
	}
	if got := tl.sizes(); len(got) != 1 || got[0] != 3 {
		t.Errorf("batches %v, want one of 3", got)
	}
}

// TestRefusedBatch: a 4xx that is not worth retrying goes to OnError and to
// the next Flush (and only that one), and the events count as Failed.
func TestRefusedBatch(t *testing.T) {
	tl := newTally(t)
	var onError []error
	var mu sync.Mutex
	c := newClient(t, tl.srv.URL, tl.keys[usage.RoleFinance], client.Config{AccountSID: tl.account,
		OnError: func(err error) { mu.Lock(); onError = append(onError, err); mu.Unlock() }})
	for i := range 5 {
		if err := c.Track(t.Context(), sendEvent(fmt.Sprint(i), "alice", october)); err != nil {
			t.Fatal(err)
		}
	}
	err := c.Flush(t.Context())
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusForbidden || ce.Type != "https://tally.dev/problems/forbidden" {
		t.Fatalf("Flush = %v, want the 403 *client.Error", err)
	}
	if err := c.Flush(t.Context()); err != nil {
		t.Errorf("second Flush = %v, want nil: the error was returned once", err)
	}
	if got, want := c.Stats(), (client.Stats{Failed: 5}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(onError) != 1 || !errors.As(onError[0], &ce) {
		t.Errorf("OnError got %v, want the one 403", onError)
	}
}

// TestServerRefusesSomeEvents: events valid here but refused there (the
// server's clock is an hour behind) are given up on, named by id; the rest
// of their batch is sent again and accepted.
func TestServerRefusesSomeEvents(t *testing.T) {
	tl := newTally(t)
	srv := httptest.NewServer(tl.handlerWith(func() time.Time { return time.Now().Add(-time.Hour) }))
	defer srv.Close()
	c := newClient(t, srv.URL, tl.keys[usage.RoleIngest], client.Config{AccountSID: tl.account})
	for i := range 10 {
		if err := c.Track(t.Context(), sendEvent(fmt.Sprint(i), fmt.Sprint("user-", i), october)); err != nil {
			t.Fatal(err)
		}
		if i == 4 {
			if err := c.Track(t.Context(), sendEvent("now", "late-riser", time.Now())); err != nil {
				t.Fatal(err)
			}
		}
	}
	err := c.Flush(t.Context())
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusUnprocessableEntity || len(ce.Errors) != 1 ||
		ce.Errors[0].EventID != "now" || ce.Errors[0].Field != "occurred_at" || ce.Errors[0].Index != 5 {
		t.Fatalf("Flush = %v (%+v), want a 422 naming event \"now\" at index 5", err, ce)
	}
	if got, want := c.Stats(), (client.Stats{Accepted: 10, Failed: 1}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

// TestBackpressure: Track waits while MaxQueue events are unacknowledged,
// until its context ends, and goes on when room is made.
func TestBackpressure(t *testing.T) {
	tl := newTally(t)
	gate := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-gate
		tl.srv.Config.Handler.ServeHTTP(w, r)
	}))
	defer srv.Close()
	defer func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	}()
	c := newClient(t, srv.URL, tl.keys[usage.RoleIngest], client.Config{AccountSID: tl.account, BatchSize: 5, MaxQueue: 10})
	for i := range 10 {
		if err := c.Track(t.Context(), sendEvent(fmt.Sprint(i), "alice", october)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := c.Track(ctx, sendEvent("11", "bob", october)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Track on a full queue = %v, want it to wait until the deadline", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("Track gave up after %s, before its deadline", d)
	}
	done := make(chan error, 1)
	go func() { done <- c.Track(t.Context(), sendEvent("11", "bob", october)) }()
	select {
	case err := <-done:
		t.Fatalf("Track returned %v while the queue was full", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("Track after room was made: %v", err)
	}
	if err := c.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Stats(), (client.Stats{Accepted: 11}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

// TestClose: Close sends what is queued, Track afterwards is ErrClosed, and
// a Close whose context ends first gives up on the rest and leaves no
// goroutine behind.
func TestClose(t *testing.T) {
	tl := newTally(t)
	t.Run("flushes", func(t *testing.T) {
		ignore := goleak.IgnoreCurrent()
		c := newClient(t, tl.srv.URL, tl.keys[usage.RoleIngest], client.Config{FlushInterval: time.Hour})
		if err := c.Track(t.Context(), sendEvent("c1", "alice", october)); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if c.Stats().Accepted != 1 {
			t.Errorf("Stats() = %+v after Close, want the event accepted", c.Stats())
		}
		if err := c.Track(t.Context(), sendEvent("c2", "alice", october)); !errors.Is(err, client.ErrClosed) {
			t.Errorf("Track after Close = %v, want ErrClosed", err)
		}
		if _, err := c.MintToken(t.Context(), client.TokenRequest{Identity: "a", Chat: &client.ChatGrant{ServiceSID: "IS1"}}); !errors.Is(err, client.ErrClosed) {
			t.Errorf("MintToken after Close = %v, want ErrClosed", err)
		}
		if err := c.Close(t.Context()); !errors.Is(err, client.ErrClosed) {
			t.Errorf("second Close = %v, want ErrClosed", err)
		}
		noLeaks(t, ignore)
	})
	t.Run("gives up when its context ends", func(t *testing.T) {
		stall := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-stall:
			case <-r.Context().Done():
			}
			w.WriteHeader(http.StatusServiceUnavailable)
		}))
		defer srv.Close()
		ignore := goleak.IgnoreCurrent()
		var onError atomic.Int64
		c := newClient(t, srv.URL, tl.keys[usage.RoleIngest], client.Config{AccountSID: tl.account, BatchSize: 2,
			OnError: func(error) { onError.Add(1) }})
		for i := range 7 {
			if err := c.Track(t.Context(), sendEvent(fmt.Sprint(i), "alice", october)); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		if err := c.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close = %v, want the deadline", err)
		}
		if got, want := c.Stats(), (client.Stats{Failed: 7}); got != want {
			t.Errorf("Stats() = %+v, want %+v", got, want)
		}
		if onError.Load() != 4 {
			t.Errorf("OnError called %d times, want once per batch (4)", onError.Load())
		}
		close(stall) // the server's handlers end too; only the client's goroutines count
		noLeaks(t, ignore)
	})
}

// TestConcurrentTrack: many goroutines tracking at once lose nothing and
// count nothing twice.
func TestConcurrentTrack(t *testing.T) {
	tl := newTally(t)
	c := newClient(t, tl.srv.URL, tl.keys[usage.RoleIngest], client.Config{AccountSID: tl.account, BatchSize: 64, MaxQueue: 500})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 400 {
				if err := c.Track(t.Context(), sendEvent(fmt.Sprintf("g%d-%d", g, i), fmt.Sprintf("u%d", i), october)); err != nil {
					t.Error(err)
					return
				}
				if i%100 == 0 {
					if err := c.Flush(t.Context()); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if err := c.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Stats(), (client.Stats{Accepted: 3200}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	if got := tl.activeUsers(t, "2026-10"); got != 400 {
		t.Errorf("active users %d, want 400", got)
	}
}

// TestTokens: a token minted through the client verifies through it, and
// the verification makes the identity active in both granted services; a
// bad token is a *client.Error with its reason.
func TestTokens(t *testing.T) {
	tl := newTally(t)
	c := newClient(t, tl.srv.URL, tl.keys[usage.RoleIngest], client.Config{})
	before := time.Now()
	tok, err := c.MintToken(t.Context(), client.TokenRequest{Identity: "alice@example.com", TTL: 10 * time.Minute,
		Chat: &client.ChatGrant{ServiceSID: "ISchat", EndpointID: "alice-phone"}, Sync: &client.SyncGrant{ServiceSID: "ISsync"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(tok.Token, ".") != 2 || tok.Identity != "alice@example.com" || tok.TTL != 10*time.Minute ||
		tok.ExpiresAt.Before(before.Add(10*time.Minute-time.Second)) || tok.ExpiresAt.After(time.Now().Add(10*time.Minute+time.Second)) {
		t.Errorf("token %+v, want a JWT for alice expiring in 10 minutes", tok)
	}
	v, err := c.VerifyToken(t.Context(), tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	if v.Identity != "alice@example.com" || v.AccountSID != tl.account || v.APIKeySID != tl.keys[usage.RoleIngest].sid ||
		v.Grants.Chat == nil || v.Grants.Chat.ServiceSID != "ISchat" || v.Grants.Chat.EndpointID != "alice-phone" ||
		v.Grants.Sync == nil || v.Grants.Sync.ServiceSID != "ISsync" {
		t.Errorf("verification %+v (chat %+v, sync %+v)", v, v.Grants.Chat, v.Grants.Sync)
	}
	if got := tl.activeUsers(t, time.Now().UTC().Format("2006-01")); got != 2 {
		t.Errorf("active users after one verification with two grants: %d, want 2", got)
	}

	_, err = c.VerifyToken(t.Context(), "not-a-token")
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusUnauthorized || ce.Reason != "malformed" || !strings.HasSuffix(ce.Type, "/invalid-token") {
		t.Errorf("VerifyToken(garbage) = %v, want a 401 *client.Error with reason malformed", err)
	}
	_, err = c.MintToken(t.Context(), client.TokenRequest{Identity: "bob"})
	if !errors.As(err, &ce) || ce.Status != http.StatusUnprocessableEntity {
		t.Errorf("MintToken without a grant = %v, want a 422 *client.Error", err)
	}
}

// TestNewRefusesBadConfig: mistakes in the configuration show at New.
func TestNewRefusesBadConfig(t *testing.T) {
	good := client.Config{BaseURL: "http://127.0.0.1:8080", KeySID: "SK" + strings.Repeat("0", 32), Secret: "s"}
	tests := []struct {
		name string
		edit func(*client.Config)
	}{
		{"no base URL", func(c *client.Config) { c.BaseURL = "" }},
		{"not http", func(c *client.Config) { c.BaseURL = "ftp://x" }},
		{"bad key SID", func(c *client.Config) { c.KeySID = "AC" + strings.Repeat("0", 32) }},
		{"no secret", func(c *client.Config) { c.Secret = "" }},
		{"bad account", func(c *client.Config) { c.AccountSID = "AC1" }},
		{"batch too large", func(c *client.Config) { c.BatchSize = 1001 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.edit(&cfg)
			if c, err := client.New(cfg); err == nil {
				c.Close(t.Context())
				t.Errorf("New(%+v) succeeded", cfg)
			}
		})
	}
}

// TestFullQueueSendsAtOnce: when MaxQueue is below BatchSize, a full queue
// sends what it holds at once instead of waiting FlushInterval.
func TestFullQueueSendsAtOnce(t *testing.T) {
	tl := newTally(t)
	c := newClient(t, tl.srv.URL, tl.keys[usage.RoleIngest], client.Config{AccountSID: tl.account, MaxQueue: 10, FlushInterval: time.Hour})
	start := time.Now()
	for i := range 25 {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := c.Track(ctx, sendEvent(fmt.Sprint("q", i), "alice", october))
		cancel()
		if err != nil {
			t.Fatalf("Track %d: %v", i, err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("25 events through a queue of 10 took %s: the full queue waited for FlushInterval", d)
	}
	if err := c.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Stats(), (client.Stats{Accepted: 25}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}
