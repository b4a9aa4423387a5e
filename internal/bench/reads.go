package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tallyhq/tally/internal/usage"
)

// Percentile is the p-th percentile (0 < p ≤ 100) of xs by the
// nearest-rank method: the smallest x with at least p % of xs at or below
// it. 0 for no xs.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// StreamBody is JSON body number seq of a stream of new events for one
// month: n events of users users (user-0 … user-<users-1>, as LoadMonth
// names them), ids unique to prefix and seq, so each body is all new.
func StreamBody(prefix string, seq int64, n, users int, m usage.Month) []byte {
	rng := rand.New(rand.NewPCG(uint64(seq), 7))
	services := []string{"IS00000000000000000000000000000000", "IS00000000000000000000000000000001", "IS00000000000000000000000000000002"}
	start := m.Start()
	span := m.End().Sub(start) - time.Second
	var b bytes.Buffer
	b.WriteString(`{"events":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		a := usage.Activities[rng.IntN(8)]
		src := usage.SDK
		if !a.Allows(src) || (a.Allows(usage.REST) && rng.IntN(3) == 0) {
			src = usage.REST
		}
		u := rng.IntN(users)
		at := start.Add(time.Duration(rng.Int64N(int64(span)))).UTC().Format(time.RFC3339)
		fmt.Fprintf(&b, `{"id":"%s-%d-%d","activity":"%s","source":"%s","service_sid":"%s","identity":"user-%d","occurred_at":"%s","endpoint_id":"device-%d"}`,
			prefix, seq, i, a, src, services[(u%3)], u, at, u%5)
	}
	b.WriteString("]}")
	return b.Bytes()
}

// Ingester posts new events for one account from clients connections as
// fast as the server takes them, until Stop.
type Ingester struct {
	accepted atomic.Int64
	err      error
	errOnce  sync.Once
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	start    time.Time
	elapsed  time.Duration
}

// Ingest starts an Ingester of bodies of 1000 events of users users into
// account a, month m; prefix makes the event ids of this stream its own.
func (e *Env) Ingest(ctx context.Context, a Account, m usage.Month, users, clients int, prefix string) *Ingester {
	ctx, cancel := context.WithCancel(ctx)
	in := &Ingester{cancel: cancel, start: time.Now()}
	var seq atomic.Int64
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	for range clients {
		in.wg.Go(func() {
			for ctx.Err() == nil {
				body := StreamBody(prefix, seq.Add(1), 1000, users, m)
				req, _ := http.NewRequestWithContext(ctx, "POST", e.BaseURL+"/v1/accounts/"+a.SID+"/events", bytes.NewReader(body))
				req.SetBasicAuth(a.KeySID, a.Secret)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						in.fail(err)
					}
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					in.fail(fmt.Errorf("ingest: status %d: %.200s", resp.StatusCode, b))
					return
				}
				in.accepted.Add(1000)
			}
		})
	}
	return in
}

func (in *Ingester) fail(err error) { in.errOnce.Do(func() { in.err = err }) }

// Stop ends the ingestion and returns the events per second it reached.
func (in *Ingester) Stop() (float64, error) {
	in.cancel()
	in.wg.Wait()
	in.elapsed = time.Since(in.start)
	return float64(in.accepted.Load()) / in.elapsed.Seconds(), in.err
}

// Latencies are the durations of the reads of one kind, in seconds.
type Latencies []float64

// ReadTimeout bounds one read: a read that takes longer is abandoned and
// counted at this latency (the percentiles above it are then "at least").
const ReadTimeout = 30 * time.Second

// Read sends GET path (with account a's key) back to back for d and
// returns each request's latency, and how many failed: a status other than
// 200 (the first one's text in err) or no answer within ReadTimeout. A
// failed read counts in the latencies too.
func (e *Env) Read(ctx context.Context, a Account, path string, d time.Duration) (lat Latencies, failed int, err error) {
	deadline := time.Now().Add(d)
	client := &http.Client{Timeout: ReadTimeout}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		start := time.Now()
		req, _ := http.NewRequestWithContext(ctx, "GET", e.BaseURL+path, nil)
		req.SetBasicAuth(a.KeySID, a.Secret)
		resp, rerr := client.Do(req)
		if rerr == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				rerr = fmt.Errorf("GET %s: status %d: %.200s", path, resp.StatusCode, b)
			}
		}
		lat = append(lat, time.Since(start).Seconds())
		if rerr != nil {
			failed++
			if err == nil {
				err = rerr
			}
		}
	}
	return lat, failed, err
}

// WatchPending samples the pending events of an account (what its reads
// merge in) every 200 ms until the returned function is called, which
// returns the most it saw.
func (e *Env) WatchPending(ctx context.Context, accountSID string) func() int64 {
	ctx, cancel := context.WithCancel(ctx)
	var most atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			var n int64
			if err := e.Pool.QueryRow(ctx, `SELECT count(*) FROM rollup_pending WHERE account_sid = $1`, accountSID).Scan(&n); err == nil && n > most.Load() {
				most.Store(n)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 { cancel(); <-done; return most.Load() }
}
