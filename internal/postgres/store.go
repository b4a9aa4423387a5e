// Package postgres holds every SQL statement of tally. Its methods are named
// for what the service does (RecordEvents, RevokeKey), own their
// transactions, and translate driver errors into usage error kinds at this
// boundary.
//
// A transaction is always pgx.BeginTxFunc(ctx, pool or connection,
// pgx.TxOptions{...}, fn), called by the exported method that owns it (or
// by the one function that is that method's transaction: a fold's attempt,
// readRollup for a read of the rollup), with its isolation level and access
// mode written out (pgx.TxOptions{} is read committed, read-write);
// unexported helpers take the pgx.Tx. A pipeline
// (pgx.Batch) is only ever sent on that tx, never on the pool, where it
// would run as an implicit transaction committed by its Close. The rule and
// its reasons are in docs/design.md, "Transactions".
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"

	"github.com/tallyhq/tally/internal/usage"
)

// Store is tally's PostgreSQL store.
type Store struct {
	pool *pgxpool.Pool
	now  func() time.Time
	// finalizing lets one HoldMonth at a time run in this process: each
	// holds a connection for its transaction and takes a second one to
	// fold, so several at once could hold every connection of the pool and
	// wait for each other's second one.
	finalizing chan struct{}
	// folding holds, per account, a one-slot channel: the turn to fold it
	// (foldAccount).
	folding sync.Map
	// maxPending bounds each account's pending events (backlog.go);
	// backlogs holds, per account, the last probe of them, which stands
	// for backlogEvery.
	maxPending   int64
	backlogs     sync.Map
	backlogEvery time.Duration
	// afterMonthLock, when set (by tests), runs while HoldMonth holds its
	// month's lock, after its fold and before the caller's decision.
	afterMonthLock func()
	// unvacuumed counts the pending events folds deleted since the last
	// vacuum of rollup_pending; past vacuumAfter, vacuumDue wakes the
	// vacuum (vacuum.go). afterVacuum, when set (by tests), runs after
	// each.
	unvacuumed  atomic.Int64
	vacuumAfter int64
	vacuumDue   chan struct{}
	afterVacuum func(took time.Duration, err error)
}

// New returns a Store on pool. now is the clock; "now" is read once per
// transaction.
func New(pool *pgxpool.Pool, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{pool: pool, now: now, finalizing: make(chan struct{}, 1), maxPending: DefaultMaxPending,
		backlogEvery: backlogProbeEvery, vacuumAfter: pendingVacuumAfter, vacuumDue: make(chan struct{}, 1)}
}

// Pool returns the underlying pool, for health checks and migrations.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return translate(fmt.Errorf("ping: %w", err))
	}
	return nil
}

// translate maps driver errors to usage error kinds: no rows → not found,
// unique violation → conflict, and every sign of an unreachable or
// restarting database → unavailable (the API answers 503 with Retry-After).
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %w", usage.ErrNotFound, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "23505":
			return fmt.Errorf("%w: %w", usage.ErrConflict, err)
		case pgErr.Code[:2] == "08", // connection exception
			pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03", // shutting down, starting up
			pgErr.Code == "53300": // too many connections
			return fmt.Errorf("%w: %w", usage.ErrUnavailable, err)
		}
		return err
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	// A closed pool means the process is shutting down: unavailable too.
	if errors.As(err, &connErr) || errors.As(err, &netErr) || pgconn.SafeToRetry(err) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, puddle.ErrClosedPool) {
		return fmt.Errorf("%w: %w", usage.ErrUnavailable, err)
	}
	return err
}
