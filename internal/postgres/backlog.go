package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// An account's pending events are what every read of it merges in
// (live.go), so their number is what a read costs while the account
// ingests. The background folds keep it small while they keep up; an
// account ingesting faster than they fold (a backfill, clients at full
// speed) would otherwise grow it without bound, and every read of the
// account with it. So a body of an account whose pending events are over
// the bound first folds them, in its own request: ingestion slows down to
// the pace of the fold, and a read merges about the bound at most (plus the
// bodies in flight) however fast the account sends.
//
// The fold runs before the body's transaction and holds one connection at
// a time (one part after the other), so a body waiting to fold holds no
// lock and starves no other request of connections; bodies of one account
// that find it over the bound at once take the parts in turn, and those
// after the first fold only what came meanwhile.

// DefaultMaxPending is the bound on an account's pending events that New
// sets (TALLY_MAX_PENDING). The backlog peaks at the bound and the bodies
// in flight. tally bench reads, one account of 30 000 users ingesting at
// full speed from 4 clients on 2 cores, PostgreSQL, medians of 3 runs:
// report p50 / p99 0.53 / 0.81 s at 2 500 and 0.75 / 1.28 s at 5 000,
// ingest 10 900 and 10 200 events/s (unbounded, an earlier single run:
// 3.8 / 4.9 s, 14 700 events/s). Ingest spread over accounts did not slow
// (docs/scale-out.md).
const DefaultMaxPending = 2_500

// backlogProbeEvery (Store.backlogEvery) is how long a probe of an
// account's backlog may stand, while what this process recorded for the
// account since keeps it under half the bound: an account sending many small
// bodies (token verifications) is probed a few times a second, not once per
// body, and one sending fast nears the bound only through bodies that each
// probe. The time bounds what other replicas add unseen.
const backlogProbeEvery = 250 * time.Millisecond

// backlogProbe counts an account's pending events up to $2 (an index range
// scan of at most that many entries).
const backlogProbe = `SELECT count(*) FROM (SELECT 1 FROM rollup_pending WHERE account_sid = $1 LIMIT $2) AS p`

// backlog is the last probe of one account's pending events: when, what it
// found, and what this process recorded for the account since.
type backlog struct {
	mu       sync.Mutex
	at       time.Time
	n, since int64
}

// SetMaxPending bounds each account's pending events (see DefaultMaxPending);
// 0 or less removes the bound. Call it before the store is in use.
func (s *Store) SetMaxPending(n int64) { s.maxPending = n }

// makeRoom folds the account's pending events first when they are over
// the bound.
func (s *Store) makeRoom(ctx context.Context, accountSID string) error {
	if s.maxPending <= 0 {
		return nil
	}
	v, _ := s.backlogs.LoadOrStore(accountSID, &backlog{})
	b := v.(*backlog)
	b.mu.Lock()
	if time.Since(b.at) < s.backlogEvery && b.n+b.since <= s.maxPending/2 {
		b.mu.Unlock()
		return nil
	}
	var n int64
	if err := s.pool.QueryRow(ctx, backlogProbe, accountSID, s.maxPending+1).Scan(&n); err != nil {
		b.mu.Unlock()
		return translate(fmt.Errorf("probe the pending events of %s: %w", accountSID, err))
	}
	b.at, b.n, b.since = time.Now(), n, 0
	b.mu.Unlock()
	if n <= s.maxPending {
		return nil
	}
	for part := range foldParts {
		if _, err := s.foldPart(ctx, accountSID, part); err != nil {
			return fmt.Errorf("fold before a body (backlog over %d): %w", s.maxPending, err)
		}
	}
	return nil
}

// recorded counts events this process added to an account's backlog.
func (s *Store) recorded(accountSID string, events int64) {
	if v, ok := s.backlogs.Load(accountSID); ok {
		b := v.(*backlog)
		b.mu.Lock()
		b.since += events
		b.mu.Unlock()
	}
}

// Backlog is every account's pending events: how many, and how long ago
// the oldest was received (0 with none), for the metrics.
func (s *Store) Backlog(ctx context.Context) (events int64, oldest time.Duration, err error) {
	var first *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT count(*), min(received_at) FROM rollup_pending`).Scan(&events, &first); err != nil {
		return 0, 0, translate(fmt.Errorf("pending events: %w", err))
	}
	if first != nil {
		oldest = max(s.now().Sub(*first), 0)
	}
	return events, oldest, nil
}
