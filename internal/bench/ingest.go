package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// Workload is a realistic mix: most events come from returning users (about
// 20 events per user per month), over 8 activities, 2 sources, 3 services
// and 2 months.
type Workload struct {
	Events []usage.Event
}

// NewWorkload generates n events with ids prefixed by prefix.
func NewWorkload(n int, prefix string, seed uint64) Workload {
	rng := rand.New(rand.NewPCG(seed, 42))
	users := max(n/40, 1) // 2 months × ~20 events per user
	months := []time.Time{time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)}
	services := []string{"IS00000000000000000000000000000001", "IS00000000000000000000000000000002", "IS00000000000000000000000000000003"}
	w := Workload{Events: make([]usage.Event, n)}
	for i := range w.Events {
		a := usage.Activities[rng.IntN(8)]
		src := usage.SDK
		if !a.Allows(src) || (a.Allows(usage.REST) && rng.IntN(3) == 0) {
			src = usage.REST
		}
		u := rng.IntN(users)
		m := months[rng.IntN(2)]
		w.Events[i] = usage.Event{
			// Random ids, as backends send (UUIDs, hashes): an index on them
			// takes inserts all over, not at its end.
			ID: fmt.Sprintf("%s-%016x%08x", prefix, rng.Uint64(), i), Activity: a, Source: src,
			ServiceSID: services[u%3], Identity: fmt.Sprintf("user-%07d@example.com", u),
			OccurredAt: m.Add(time.Duration(rng.Int64N(int64(28 * 24 * time.Hour)))),
			EndpointID: fmt.Sprintf("device-%d", u%5),
		}
	}
	return w
}

type wireEvent struct {
	ID         string `json:"id"`
	Activity   string `json:"activity"`
	Source     string `json:"source"`
	ServiceSID string `json:"service_sid"`
	Identity   string `json:"identity"`
	OccurredAt string `json:"occurred_at"`
	EndpointID string `json:"endpoint_id,omitempty"`
}

func wire(e usage.Event) wireEvent {
	return wireEvent{e.ID, string(e.Activity), string(e.Source), e.ServiceSID, e.Identity, e.OccurredAt.Format(time.RFC3339Nano), e.EndpointID}
}

// Bodies renders the workload as JSON batches of batch events, or as NDJSON
// bodies of batch lines.
func (w Workload) Bodies(batch int, ndjson bool) [][]byte {
	var out [][]byte
	for i := 0; i < len(w.Events); i += batch {
		chunk := w.Events[i:min(i+batch, len(w.Events))]
		var b bytes.Buffer
		if ndjson {
			enc := json.NewEncoder(&b)
			for _, e := range chunk {
				enc.Encode(wire(e))
			}
		} else {
			ws := make([]wireEvent, len(chunk))
			for j, e := range chunk {
				ws[j] = wire(e)
			}
			json.NewEncoder(&b).Encode(map[string]any{"events": ws})
		}
		out = append(out, b.Bytes())
	}
	return out
}

// Post sends bodies from clients concurrent clients and returns the
// elapsed time and the summed answers.
func (e *Env) Post(ctx context.Context, bodies [][]byte, ndjson bool, clients int) (time.Duration, [3]int64, error) {
	ct := "application/json"
	if ndjson {
		ct = "application/x-ndjson"
	}
	type job struct {
		body []byte
		acct Account
	}
	work := make(chan job)
	var mu sync.Mutex
	var totals [3]int64
	var firstErr error
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				body, a := j.body, j.acct
				req, _ := http.NewRequestWithContext(ctx, "POST", e.BaseURL+"/v1/accounts/"+a.SID+"/events", bytes.NewReader(body))
				req.SetBasicAuth(a.KeySID, a.Secret)
				req.Header.Set("Content-Type", ct)
				resp, err := client.Do(req)
				var res struct{ Accepted, Duplicates, Late int64 }
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d: %.200s", resp.StatusCode, b)
					} else {
						err = json.Unmarshal(b, &res)
					}
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				totals[0] += res.Accepted
				totals[1] += res.Duplicates
				totals[2] += res.Late
				mu.Unlock()
			}
		}()
	}
	accts := e.accounts()
	for i, b := range bodies {
		work <- job{b, accts[i%len(accts)]}
	}
	close(work)
	wg.Wait()
	return time.Since(start), totals, firstErr
}

// Reset empties the event tables between runs.
func (e *Env) Reset(ctx context.Context) error {
	_, err := e.Pool.Exec(ctx, `TRUNCATE events, rollup_pending, month_users, users, account_months`)
	return err
}

// Fold folds what the server's background fold has not yet folded into the
// rollup, as every read of it does, and returns how long that took: after
// the last body is acknowledged, the time until the rollup holds it all.
func (e *Env) Fold(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	_, err := postgres.New(e.Pool, nil).FoldRollup(ctx, "")
	return time.Since(start), err
}

// Counts fingerprints the rollup, folded first: (active users, summed
// events).
func (e *Env) Counts(ctx context.Context) (int64, int64, error) {
	if _, err := e.Fold(ctx); err != nil {
		return 0, 0, err
	}
	var users, events int64
	err := e.Pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(events), 0) FROM month_users`).Scan(&users, &events)
	return users, events, err
}

// DatabaseSize is the size of the current database in bytes.
func (e *Env) DatabaseSize(ctx context.Context) (int64, error) {
	var n int64
	err := e.Pool.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&n)
	return n, err
}

// RawCopy is the practical ceiling: COPY of the same rows, in chunks of
// batch from clients connections, into a table with the same idempotency
// index and no rollup.
func (e *Env) RawCopy(ctx context.Context, w Workload, batch, clients int) (time.Duration, error) {
	if _, err := e.Pool.Exec(ctx, `DROP TABLE IF EXISTS bench_copy;
		CREATE TABLE bench_copy (account_sid text COLLATE "C" NOT NULL, event_id text COLLATE "C" NOT NULL,
		  occurred_at timestamptz NOT NULL, activity text NOT NULL, source text NOT NULL, service_sid text NOT NULL,
		  identity text NOT NULL, endpoint_id text, received_at timestamptz NOT NULL,
		  PRIMARY KEY (account_sid, event_id))`); err != nil {
		return 0, err
	}
	if e.Citus {
		// The same key and shards as events: each chunk is routed to the
		// worker holding its account.
		if _, err := e.Pool.Exec(ctx, `SELECT create_distributed_table('bench_copy', 'account_sid', colocate_with => 'events')`); err != nil {
			return 0, fmt.Errorf("distribute bench_copy: %w", err)
		}
	}
	accts := e.accounts()
	type job struct {
		events []usage.Event
		sid    string
	}
	defer e.Pool.Exec(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS bench_copy`)
	work := make(chan job)
	errc := make(chan error, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				chunk, sid := j.events, j.sid
				now := time.Now()
				_, err := e.Pool.CopyFrom(ctx, pgx.Identifier{"bench_copy"},
					[]string{"account_sid", "event_id", "occurred_at", "activity", "source", "service_sid", "identity", "endpoint_id", "received_at"},
					pgx.CopyFromSlice(len(chunk), func(i int) ([]any, error) {
						ev := chunk[i]
						return []any{sid, ev.ID, ev.OccurredAt, string(ev.Activity), string(ev.Source), ev.ServiceSID, ev.Identity, ev.EndpointID, now}, nil
					}))
				if err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	for i := 0; i < len(w.Events); i += batch {
		work <- job{w.Events[i:min(i+batch, len(w.Events))], accts[(i/batch)%len(accts)].SID}
	}
	close(work)
	wg.Wait()
	close(errc)
	return time.Since(start), <-errc
}
