package client_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/internal/usage"
)

// fault is what the proxy does to one event post.
type fault int

const (
	pass         fault = iota
	dropAnswer         // forward, let the server commit, then reset instead of answering
	resetRequest       // reset before the server sees the request
	unavailable        // 503 with Retry-After: 1
	rateLimited        // 429 with Retry-After: 1
)

// faultProxy stands between the client and tally and misbehaves on event
// posts, at random but reproducibly from a seed. While the tally behind it
// restarts, connections are reset.
type faultProxy struct {
	t   *testing.T
	tl  *tally
	srv *httptest.Server
	rp  *httputil.ReverseProxy
	tr  *http.Transport

	mu     sync.Mutex
	rnd    *rand.Rand
	posts  int
	counts map[fault]int
}

func newFaultProxy(t *testing.T, tl *tally, seed uint64) *faultProxy {
	p := &faultProxy{t: t, tl: tl, rnd: rand.New(rand.NewPCG(seed, seed)), counts: map[fault]int{}}
	p.tr = http.DefaultTransport.(*http.Transport).Clone()
	p.rp = &httputil.ReverseProxy{
		Transport: p.tr,
		Rewrite: func(r *httputil.ProxyRequest) {
			u, _ := url.Parse(tl.cur.Load().URL)
			r.SetURL(u)
		},
		// The server is down (restarting): the client sees what it would see
		// without a proxy, a connection that ends without an answer.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) { reset(w) },
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *faultProxy) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/events") {
		p.rp.ServeHTTP(w, r)
		return
	}
	p.mu.Lock()
	p.posts++
	var f fault
	switch x := p.rnd.IntN(100); {
	case x < 15:
		f = dropAnswer
	case x < 25:
		f = resetRequest
	case x < 32:
		f = unavailable
	case x < 37:
		f = rateLimited
	}
	p.counts[f]++
	p.mu.Unlock()

	switch f {
	case resetRequest:
		reset(w)
	case unavailable, rateLimited:
		status := map[fault]int{unavailable: http.StatusServiceUnavailable, rateLimited: http.StatusTooManyRequests}[f]
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"type":"https://tally.dev/problems/x","title":%q,"status":%d}`, http.StatusText(status), status)
	case dropAnswer:
		rec := httptest.NewRecorder()
		p.rp.ServeHTTP(rec, r) // the server answers only after commit
		reset(w)
	default:
		p.rp.ServeHTTP(w, r)
	}
}

// reset ends the client's connection with a TCP reset, without an answer.
func reset(w http.ResponseWriter) {
	h, ok := w.(http.Hijacker)
	if !ok {
		return // a recorder in front of a lost answer: the caller resets
	}
	conn, _, err := h.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

// TestFaultsExact: through a proxy that drops answers after commit, resets
// connections and answers 503 and 429 with Retry-After, while the server is
// restarted twice mid-stream, the counts after Close are exact: every event
// accepted once, the resent ones duplicates, and the month's active users
// exactly the identities tracked. Each seed is another sequence of faults.
func TestFaultsExact(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			tl := newTally(t)
			p := newFaultProxy(t, tl, seed)
			ignore := goleak.IgnoreCurrent()
			c, err := client.New(client.Config{BaseURL: p.srv.URL, KeySID: tl.keys[usage.RoleIngest].sid, Secret: tl.keys[usage.RoleIngest].secret,
				BatchSize: 250, FlushInterval: 20 * time.Millisecond, MaxQueue: 2000,
				OnError: func(err error) { t.Errorf("OnError: %v", err) }})
			if err != nil {
				t.Fatal(err)
			}
			const events, identities = 12_000, 3_000
			var restarts sync.WaitGroup
			users := map[string]bool{} // the (service, identity) of each id's first event: the one stored
			for i := range events {
				id := fmt.Sprintf("evt-%d", i)
				if i%10 == 9 { // the backend's own retries: an id tracked again
					id = fmt.Sprintf("evt-%d", i-1)
				}
				e := client.Event{ID: id, Activity: "send", Source: "sdk", ServiceSID: fmt.Sprintf("IS%d", i%2),
					Identity: fmt.Sprintf("user-%d", i%identities), OccurredAt: october.Add(time.Duration(i) * time.Second)}
				if err := c.Track(t.Context(), e); err != nil {
					t.Fatal(err)
				}
				if i%10 != 9 {
					users[e.ServiceSID+"/"+e.Identity] = true
				}
				if i == events/3 || i == 2*events/3 {
					restarts.Go(func() { tl.restart(t) })
				}
			}
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			if err := c.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			restarts.Wait()

			// Every event tracked is acknowledged, as accepted or as a
			// duplicate: a batch whose answer was lost and that was sent
			// again counts as duplicates, so Accepted alone may be less than
			// what the database holds; the database holds each id once.
			const distinct = events - events/10
			st := c.Stats()
			if st.Accepted+st.Duplicates != events || st.Failed != 0 || st.Late != 0 || st.Accepted > distinct {
				t.Errorf("Stats() = %+v, want %d acknowledged (at most %d accepted), none failed", st, events, distinct)
			}
			if got := tl.storedEvents(t); got != distinct {
				t.Errorf("the database holds %d events, want %d", got, distinct)
			}
			if got := tl.activeUsers(t, "2026-10"); got != int64(len(users)) {
				t.Errorf("active users %d, want %d", got, len(users))
			}
			p.mu.Lock()
			t.Logf("%d posts through the proxy: %d passed, %d answers dropped after commit, %d reset, %d 503, %d 429; client: %+v; server answered %d accepted, %d duplicates",
				p.posts, p.counts[pass], p.counts[dropAnswer], p.counts[resetRequest], p.counts[unavailable], p.counts[rateLimited],
				st, tl.accepted.Load(), tl.duplicates.Load())
			if p.counts[dropAnswer] == 0 || p.counts[resetRequest] == 0 || p.counts[unavailable] == 0 || p.counts[rateLimited] == 0 {
				t.Errorf("some fault never happened: %v", p.counts)
			}
			p.mu.Unlock()
			if st.Duplicates <= events-distinct {
				t.Errorf("%d duplicates, no more than the backend's own %d: no dropped answer was sent again", st.Duplicates, events-distinct)
			}

			// Only the client's goroutines count: stop the test's servers.
			p.srv.Close()
			p.tr.CloseIdleConnections()
			tl.cur.Load().Close()
			noLeaks(t, ignore)
		})
	}
}

// TestRetryAfterHonoured: after a 503 or 429 with Retry-After: 1, the batch
// is not sent again for a second.
func TestRetryAfterHonoured(t *testing.T) {
	tl := newTally(t)
	var mu sync.Mutex
	var times []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		n := len(times)
		mu.Unlock()
		switch n {
		case 1:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			tl.srv.Config.Handler.ServeHTTP(w, r)
		}
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, tl.keys[usage.RoleIngest], client.Config{AccountSID: tl.account})
	if err := c.Track(t.Context(), sendEvent("r1", "alice", october)); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(times) != 3 || c.Stats().Accepted != 1 {
		t.Fatalf("%d requests, %+v; want 3 and the event accepted", len(times), c.Stats())
	}
	for i := 1; i < 3; i++ {
		if d := times[i].Sub(times[i-1]); d < time.Second {
			t.Errorf("retry %d came %s after a Retry-After of 1s", i, d)
		}
	}
}
