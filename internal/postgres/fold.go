package postgres

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// foldEvents folds pending events into the rollup, in one statement; d
// (the %s) yields the events it folds and, where it deletes them from
// rollup_pending, deletes them in this transaction, so each event reaches
// the rollup exactly once.
//
//   - agg gathers them to one row per (account, month, service, identity).
//     The first activity is the earliest event, ties broken by event id.
//     No aggregate here builds an array or sorts per group (array_agg and
//     ordered aggregates set up memory and a sort for every user-month,
//     ~30 % of a fold): the first event is the min of one sortable text
//     key, the endpoints one string, both in an order-preserving escape
//     (\x01 → \x01\x02, fields ended by \x01\x01; text never holds \x00).
//     The key starts with occurred_at as fixed-width UTC digits (years
//     2000–9999, as validated), so it sorts as (occurred_at, event_id).
//   - rollup merges those rows into month_users. Its merge is associative
//     (sums, bit or, least/greatest, set union), so folding in chunks, in
//     any order, gives the rollup that folding everything at once would.
//   - new_users keeps the month of each user's first activity ever. Only a
//     month_users row this fold created (its events are the fold's alone)
//     can bring a user or an earlier month; of those, users known from this
//     month or an earlier one are skipped by an index probe that takes no
//     row lock (first_month only moves earlier).
//
// It returns how many events it folded, counted from agg: d, read once, is
// then not copied aside (it is, when it deletes).
const foldEvents = `WITH d AS (
    %s
),
agg AS MATERIALIZED (
    SELECT account_sid, month, service_sid, identity,
           split_part(first_key, E'\x01\x01', 2) AS first_activity,
           replace(substr(split_part(first_key, E'\x01\x01', 1), 21), E'\x01\x02', E'\x01') AS first_event_id,
           first_at, last_at, events, activities, sources,
           coalesce(ARRAY(SELECT DISTINCT replace(e, E'\x01\x02', E'\x01') COLLATE "C"
                          FROM unnest(string_to_array(endpoints, E'\x01\x01')) AS e ORDER BY 1), '{}') AS endpoints,
           identity_flags, last_received_at
    FROM (SELECT account_sid, month, service_sid, identity,
                 min(to_char(occurred_at AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS')
                     || replace(event_id, E'\x01', E'\x01\x02') || E'\x01\x01' || activity COLLATE "C") AS first_key,
                 min(occurred_at) AS first_at, max(occurred_at) AS last_at, count(*) AS events,
                 bit_or(activity_bit) AS activities, bit_or(source_bit) AS sources,
                 string_agg(replace(endpoint_id, E'\x01', E'\x01\x02'), E'\x01\x01') AS endpoints,
                 min(identity_flags) AS identity_flags, max(received_at) AS last_received_at
          FROM d
          GROUP BY account_sid, month, service_sid, identity) AS g
),
rollup AS (
    INSERT INTO month_users AS m (account_sid, month, service_sid, identity,
        first_activity, first_event_id, first_at, last_at, events, activities, sources, endpoints,
        last_received_at, identity_flags)
    SELECT account_sid, month, service_sid, identity, first_activity, first_event_id, first_at, last_at, events,
           activities, sources, endpoints, last_received_at, identity_flags
    FROM agg
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
        last_received_at = greatest(m.last_received_at, EXCLUDED.last_received_at)
    RETURNING account_sid, month, service_sid, identity, events
),
new_users AS (
    INSERT INTO users AS u (account_sid, service_sid, identity, first_month)
    SELECT s.account_sid, s.service_sid, s.identity, s.first_month
    FROM (SELECT r.account_sid, r.service_sid, r.identity, min(r.month) AS first_month
          FROM rollup r JOIN agg a USING (account_sid, month, service_sid, identity)
          WHERE r.events = a.events
          GROUP BY r.account_sid, r.service_sid, r.identity) AS s
    WHERE coalesce((SELECT k.first_month FROM users k
                    WHERE k.account_sid = s.account_sid AND k.service_sid = s.service_sid AND k.identity = s.identity),
                   'infinity') > s.first_month
    ORDER BY s.account_sid, s.service_sid, s.identity
    ON CONFLICT (account_sid, service_sid, identity) DO UPDATE SET first_month = EXCLUDED.first_month
    WHERE EXCLUDED.first_month < u.first_month
)
SELECT coalesce(sum(events), 0)::bigint FROM agg`

// rollup_pending has a partition per slot (migration 00013). ctids repeat
// across partitions, so a statement that finds rows by ctid names one.
var pendingPartitions = [2]string{"rollup_pending_0", "rollup_pending_1"}

var (
	// foldDeleting[p] deletes and folds up to $2 pending events of account
	// $1 (of every account when $1 is NULL) from partition p.
	foldDeleting [2]string
	// foldRange[p] folds the events on blocks [$1, $2) of partition p,
	// which no body writes any more, without deleting them: the fold
	// empties the partition with TRUNCATE when it has folded all of it.
	foldRange [2]string
)

func init() {
	for p, table := range pendingPartitions {
		foldDeleting[p] = fmt.Sprintf(foldEvents, fmt.Sprintf(`DELETE FROM %[1]s
    WHERE ctid = ANY (ARRAY(SELECT ctid FROM %[1]s WHERE $1::text IS NULL OR account_sid = $1 LIMIT $2))
    RETURNING *`, table))
		foldRange[p] = fmt.Sprintf(foldEvents, fmt.Sprintf(`SELECT * FROM %s
    WHERE ctid >= format('(%%s,0)', $1::bigint)::tid AND ctid < format('(%%s,0)', $2::bigint)::tid`, table))
	}
}

// foldChunk bounds the events one fold statement takes: a chunk's
// aggregation stays in memory and its transaction short, and a backlog is
// worked off chunk by chunk. foldChunkBlocks is about as many events, in
// blocks of a partition (~37 pending events fill a page).
const (
	foldChunk       = 2_000_000
	foldChunkBlocks = 54_000
)

// foldLockKey is the advisory lock that serializes folds, across replicas:
// two folds would otherwise lock the same rollup rows and pending rows in
// different orders.
var foldLockKey = func() int64 {
	h := fnv.New64a()
	h.Write([]byte("tally.fold"))
	return int64(h.Sum64())
}()

// FoldRollup folds the pending events of an account ("" for every account)
// into the rollup and returns how many it folded. Every read of the rollup
// calls it first, so a read sees every event acknowledged before it began.
//
// An account's events are deleted from rollup_pending as they are folded.
// Every account's are folded by switching slots first (see foldSlot), then
// what the switch leaves: events a body wrote to the other slot while an
// earlier switch was under way.
func (s *Store) FoldRollup(ctx context.Context, accountSID string) (int64, error) {
	var total int64
	if accountSID == "" {
		n, err := s.foldSlot(ctx, true)
		if err != nil {
			return 0, err
		}
		total = n
	}
	n, err := s.foldDeleting(ctx, accountSID)
	return total + n, err
}

// foldDeleting folds the events of an account ("" for every account) from
// both partitions, deleting them, chunk by chunk, each chunk in a
// transaction of its own.
func (s *Store) foldDeleting(ctx context.Context, accountSID string) (int64, error) {
	var total int64
	for p := range pendingPartitions {
		for {
			var n int64
			err := s.inTx(ctx, func(tx pgx.Tx) error {
				if _, err := beginFold(ctx, tx, true); err != nil {
					return err
				}
				var err error
				n, err = foldStatement(ctx, tx, foldDeleting[p], nullable(accountSID), foldChunk)
				return err
			})
			if err != nil { // inTx has translated it
				return total, fmt.Errorf("fold rollup: %w", err)
			}
			total += n
			if n < foldChunk {
				break
			}
		}
	}
	return total, nil
}

// foldSlot switches the slot bodies write to, waits for the bodies still
// writing the other partition, folds all of that partition and empties it,
// in one transaction. Without wait it folds nothing and returns -1 when
// another fold holds the lock.
//
// No event is lost or folded twice: the partition is locked against writes
// before the fold statements take their snapshots, and emptied in their
// transaction. A body that read the old slot just before the switch waits
// for the lock and writes to the emptied partition, which the next switch
// makes current again: its events are folded by the switch after next, or
// by a read of their account before that.
func (s *Store) foldSlot(ctx context.Context, wait bool) (int64, error) {
	var total int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		got, err := beginFold(ctx, tx, wait)
		if err != nil || !got {
			total = -1
			return err
		}
		// A sequence is read and set outside any snapshot: a body reads
		// the new slot as soon as it is set, and a fold that fails after
		// the switch leaves its partition to the next switch but one.
		var old int
		if err := tx.QueryRow(ctx, `SELECT last_value, setval('rollup_slot', 1 - last_value) FROM rollup_slot`).
			Scan(&old, nil); err != nil {
			return fmt.Errorf("switch slot: %w", err)
		}
		table := pendingPartitions[old]
		// SHARE waits for every transaction that has written the partition
		// and keeps others out; the fold's reads begin after it.
		if _, err := tx.Exec(ctx, `LOCK TABLE `+table+` IN SHARE MODE`); err != nil {
			return fmt.Errorf("lock %s: %w", table, err)
		}
		var blocks int64
		if err := tx.QueryRow(ctx, `SELECT pg_relation_size($1::regclass) / current_setting('block_size')::int`,
			table).Scan(&blocks); err != nil {
			return fmt.Errorf("size of %s: %w", table, err)
		}
		if blocks == 0 {
			return nil
		}
		for lo := int64(0); lo < blocks; lo += foldChunkBlocks {
			n, err := foldStatement(ctx, tx, foldRange[old], lo, lo+foldChunkBlocks)
			if err != nil {
				return err
			}
			total += n
		}
		if _, err := tx.Exec(ctx, `TRUNCATE `+table); err != nil {
			return fmt.Errorf("empty %s: %w", table, err)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("fold rollup: %w", err)
	}
	return total, nil
}

// fold is FoldRollup for a reader of the rollup.
func (s *Store) fold(ctx context.Context, accountSID string) error {
	_, err := s.FoldRollup(ctx, accountSID)
	return err
}

// foldIn folds every pending event of an account inside tx, for a reader
// that needs the rollup complete within its own transaction.
func foldIn(ctx context.Context, tx pgx.Tx, accountSID string) error {
	if _, err := beginFold(ctx, tx, true); err != nil {
		return fmt.Errorf("fold rollup: %w", err)
	}
	for p := range pendingPartitions {
		for {
			n, err := foldStatement(ctx, tx, foldDeleting[p], nullable(accountSID), foldChunk)
			if err != nil {
				return fmt.Errorf("fold rollup: %w", err)
			}
			if n < foldChunk {
				break
			}
		}
	}
	return nil
}

// beginFold takes the fold lock, held until tx ends. When wait is false
// and another fold holds the lock, it returns false.
func beginFold(ctx context.Context, tx pgx.Tx, wait bool) (bool, error) {
	if wait {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, foldLockKey); err != nil {
			return false, fmt.Errorf("lock: %w", err)
		}
		return true, nil
	}
	var got bool
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, foldLockKey).Scan(&got); err != nil {
		return false, fmt.Errorf("lock: %w", err)
	}
	return got, nil
}

// foldStatement runs one of the fold statements with the fold's settings.
func foldStatement(ctx context.Context, tx pgx.Tx, sql string, args ...any) (int64, error) {
	// The planner reserves 8 kB per group for string_agg's state (it uses a
	// tenth of that here), so with the default hash_mem_multiplier a fold of
	// more than ~65 000 user-months spilled its aggregation to disk at ~100 MB
	// of real memory. A multiplier of 8 keeps ~260 000 groups (~400 MB)
	// in memory; a larger chunk spills, as before.
	//
	// users is probed by its index, never by a sequential scan: planned
	// while users looked empty (a new database, the bench after a reset),
	// the probe for each new user became a scan of users, and of the pages
	// the same statement was filling with the new users: quadratic. A
	// fold creating 50 000 users took 10–30 s; reused as a cached generic
	// plan once users was large, one ran for over 18 minutes. For the same
	// reason a fold is planned afresh each time (~3 ms of a fold that
	// takes seconds). rollup_pending has no index: its partitions are
	// still scanned, or read by block range.
	//
	// And no JIT: the disabled scans cost over 10^10, far past
	// jit_above_cost, and compiling the fold statement took ~0.5 s, even
	// for a fold of nothing, which every read of the rollup runs first.
	if _, err := tx.Exec(ctx, setFoldSettings); err != nil {
		return 0, fmt.Errorf("set fold settings: %w", err)
	}
	var n int64
	if err := tx.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		return 0, err
	}
	// The settings are for the fold alone: the report job folds inside its
	// own transaction and then reads a month of the rollup.
	if _, err := tx.Exec(ctx, resetFoldSettings); err != nil {
		return 0, fmt.Errorf("reset fold settings: %w", err)
	}
	return n, nil
}

// foldSettings are what a fold runs with (see foldStatement); setting and
// resetting them come from this one list, so that none outlives the fold.
var foldSettings = [][2]string{
	{"work_mem", "'256MB'"}, {"hash_mem_multiplier", "8"},
	{"enable_seqscan", "off"}, {"plan_cache_mode", "force_custom_plan"}, {"jit", "off"},
}

var setFoldSettings, resetFoldSettings = func() (string, string) {
	var set, reset strings.Builder
	for _, kv := range foldSettings {
		fmt.Fprintf(&set, "SET LOCAL %s = %s; ", kv[0], kv[1])
		fmt.Fprintf(&reset, "RESET %s; ", kv[0])
	}
	return set.String(), reset.String()
}()

// FoldInBackground folds the pending events of every account every
// interval until ctx ends, so that reads find little to fold and a fold
// merges many events per rollup row. A round another replica is already
// folding is skipped.
func (s *Store) FoldInBackground(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.foldSlot(ctx, false); err != nil && ctx.Err() == nil && log != nil {
			log.ErrorContext(ctx, "fold rollup", "err", err)
		}
	}
}
