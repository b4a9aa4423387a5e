package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tallyhq/tally/internal/usage"
)

// Coalescer records small bodies of events posted concurrently for one
// account (a token verification brings one or two) in shared transactions:
// group commit. Without it every verification is a durable transaction of
// its own, and the rate of verifications is the rate of commits.
//
// No goroutine runs in the background. The first caller of a group is its
// leader: it waits until its account has no flush in flight and a flush
// slot is free, while later callers join the group; then it records the
// whole group in one transaction and wakes them.
// Each caller returns only after that commit, so nothing is acknowledged
// before it is durable; a group is all or nothing, like a body.
type Coalescer struct {
	store *Store
	// Observe, when set, is told what each flush recorded.
	Observe func(usage.IngestResult)
	// MaxEvents caps a group; a full group is flushed as it is and later
	// callers start the next one.
	MaxEvents int
	slots     chan struct{} // flushes in progress; their number bounds the connections used
	mu        sync.Mutex
	open      map[string]*group      // per account, the group callers join
	flushing  map[string]*sync.Mutex // per account, held by the flush in flight
}

type group struct {
	events []usage.Event
	done   chan struct{}
	err    error
}

// flushTimeout bounds one flush: the leader's own request may have gone,
// the followers' may not.
const flushTimeout = 15 * time.Second

// NewCoalescer records through s, with at most flushes transactions in
// flight at once, one per account: while an account's flush runs, its next
// group gathers.
func NewCoalescer(s *Store, flushes int) *Coalescer {
	return &Coalescer{store: s, MaxEvents: 1000, slots: make(chan struct{}, max(flushes, 1)),
		open: make(map[string]*group), flushing: make(map[string]*sync.Mutex)}
}

// Record stores events (already validated) for an account and returns after
// they are committed, together with the other events of its group.
func (c *Coalescer) Record(ctx context.Context, accountSID string, events []usage.Event) error {
	c.mu.Lock()
	g := c.open[accountSID]
	leader := g == nil || len(g.events)+len(events) > c.MaxEvents
	if leader {
		g = &group{done: make(chan struct{})}
		c.open[accountSID] = g
	}
	g.events = append(g.events, events...)
	flushing := c.flushing[accountSID]
	if flushing == nil {
		flushing = new(sync.Mutex)
		c.flushing[accountSID] = flushing
	}
	c.mu.Unlock()

	if !leader {
		select {
		case <-g.done:
			return g.err
		case <-ctx.Done():
			// The group may still commit; a retry is then a duplicate.
			return ctx.Err()
		}
	}
	flushing.Lock()
	defer flushing.Unlock()
	c.slots <- struct{}{}
	defer func() { <-c.slots }()
	c.mu.Lock()
	if c.open[accountSID] == g {
		delete(c.open, accountSID) // closed to joiners from here on
	}
	c.mu.Unlock()

	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
	defer cancel()
	res, err := c.store.RecordEvents(fctx, accountSID, &usage.EventList{Events: g.events})
	if err == nil && c.Observe != nil {
		c.Observe(res)
	}
	if err != nil {
		err = fmt.Errorf("group of %d events: %w", len(g.events), err)
	}
	g.err = err
	close(g.done)
	return err
}
