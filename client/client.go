package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/tallyhq/tally/internal/usage"
)

// Limits and defaults of a Config.
const (
	// MaxBatchSize is the most events one request carries (§4).
	MaxBatchSize = 1000
	// DefaultFlushInterval is how long the first event of a batch waits for
	// others before the batch is sent anyway.
	DefaultFlushInterval = time.Second
	// DefaultMaxQueue is how many events may wait unacknowledged before
	// Track waits.
	DefaultMaxQueue = 100_000
)

const (
	// senders is how many batches are in flight at once: enough that one
	// slow batch does not stall the others, few enough not to crowd a
	// small server.
	senders = 4
	// maxBody keeps a batch under the server's 1 MiB limit for JSON bodies,
	// with room for the envelope.
	maxBody = 1<<20 - 1024
	// minBackgroundRetry is how long a batch is retried with nobody waiting
	// for it, before it is given up on.
	minBackgroundRetry = time.Minute
)

// Config is what a Client is built from. BaseURL, KeySID and Secret are
// required; every other field has a default.
type Config struct {
	// BaseURL is where tally answers, e.g. https://tally.example.com.
	BaseURL string
	// KeySID and Secret are an API key of role ingest or admin.
	KeySID, Secret string
	// AccountSID is the account events are posted to and tokens minted
	// for. Default: the key's own account, asked of the server once.
	AccountSID string
	// BatchSize is the most events per request: default and maximum 1000.
	BatchSize int
	// FlushInterval is how long a batch's first event waits for the batch
	// to fill before it is sent anyway. Default 1s.
	FlushInterval time.Duration
	// MaxQueue is how many events may be queued or in flight before Track
	// waits for room. Default 100 000.
	MaxQueue int
	// HTTPClient sends the requests. Default: a client of its own, with
	// enough idle connections for the concurrent senders.
	HTTPClient *http.Client
	// OnError is told of events that will never be accepted: a batch the
	// server refused (a *Error), or one given up on after retries. It is
	// called from the client's own goroutines and must not block for long,
	// nor call Flush or Close, which wait for those goroutines.
	OnError func(error)
}

// Client sends a backend's events to tally in batches, mints and verifies
// access tokens and reads reports. It is safe for concurrent use. Close it
// to send what is queued and stop its goroutines.
type Client struct {
	cfg     Config
	base    string // BaseURL without a trailing slash
	hc      *http.Client
	ownedTr *http.Transport // closed on Close when the client made it

	accountSem chan struct{} // held while the key's account is asked for
	account    string

	mu       sync.Mutex
	wake     *sync.Cond // senders wait on it for ready batches
	cur      *batch     // the batch being filled, or nil
	ready    []*batch   // sealed, waiting for a sender
	open     map[*batch]struct{}
	queued   int           // events tracked and not yet acknowledged or given up on
	room     chan struct{} // closed and replaced whenever queued drops
	closed   bool          // Track refuses
	stopping bool          // senders exit once ready is empty
	errs     []error       // for the next Flush

	abort     context.Context // ends every request and backoff when Close gives up
	abortFunc context.CancelFunc
	wg        sync.WaitGroup

	accepted, duplicates, late, failed atomic.Int64
}

// batch is a request's worth of events and what waits for it.
type batch struct {
	events []usage.Event
	n      int // events tracked into the batch, whatever became of them
	bytes  int
	timer  *time.Timer
	done   chan struct{}
	// waiters counts the Flush calls waiting for the batch (under Client.mu):
	// while there are some, the batch is retried past minBackgroundRetry.
	waiters int
}

// New checks cfg and starts a client. It does not call the server: a wrong
// key shows at the first request (OnError, Flush or the call's error).
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tally client: BaseURL %q is not an http(s) URL", cfg.BaseURL)
	}
	if !usage.IsKeySID(cfg.KeySID) {
		return nil, fmt.Errorf("tally client: KeySID %q is not an API key SID (SK and 32 hex digits)", cfg.KeySID)
	}
	if cfg.Secret == "" {
		return nil, errors.New("tally client: Secret is required")
	}
	if cfg.AccountSID != "" && !usage.IsAccountSID(cfg.AccountSID) {
		return nil, fmt.Errorf("tally client: AccountSID %q is not an account SID (AC and 32 hex digits)", cfg.AccountSID)
	}
	switch {
	case cfg.BatchSize < 0 || cfg.BatchSize > MaxBatchSize:
		return nil, fmt.Errorf("tally client: BatchSize %d: want 1 to %d", cfg.BatchSize, MaxBatchSize)
	case cfg.BatchSize == 0:
		cfg.BatchSize = MaxBatchSize
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = DefaultMaxQueue
	}
	c := &Client{cfg: cfg, base: strings.TrimRight(cfg.BaseURL, "/"), hc: cfg.HTTPClient,
		account: cfg.AccountSID, accountSem: make(chan struct{}, 1), open: map[*batch]struct{}{}, room: make(chan struct{})}
	if c.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 2 * senders
		c.ownedTr = tr
		c.hc = &http.Client{Transport: tr}
	}
	c.wake = sync.NewCond(&c.mu)
	c.abort, c.abortFunc = context.WithCancel(context.Background())
	for range senders {
		c.wg.Go(c.sender)
	}
	return c, nil
}

// Track validates e and queues it for sending. An event the server would
// refuse is returned at once as a *Error (Status 422) and not queued. An
// empty ID gets a fresh UUIDv7 here, so that every retry of the event is
// the same event to the server; a zero OccurredAt becomes now. When MaxQueue
// events are waiting, Track waits for room until ctx ends.
func (c *Client) Track(ctx context.Context, e Event) error {
	now := time.Now()
	if e.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("tally client: event id: %w", err)
		}
		e.ID = id.String()
	}
	if e.OccurredAt.IsZero() {
		e.OccurredAt = now
	}
	ev := usage.Event{ID: e.ID, Activity: usage.Activity(e.Activity), Source: usage.Source(e.Source),
		ServiceSID: e.ServiceSID, Identity: e.Identity, OccurredAt: e.OccurredAt.UTC(),
		Actor: e.Actor, ChannelSID: e.ChannelSID, EndpointID: e.EndpointID}
	if errs := ev.Validate(0, now, nil); len(errs) > 0 {
		return invalidEvent(ev.ID, errs)
	}
	size := encodedSize(&ev)

	c.mu.Lock()
	for {
		if c.closed {
			c.mu.Unlock()
			return ErrClosed
		}
		if c.queued < c.cfg.MaxQueue {
			break
		}
		// The queue is full: what is waiting goes now, not FlushInterval
		// later, so that room is made as soon as the server allows.
		c.sealLocked()
		room := c.room
		c.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return fmt.Errorf("tally client: queue full (%d events): %w", c.cfg.MaxQueue, ctx.Err())
		}
		c.mu.Lock()
	}
	if c.cur != nil && c.cur.bytes+size > maxBody {
		c.sealLocked()
	}
	if c.cur == nil {
		b := &batch{events: make([]usage.Event, 0, min(c.cfg.BatchSize, 64)), done: make(chan struct{})}
		b.timer = time.AfterFunc(c.cfg.FlushInterval, func() { c.seal(b) })
		c.cur = b
		c.open[b] = struct{}{}
	}
	c.cur.events = append(c.cur.events, ev)
	c.cur.bytes += size
	c.cur.n++
	c.queued++
	if len(c.cur.events) >= c.cfg.BatchSize {
		c.sealLocked()
	}
	c.mu.Unlock()
	return nil
}

// invalidEvent is the *Error the server would answer for one invalid event.
func invalidEvent(id string, errs []usage.FieldError) *Error {
	e := &Error{Status: http.StatusUnprocessableEntity, Type: "https://tally.dev/problems/validation",
		Title: "Validation failed", Detail: "checked before sending: " + (&usage.ValidationError{Errors: errs}).Error()}
	for _, fe := range errs {
		e.Errors = append(e.Errors, FieldError{Index: fe.Index, Field: fe.Field, Message: fe.Message, EventID: id})
	}
	return e
}

// encodedSize bounds the bytes an event takes in a JSON body: its fields'
// bytes, escapes counted at their longest, and the members' names.
func encodedSize(e *usage.Event) int {
	n := 200 // member names, quotes, commas, occurred_at
	for _, s := range [...]string{e.ID, string(e.Activity), string(e.Source), e.ServiceSID, e.Identity, e.Actor, e.ChannelSID, e.EndpointID} {
		for i := 0; i < len(s); i++ {
			switch c := s[i]; {
			case c < 0x20:
				n += 6
			case c == '"', c == '\\':
				n += 2
			case c == 0xE2: // may start U+2028 or U+2029, written \u2028
				n += 4
			default:
				n++
			}
		}
	}
	return n
}

// seal hands b to the senders if it is still the batch being filled: the
// timer of a batch that filled up first has nothing to do.
func (c *Client) seal(b *batch) {
	c.mu.Lock()
	if c.cur == b {
		c.sealLocked()
	}
	c.mu.Unlock()
}

func (c *Client) sealLocked() {
	b := c.cur
	if b == nil {
		return
	}
	c.cur = nil
	b.timer.Stop()
	c.ready = append(c.ready, b)
	c.wake.Signal()
}

// Flush sends what is queued and waits until every event tracked before it
// is acknowledged or given up on, or until ctx ends. It returns the errors
// of the events given up on since the previous Flush, ctx's error, or nil.
func (c *Client) Flush(ctx context.Context) error {
	c.mu.Lock()
	c.sealLocked()
	waiting := make([]*batch, 0, len(c.open))
	for b := range c.open {
		b.waiters++
		waiting = append(waiting, b)
	}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		for _, b := range waiting {
			b.waiters--
		}
		c.mu.Unlock()
	}()
	for _, b := range waiting {
		select {
		case <-b.done:
		case <-ctx.Done():
			return fmt.Errorf("tally client: flush: %w", ctx.Err())
		}
	}
	c.mu.Lock()
	errs := c.errs
	c.errs = nil
	c.mu.Unlock()
	return errors.Join(errs...)
}

// Close flushes, as Flush(ctx), then stops the client: Track returns
// ErrClosed afterwards, and no goroutine of the client is left. When ctx
// ends first, the batches not yet acknowledged are given up on (counted as
// Failed) and Close returns ctx's error.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.closed = true
	close(c.room) // wakes the Track calls waiting for room: they see closed
	c.mu.Unlock()

	err := c.Flush(ctx)
	c.mu.Lock()
	c.stopping = true
	c.wake.Broadcast()
	c.mu.Unlock()
	if err != nil {
		c.abortFunc() // ends requests and backoffs: their batches fail
	}
	c.wg.Wait()
	c.abortFunc()
	if c.ownedTr != nil {
		c.ownedTr.CloseIdleConnections()
	}
	if err == nil {
		// Events given up on while Close waited for the senders.
		c.mu.Lock()
		err = errors.Join(c.errs...)
		c.errs = nil
		c.mu.Unlock()
	}
	return err
}

// Stats returns what became of the events tracked so far.
func (c *Client) Stats() Stats {
	return Stats{Accepted: c.accepted.Load(), Duplicates: c.duplicates.Load(), Late: c.late.Load(), Failed: c.failed.Load()}
}

// sender sends ready batches until Close stops it.
func (c *Client) sender() {
	for {
		c.mu.Lock()
		for len(c.ready) == 0 && !c.stopping {
			c.wake.Wait()
		}
		if len(c.ready) == 0 {
			c.mu.Unlock()
			return
		}
		b := c.ready[0]
		c.ready[0] = nil
		c.ready = c.ready[1:]
		c.mu.Unlock()
		c.send(b)
	}
}

// finish ends b: its events leave the queue, and whoever waits for it is
// told.
func (c *Client) finish(b *batch) {
	c.mu.Lock()
	delete(c.open, b)
	c.queued -= b.n
	c.freeRoomLocked()
	c.mu.Unlock()
	close(b.done)
}

// freeRoomLocked wakes the Track calls waiting for room.
func (c *Client) freeRoomLocked() {
	if !c.closed {
		close(c.room)
		c.room = make(chan struct{})
	}
}

// fail gives up on events: they are counted as Failed, and err goes to
// OnError and to the next Flush.
func (c *Client) fail(n int, err error) {
	c.failed.Add(int64(n))
	c.mu.Lock()
	c.errs = append(c.errs, err)
	c.mu.Unlock()
	if c.cfg.OnError != nil {
		c.cfg.OnError(err)
	}
}

// keepTrying reports whether a batch first tried at first is still worth
// retrying: for at least minBackgroundRetry, and for as long as a Flush
// waits for it.
func (c *Client) keepTrying(b *batch, first time.Time) bool {
	if c.abort.Err() != nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Since(first) < minBackgroundRetry || b.waiters > 0
}
