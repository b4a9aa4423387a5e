package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The fold moves an account's pending events (rollup_pending, appended by
// every body) into the rollup: month_users, one row per user-month, and
// users, the month of each user's first activity ever. A fold is per
// account and is three statements in one repeatable-read transaction, each
// filtered by account_sid = $1, so that on Citus each is routed whole to the
// worker holding the account (a statement with data-modifying CTEs is not:
// Citus plans each CTE apart and pulls its rows through the coordinator).
//
// The three statements see one snapshot: the events they merge into
// month_users, the users they add and the events they delete are the same
// set, and an event committed meanwhile is left for the next fold. Two folds
// of one account at once (a read's and the background's, or two replicas')
// cannot both fold an event: the second to delete it fails with a
// serialization failure, rolls back everything it did and starts again on a
// fresh snapshot. Folds of different accounts share nothing.
//
// Reads do not fold (live.go): they merge the pending events into what
// they read, in their own snapshot, so a read waits for no fold at all.
// Folds run in the background, and for the monthly job and the alerts.

// pendingMonthUsers groups the account's pending events to the rows of
// month_users they make, one per (month, service, identity): what the fold
// merges, and what a read with pending events merges in (live.go).
//
//   - The first activity is the earliest event, ties broken by event id.
//     No aggregate here builds an array or sorts per group (array_agg and
//     ordered aggregates set up memory and a sort for every user-month,
//     ~30 % of a fold): the first event is the min of one sortable text
//     key, the endpoints one string, both in an order-preserving escape
//     (\x01 → \x01\x02, fields ended by \x01\x01; text never holds \x00).
//     The key starts with occurred_at as fixed-width UTC digits (years
//     2000–9999, as validated), so it sorts as (occurred_at, event_id).
//   - The merge is associative (sums, bit or, least/greatest, set union),
//     so folding in chunks, in any order, gives the rollup that folding
//     everything at once would.
var pendingMonthUsers = pendingMonthUsersWhere("", pendingColumns{firstEvent: true, endpoints: true, lookalike: true})

// pendingColumns says which costly columns of pendingMonthUsers a statement
// reads: without them they are NULL, and PostgreSQL does not compute the
// aggregates behind them (a read that merges pending events in pays for
// what it reads, see live.go).
type pendingColumns struct {
	firstEvent bool // first_activity, first_event_id
	endpoints  bool
	lookalike  bool // the mark of an identity that is its own key (pendingLookalike); without it, the key as ingested
}

func pendingMonthUsersWhere(cond string, cols pendingColumns) string {
	first := `split_part(first_key, E'\x01\x01', 2) AS first_activity,
       replace(substr(split_part(first_key, E'\x01\x01', 1), 21), E'\x01\x02', E'\x01') AS first_event_id`
	if !cols.firstEvent {
		first = `NULL::text AS first_activity, NULL::text COLLATE "C" AS first_event_id`
	}
	endpoints := `coalesce(ARRAY(SELECT DISTINCT replace(e, E'\x01\x02', E'\x01') COLLATE "C"
                      FROM unnest(string_to_array(endpoints, E'\x01\x01')) AS e ORDER BY 1), '{}') AS endpoints`
	if !cols.endpoints {
		endpoints = `NULL::text[] COLLATE "C" AS endpoints`
	}
	lookalike := `lookalike`
	if cols.lookalike {
		lookalike = pendingLookalike(cond)
	}
	return `SELECT account_sid, month, service_sid, identity,
       ` + first + `,
       first_at, last_at, events, activities, sources,
       ` + endpoints + `,
       last_received_at, identity_flags, ` + lookalike + ` AS lookalike, reserved
FROM (SELECT account_sid, month, service_sid, identity,
             min(to_char(occurred_at AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS')
                 || replace(event_id, E'\x01', E'\x01\x02') || E'\x01\x01' || activity COLLATE "C") AS first_key,
             min(occurred_at) AS first_at, max(occurred_at) AS last_at, count(*) AS events,
             bit_or(activity_bit) AS activities, bit_or(source_bit) AS sources,
             string_agg(replace(endpoint_id, E'\x01', E'\x01\x02'), E'\x01\x01') AS endpoints,
             min(identity_flags) AS identity_flags, max(received_at) AS last_received_at,
             min(lookalike) AS lookalike, max(reserved) AS reserved
      FROM rollup_pending
      WHERE account_sid = $1` + cond + `
      GROUP BY account_sid, month, service_sid, identity) AS g`
}

// pendingLookalike is the lookalike column of a pending user-month g (the
// events picked by cond). An identity whose key is another identity has
// that key (computed at ingestion). An identity that is its own key has
// NULL, unless another identity of its service and month has its identity
// as key: then it is marked with its own identity as key, so that every
// member of a lookalike group has its key set and the groups are read from
// the partial index month_users_lookalike alone, never by probing for the
// identity that is the key (1.3 s of a 1 M-user month's statistics).
//
// The mark is exact because both sides set it: a fold marks its own-key
// rows against the rollup and the events it folds (here), and marks rows
// already in the rollup whose twin it folds (foldLookalikeSelves). Two
// identities with one key are always in the same fold part (foldPart
// hashes the key), so folds of different parts never race over a mark.
func pendingLookalike(cond string) string {
	return `CASE WHEN lookalike IS NOT NULL THEN lookalike
            WHEN (month, service_sid, identity) IN (SELECT month, service_sid, lookalike FROM rollup_pending
                                                    WHERE account_sid = $1` + cond + ` AND lookalike IS NOT NULL)
              OR EXISTS (SELECT 1 FROM month_users t WHERE t.account_sid = $1 AND t.month = g.month
                         AND t.service_sid = g.service_sid AND t.lookalike = g.identity)
            THEN identity END`
}

// foldPart is the condition that picks the events of part $2 of $3 of an
// account: all of them with $3 = 1. Parts split the account by identity,
// so the folds of two parts merge into different month_users and users
// rows and delete different events: they run side by side without a
// conflict (see foldParts).
//
// The part hashes the identity's lookalike key, not the identity (which
// is its own key when lookalike is NULL): identities sharing a key are
// folded by the same part, one fold at a time, so that the mark of the
// identity that is the key (pendingLookalike) is never lost between two
// parts folding the identity and its twin side by side, each in a snapshot
// without the other's rows. All events of an identity carry the same key,
// so an identity still belongs to one part.
const foldPart = ` AND (hashtext(coalesce(lookalike, identity)) & 2147483647) % $3 = $2`

// foldMonthUsers merges pendingMonthUsers into month_users. Rows are
// written in key order, so two folds never lock rollup rows in opposite
// orders.
var foldMonthUsers = `INSERT INTO month_users AS m (account_sid, month, service_sid, identity,
    first_activity, first_event_id, first_at, last_at, events, activities, sources, endpoints,
    last_received_at, identity_flags, lookalike, reserved)
` + pendingMonthUsersWhere(foldPart, pendingColumns{firstEvent: true, endpoints: true, lookalike: true}) + `
ORDER BY account_sid, month, service_sid, identity
ON CONFLICT (account_sid, month, service_sid, identity) DO UPDATE SET
    first_activity = CASE WHEN (EXCLUDED.first_at, EXCLUDED.first_event_id) < (m.first_at, m.first_event_id)
                          THEN EXCLUDED.first_activity ELSE m.first_activity END,
    first_event_id = CASE WHEN (EXCLUDED.first_at, EXCLUDED.first_event_id) < (m.first_at, m.first_event_id)
                          THEN EXCLUDED.first_event_id ELSE m.first_event_id END,
    first_at = least(m.first_at, EXCLUDED.first_at),
    last_at = greatest(m.last_at, EXCLUDED.last_at),
    events = m.events + EXCLUDED.events,
    activities = m.activities | EXCLUDED.activities,
    sources = m.sources | EXCLUDED.sources,
    endpoints = CASE WHEN EXCLUDED.endpoints <@ m.endpoints THEN m.endpoints
                     ELSE ARRAY(SELECT DISTINCT e FROM unnest(m.endpoints || EXCLUDED.endpoints) AS e ORDER BY e) END,
    last_received_at = greatest(m.last_received_at, EXCLUDED.last_received_at),
    lookalike = coalesce(EXCLUDED.lookalike, m.lookalike)`

// foldLookalikeSelves marks the identities already in the rollup that are
// the key of an identity the fold brings (pendingLookalike): after
// foldMonthUsers, so the rows it inserted are marked already. The part is
// the key's, so the identity that is the key is in the same part.
const foldLookalikeSelves = `UPDATE month_users m SET lookalike = m.identity
FROM (SELECT DISTINCT month, service_sid, lookalike FROM rollup_pending
      WHERE account_sid = $1` + foldPart + ` AND lookalike IS NOT NULL) AS p
WHERE m.account_sid = $1 AND m.month = p.month AND m.service_sid = p.service_sid AND m.identity = p.lookalike
  AND m.lookalike IS NULL`

// foldUsers keeps the month of each user's first activity ever. Users
// already known from the same month or an earlier one are skipped by an
// index probe that takes no row lock (first_month only moves earlier), so
// a returning user costs a probe, not a write.
const foldUsers = `INSERT INTO users AS u (account_sid, service_sid, identity, first_month)
SELECT account_sid, service_sid, identity, min(month)
FROM rollup_pending p
WHERE account_sid = $1` + foldPart + `
GROUP BY account_sid, service_sid, identity
HAVING coalesce((SELECT k.first_month FROM users k
                 WHERE k.account_sid = $1 AND k.service_sid = p.service_sid AND k.identity = p.identity),
                'infinity') > min(month)
ORDER BY account_sid, service_sid, identity
ON CONFLICT (account_sid, service_sid, identity) DO UPDATE SET first_month = EXCLUDED.first_month
WHERE EXCLUDED.first_month < u.first_month`

// foldDelete removes what the two statements before it merged: the same
// snapshot, so the same rows.
const foldDelete = `DELETE FROM rollup_pending WHERE account_sid = $1` + foldPart

// foldPending tells whether an account has pending events (an index
// probe): a read with none reads the rollup as it is.
const foldPending = `SELECT EXISTS (SELECT 1 FROM rollup_pending WHERE account_sid = $1)`

// foldPartPending tells a fold with nothing to fold to stop there.
const foldPartPending = `SELECT EXISTS (SELECT 1 FROM rollup_pending WHERE account_sid = $1` + foldPart + `)`

// foldParts is how many parts an account is folded in, side by side: a
// fold is one backend, and an account ingesting at full speed from several
// clients outpaced one fold, so that its pending events, which every read
// merges in, grew without bound. Every fold of this process splits
// accounts the same way; a replica splitting them otherwise would only
// race and retry.
const foldParts = 4

// FoldParts is how many parts a fold splits an account into: the number of
// background folds that work on one busy account at once.
const FoldParts = foldParts

// pendingAccounts lists the accounts a background round folds.
const pendingAccounts = `SELECT DISTINCT account_sid FROM rollup_pending`

// foldSettings are what a fold runs with, for its transaction alone.
//
//   - citus.propagate_set_commands sends the SET LOCALs after it to the
//     Citus workers the transaction uses (without it they reach only the
//     coordinator, which runs none of the fold). On PostgreSQL without
//     Citus it is an unused placeholder.
//   - work_mem, hash_mem_multiplier: the planner reserves 8 kB per group
//     for string_agg's state (it uses a tenth of that here), so with the
//     default multiplier a fold of more than ~65 000 user-months spilled to
//     disk at ~100 MB of real memory; 8 keeps ~260 000 groups in memory.
//   - users is probed by its index, never by a sequential scan: planned
//     while users looked empty (a new database, the bench after a reset),
//     the probe for each new user became a scan of users, and of the pages
//     the same statement was filling with the new users: quadratic. For
//     the same reason a fold is planned afresh each time.
//   - No JIT: with scans disabled the costs are far past jit_above_cost,
//     and compiling a fold statement took ~0.5 s, even for a fold of
//     nothing.
var foldSettings = [][2]string{
	{"citus.propagate_set_commands", "'local'"},
	{"work_mem", "'256MB'"}, {"hash_mem_multiplier", "8"},
	{"enable_seqscan", "off"}, {"plan_cache_mode", "force_custom_plan"}, {"jit", "off"},
}

var setFoldSettings = settingsSQL(foldSettings)

// settingsSQL sets each (name, value) for the transaction alone.
func settingsSQL(settings [][2]string) string {
	var set strings.Builder
	for _, kv := range settings {
		fmt.Fprintf(&set, "SET LOCAL %s = %s; ", kv[0], kv[1])
	}
	return set.String()
}

// foldAttempts bounds how often a fold starts again after losing a race
// with another fold of its account; each loss means the other one folded
// those events, so the next attempt has less to do.
const foldAttempts = 20

// FoldRollup folds the pending events of an account ("" for every account
// with pending events) into the rollup and returns how many it folded.
func (s *Store) FoldRollup(ctx context.Context, accountSID string) (int64, error) {
	if accountSID != "" {
		return s.foldAccount(ctx, accountSID)
	}
	accounts, err := s.pendingAccounts(ctx)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, a := range accounts {
		n, err := s.foldAccount(ctx, a)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (s *Store) pendingAccounts(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, pendingAccounts)
	if err != nil {
		return nil, translate(fmt.Errorf("accounts with pending events: %w", err))
	}
	accounts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, translate(fmt.Errorf("accounts with pending events: %w", err))
	}
	return accounts, nil
}

// foldAccount folds one account's pending events: its parts side by side.
func (s *Store) foldAccount(ctx context.Context, accountSID string) (int64, error) {
	var (
		wg    sync.WaitGroup
		total atomic.Int64
		errs  = make([]error, foldParts)
	)
	for part := range foldParts {
		wg.Go(func() {
			n, err := s.foldPart(ctx, accountSID, part)
			total.Add(n)
			errs[part] = err
		})
	}
	wg.Wait()
	return total.Load(), errors.Join(errs...)
}

// foldPart folds one part of an account's pending events, starting again
// when another fold of the part wins a race for them.
//
// Within this process, folds of one part queue rather than race: two folds
// of an account under ingestion collide on the same rollup rows, and in
// repeatable read the loser waits for the winner's commit only to fail and
// start over with more to fold (the job could lose again and again).
// Queued, a fold that waited folds only what the fold before it left.
// Folds from other replicas still race, and retry.
func (s *Store) foldPart(ctx context.Context, accountSID string, part int) (int64, error) {
	turn, _ := s.folding.LoadOrStore(foldTurn{accountSID, part}, make(chan struct{}, 1))
	select {
	case turn.(chan struct{}) <- struct{}{}:
		defer func() { <-turn.(chan struct{}) }()
	case <-ctx.Done():
		return 0, translate(fmt.Errorf("fold rollup of %s: %w", accountSID, ctx.Err()))
	}
	for attempt := 1; ; attempt++ {
		n, err := s.foldOnce(ctx, accountSID, part)
		if err == nil || !lostRace(err) || attempt == foldAttempts {
			if err != nil {
				return 0, translate(fmt.Errorf("fold rollup of %s: %w", accountSID, err))
			}
			s.noteFolded(n)
			return n, nil
		}
		select {
		case <-ctx.Done():
			return 0, translate(fmt.Errorf("fold rollup of %s: %w", accountSID, ctx.Err()))
		case <-time.After(time.Duration(attempt) * time.Millisecond):
		}
	}
}

// foldTurn keys the turns of Store.folding.
type foldTurn struct {
	accountSID string
	part       int
}

// lostRace tells the errors of a fold that met another fold of the same
// account: a serialization failure, or a deadlock detected between them.
func lostRace(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

func (s *Store) foldOnce(ctx context.Context, accountSID string, part int) (int64, error) {
	var n int64
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		var pending bool
		if err := tx.QueryRow(ctx, foldPartPending, accountSID, part, foldParts).Scan(&pending); err != nil {
			return fmt.Errorf("look for pending events: %w", err)
		}
		if !pending {
			return nil
		}
		if _, err := tx.Exec(ctx, setFoldSettings); err != nil {
			return fmt.Errorf("set fold settings: %w", err)
		}
		if _, err := tx.Exec(ctx, foldMonthUsers, accountSID, part, foldParts); err != nil {
			return fmt.Errorf("fold month users: %w", err)
		}
		if _, err := tx.Exec(ctx, foldLookalikeSelves, accountSID, part, foldParts); err != nil {
			return fmt.Errorf("mark lookalike keys: %w", err)
		}
		if _, err := tx.Exec(ctx, foldUsers, accountSID, part, foldParts); err != nil {
			return fmt.Errorf("fold users: %w", err)
		}
		tag, err := tx.Exec(ctx, foldDelete, accountSID, part, foldParts)
		if err != nil {
			return fmt.Errorf("delete folded events: %w", err)
		}
		n = tag.RowsAffected()
		return nil
	})
	return n, err
}

// fold is FoldRollup of one account, for the monthly job and the alerts,
// which write what they read.
func (s *Store) fold(ctx context.Context, accountSID string) error {
	_, err := s.foldAccount(ctx, accountSID)
	return err
}

// FoldInBackground folds the pending events of every account every
// interval until ctx ends, so that reads find few pending events to merge
// in and a fold merges many events per rollup row. It folds up to workers
// parts of accounts at once (foldParts): on Citus each fold runs on the
// worker holding its account, so folds of accounts on different workers
// run in parallel. Replicas may
// fold at the same time: a fold that loses a race for an account's events
// starts again.
//
// onFolded, if not nil, is called after each fold that folded events, with
// the account (from several goroutines at once): what watches figures,
// such as the usage alerts, looks at the accounts whose figures changed.
//
// Meanwhile it vacuums the pending events whenever this process's folds
// have deleted enough of them (vacuum.go).
func (s *Store) FoldInBackground(ctx context.Context, every time.Duration, workers int, onFolded func(accountSID string), log *slog.Logger) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { s.vacuumInBackground(ctx, log) })
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.foldRound(ctx, workers, onFolded); err != nil && ctx.Err() == nil && log != nil {
			log.ErrorContext(ctx, "fold rollup", "err", err)
		}
	}
}

// foldRound folds every account with pending events, workers at a time,
// and returns the errors of those that failed.
func (s *Store) foldRound(ctx context.Context, workers int, onFolded func(string)) error {
	accounts, err := s.pendingAccounts(ctx)
	if err != nil {
		return err
	}
	next := make(chan foldTurn)
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for range max(workers, 1) {
		wg.Go(func() {
			for p := range next {
				n, err := s.foldPart(ctx, p.accountSID, p.part)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
				if n > 0 && onFolded != nil {
					onFolded(p.accountSID)
				}
			}
		})
	}
	for _, a := range accounts {
		for part := range foldParts {
			select {
			case next <- foldTurn{a, part}:
			case <-ctx.Done():
			}
		}
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}
