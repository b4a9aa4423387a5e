package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// rollup_pending is a queue: every body appends to it and every fold
// deletes what it merged. Every read with pending events and every fold
// reads an account's pending events through the (account_sid, event_id)
// key, and a deleted row stays in the key and in the heap, to be stepped
// over, until a vacuum removes it. Autovacuum looks at a database about
// once a minute (autovacuum_naptime): at 10 000 events a second, 600 000
// dead rows between two looks. With 3 000 events pending and 260 000 dead
// rows, the statistics' statements that merge the pending events took 284
// ms on PostgreSQL and 262 ms on Citus; vacuumed, 93 and 85 ms (the
// vacuum: 73 ms). So the process that folds vacuums the table itself, once
// its folds have deleted pendingVacuumAfter events since its last vacuum.
//
// SKIP_LOCKED: a vacuum already at work on the table (another replica's,
// autovacuum's) is enough. TRUNCATE off: giving the empty pages at the
// end back takes a lock that every body's insert would queue behind; the
// table keeps them, and its inserts reuse them. INDEX_CLEANUP on: the dead
// entries of the key are what a read steps over, and a vacuum that finds
// few dead rows would otherwise leave them. On Citus the coordinator runs
// it on every shard.
const vacuumPending = `VACUUM (SKIP_LOCKED, INDEX_CLEANUP ON, TRUNCATE OFF) rollup_pending`

// pendingVacuumAfter is how many pending events this process's folds
// delete between two vacuums of rollup_pending (Store.vacuumAfter): about
// a second of full-speed ingest on this machine; a vacuum then takes a few
// milliseconds.
const pendingVacuumAfter = 10_000

// mayVacuumPending says whether tally's role may vacuum rollup_pending:
// PostgreSQL lets the table's owner, the database's owner and superusers
// (pg_has_role is true for them) vacuum it. For anyone else VACUUM
// succeeds having done nothing, with only a warning the client never
// shows, so the role is checked first. A common set-up is to run the
// migrations as one role and tally as another.
const mayVacuumPending = `SELECT pg_has_role(c.relowner, 'USAGE') OR pg_has_role(d.datdba, 'USAGE')
FROM pg_class c, pg_database d
WHERE c.oid = 'rollup_pending'::regclass AND d.datname = current_database()`

// errMayNotVacuum is what afterVacuum is told when the vacuum was skipped
// because tally's role may not vacuum rollup_pending.
var errMayNotVacuum = errors.New("tally's role owns neither rollup_pending nor the database")

// noteFolded counts n pending events deleted by a fold, and wakes
// vacuumInBackground once enough have been since the last vacuum.
func (s *Store) noteFolded(n int64) {
	if n > 0 && s.unvacuumed.Add(n) >= s.vacuumAfter {
		select {
		case s.vacuumDue <- struct{}{}:
		default: // already due
		}
	}
}

// vacuumInBackground vacuums rollup_pending whenever the folds have
// deleted enough of it, until ctx ends. When tally's role may not vacuum
// the table it says so once, and looks again each time a vacuum is due:
// an operator may change the table's owner while tally runs.
func (s *Store) vacuumInBackground(ctx context.Context, log *slog.Logger) {
	warned := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.vacuumDue:
		}
		s.unvacuumed.Store(0)
		start := time.Now()
		err := s.vacuumPending(ctx)
		switch {
		case ctx.Err() != nil || log == nil:
		case errors.Is(err, errMayNotVacuum):
			if !warned {
				// Autovacuum still runs, as the owner; until it does,
				// reads with pending events step over more dead rows.
				log.WarnContext(ctx, "cannot vacuum the pending events; leaving them to autovacuum",
					"err", err, "fix", "make tally's database role the owner of rollup_pending")
			}
			warned = true
		case err != nil:
			log.WarnContext(ctx, "vacuum pending events", "err", err)
		default:
			warned = false
		}
		if s.afterVacuum != nil {
			s.afterVacuum(time.Since(start), err)
		}
	}
}

// vacuumPending vacuums rollup_pending if tally's role may.
func (s *Store) vacuumPending(ctx context.Context) error {
	var may bool
	if err := s.pool.QueryRow(ctx, mayVacuumPending).Scan(&may); err != nil {
		return fmt.Errorf("check the right to vacuum pending events: %w", err)
	}
	if !may {
		return errMayNotVacuum
	}
	if _, err := s.pool.Exec(ctx, vacuumPending); err != nil {
		return fmt.Errorf("vacuum pending events: %w", err)
	}
	return nil
}
