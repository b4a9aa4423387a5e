package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Reads never fold, so that they never wait behind a fold. A read of an
// account runs in one repeatable-read snapshot and asks first whether the
// account has pending events (an index probe). Most reads find none and
// read the rollup as it is. One that finds some reads the rollup as a fold
// would leave it: each statement runs behind a prefix (liveRollup) of
// common table expressions named month_users and users, which shadow the
// tables for the rest of the statement, so the statements are the same text
// on both paths and read, in the same snapshot, the tables merged with the
// account's pending events exactly as foldMonthUsers and foldUsers merge
// them. A fold commits the rollup rows and the deletion of the events it
// merged at once, so a snapshot sees every event exactly once: in the
// rollup or pending.
//
// The cost is the account's pending events, grouped once per statement
// (pending_month_users, pending_users: materialized) into the columns the
// statement reads, and a hash join of them to the rows it reads. The shadowing expressions are
// inlined (NOT MATERIALIZED), so the statement's conditions on month,
// service and identity still reach the tables' indexes. Inside its own
// definition a non-recursive common table expression does not see its own
// name: there month_users and users are the tables.
//
// Every statement that runs behind the prefix has the account as $1; the
// routing test checks each on Citus.

// livePrefix is the prefix of a statement that reads the rollup with the
// account's pending events merged in.
func livePrefix(cols pendingColumns) string {
	// An identity of the rollup that is its own key is marked when a
	// pending event brings an identity with its identity as key, as
	// foldLookalikeSelves marks it.
	lookalike := `coalesce(p.lookalike, m.lookalike)`
	if cols.lookalike {
		lookalike = `CASE WHEN m.lookalike IS NULL AND p.lookalike IS NULL
                  AND (m.month, m.service_sid, m.identity) IN (SELECT month, service_sid, lookalike FROM pending_month_users
                                                               WHERE lookalike IS NOT NULL)
                THEN m.identity ELSE coalesce(p.lookalike, m.lookalike) END`
	}
	return `WITH pending_month_users AS MATERIALIZED (` + pendingMonthUsersWhere("", cols) + `),
pending_users AS MATERIALIZED (
    SELECT service_sid, identity, min(month) AS first_month FROM rollup_pending
    WHERE account_sid = $1 GROUP BY service_sid, identity),
month_users AS NOT MATERIALIZED (
    SELECT m.account_sid, m.month, m.service_sid, m.identity,
           CASE WHEN (p.first_at, p.first_event_id) < (m.first_at, m.first_event_id)
                THEN p.first_activity ELSE m.first_activity END AS first_activity,
           CASE WHEN (p.first_at, p.first_event_id) < (m.first_at, m.first_event_id)
                THEN p.first_event_id ELSE m.first_event_id END AS first_event_id,
           least(m.first_at, p.first_at) AS first_at, greatest(m.last_at, p.last_at) AS last_at,
           m.events + coalesce(p.events, 0) AS events,
           m.activities | coalesce(p.activities, 0::smallint) AS activities,
           m.sources | coalesce(p.sources, 0::smallint) AS sources,
           CASE WHEN p.endpoints IS NULL OR p.endpoints <@ m.endpoints THEN m.endpoints
                ELSE ARRAY(SELECT DISTINCT e FROM unnest(m.endpoints || p.endpoints) AS e ORDER BY e) END AS endpoints,
           m.identity_flags, greatest(m.last_received_at, p.last_received_at) AS last_received_at,
           ` + lookalike + ` AS lookalike, m.reserved
    FROM month_users m
    LEFT JOIN pending_month_users p ON p.month = m.month AND p.service_sid = m.service_sid AND p.identity = m.identity
    WHERE m.account_sid = $1
    UNION ALL
    SELECT p.account_sid, p.month, p.service_sid, p.identity, p.first_activity, p.first_event_id,
           p.first_at, p.last_at, p.events, p.activities, p.sources, p.endpoints,
           p.identity_flags, p.last_received_at, p.lookalike, p.reserved
    FROM pending_month_users p
    WHERE NOT EXISTS (SELECT 1 FROM month_users m WHERE m.account_sid = $1 AND m.month = p.month
                      AND m.service_sid = p.service_sid AND m.identity = p.identity)),
users AS NOT MATERIALIZED (
    SELECT u.account_sid, u.service_sid, u.identity, least(u.first_month, p.first_month) AS first_month
    FROM users u
    LEFT JOIN pending_users p ON p.service_sid = u.service_sid AND p.identity = u.identity
    WHERE u.account_sid = $1
    UNION ALL
    SELECT $1, p.service_sid, p.identity, p.first_month
    FROM pending_users p
    WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.account_sid = $1
                      AND u.service_sid = p.service_sid AND u.identity = p.identity))
`
}

// livePrefixes are livePrefix for each choice of costly columns.
var livePrefixes = func() map[pendingColumns]string {
	out := map[pendingColumns]string{}
	for _, first := range []bool{false, true} {
		for _, endpoints := range []bool{false, true} {
			for _, lookalike := range []bool{false, true} {
				c := pendingColumns{firstEvent: first, endpoints: endpoints, lookalike: lookalike}
				out[c] = livePrefix(c)
			}
		}
	}
	return out
}()

// liveRollup returns stmt reading the rollup with the account's pending
// events merged in. stmt must not begin with WITH. The costly columns of
// the pending events are computed only if stmt names them: most
// statements read neither the first event nor the endpoints.
// TestReadsWithPendingEventsMatchFoldedReads fails if a statement reads one
// without naming it.
func liveRollup(stmt string) string {
	cols := pendingColumns{
		firstEvent: strings.Contains(stmt, "first_activity") || strings.Contains(stmt, "first_event_id"),
		endpoints:  strings.Contains(stmt, "endpoints"),
		lookalike:  strings.Contains(stmt, "lookalike"),
	}
	return livePrefixes[cols] + stmt
}

// liveSettings are what a read with pending events runs with, for its
// transaction alone: the memory to group the pending events in one hash
// table (see foldSettings), no JIT (compiling the grouping took longer
// than running it).
var liveSettings = settingsSQL([][2]string{
	{"citus.propagate_set_commands", "'local'"},
	{"work_mem", "'256MB'"}, {"hash_mem_multiplier", "8"}, {"jit", "off"}, {"enable_nestloop", "off"},
})

// liveNewUsers counts the new users of month $2 by service (with $3 set,
// of that service alone) with the account's pending events merged in,
// without liveRollup. Behind it, the users of the account, of every month,
// were hashed twice to join them to the pending users: under full-speed
// ingest of the account, 120–200 ms of a 600 ms report on Citus. Here the
// month's new users come from the first_month index, and only the pending
// users are probed in users, by its key (a subquery: the reads' settings
// allow no nested loop): a pending user whose first month is $2 and who is
// unknown to users or known from a later month is new; a user of users
// new in $2 with an event pending from an earlier month is not.
const liveNewUsers = `WITH p AS MATERIALIZED (
    SELECT service_sid, identity, min(month) AS first_month FROM rollup_pending
    WHERE account_sid = $1 AND ($3::text IS NULL OR service_sid = $3)
    GROUP BY service_sid, identity),
n AS (
    SELECT service_sid, count(*) AS n FROM users
    WHERE account_sid = $1 AND first_month = $2 AND ($3::text IS NULL OR service_sid = $3)
    GROUP BY service_sid
    UNION ALL
    SELECT service_sid, CASE WHEN first_month = $2 THEN 1 ELSE -1 END
    FROM (SELECT p.service_sid, p.first_month,
                 (SELECT k.first_month FROM users k WHERE k.account_sid = $1
                  AND k.service_sid = p.service_sid AND k.identity = p.identity) AS known
          FROM p WHERE p.first_month <= $2) AS x
    WHERE (first_month = $2 AND coalesce(known, 'infinity') > $2) OR (first_month < $2 AND known = $2))
SELECT service_sid, sum(n)::bigint FROM n GROUP BY service_sid HAVING sum(n) <> 0 ORDER BY service_sid`

// liveMonthIdentities counts the distinct identities of month $2 with the
// account's pending events merged in: merging never changes an identity,
// so they are those of the month's rows and of its pending events, and
// nothing needs joining.
const liveMonthIdentities = `SELECT count(DISTINCT identity) FROM (
    SELECT identity FROM month_users WHERE account_sid = $1 AND month = $2
    UNION ALL
    SELECT identity FROM rollup_pending WHERE account_sid = $1 AND month = $2) AS i`

// liveTopIdentities is topIdentities with the account's pending events
// merged in. Merging only adds events, so an identity of the month outside
// its ten busiest rows that has no event pending stays outside: the top ten
// are among those rows and the pending user-months, each of which probes
// its row by key, and nothing reads the whole month twice.
const liveTopIdentities = `WITH p AS MATERIALIZED (
    SELECT service_sid, identity, count(*) AS events FROM rollup_pending
    WHERE account_sid = $1 AND month = $2 AND ($3::text IS NULL OR service_sid = $3)
    GROUP BY service_sid, identity)
SELECT service_sid, identity, events FROM (
    SELECT p.service_sid, p.identity,
           p.events + coalesce((SELECT m.events FROM month_users m WHERE m.account_sid = $1 AND m.month = $2
                                AND m.service_sid = p.service_sid AND m.identity = p.identity), 0) AS events
    FROM p
    UNION ALL
    SELECT t.service_sid, t.identity, t.events
    FROM (SELECT service_sid, identity, events FROM month_users
          WHERE account_sid = $1 AND month = $2 AND ($3::text IS NULL OR service_sid = $3)
          ORDER BY events DESC, service_sid, identity LIMIT 10) AS t
    WHERE NOT EXISTS (SELECT 1 FROM p WHERE p.service_sid = t.service_sid AND p.identity = t.identity)) AS c
ORDER BY events DESC, service_sid, identity LIMIT 10`

// liveMonthFigures is monthFigures with the account's pending events
// merged in, as liveIdentityStats merges them: the month's rows and its
// pending user-months in one full join, each read once, merged as the fold
// merges the columns the figures read (the first activity is the earlier
// event's, ties broken by event id). Unordered: figures orders the groups.
var liveMonthFigures = `WITH p AS MATERIALIZED (` +
	pendingMonthUsersWhere(` AND month = $2`, pendingColumns{firstEvent: true}) + `)
` + monthFiguresOf + `(
    SELECT coalesce(m.service_sid, p.service_sid) AS service_sid,
           CASE WHEN m.identity IS NULL OR (p.first_at, p.first_event_id) < (m.first_at, m.first_event_id)
                THEN p.first_activity ELSE m.first_activity END AS first_activity,
           coalesce(m.activities, 0::smallint) | coalesce(p.activities, 0::smallint) AS activities,
           greatest(m.last_received_at, p.last_received_at) AS last_received_at
    FROM (SELECT service_sid, identity, first_activity, first_at, first_event_id, activities, last_received_at
          FROM month_users WHERE account_sid = $1 AND month = $2) AS m
    FULL JOIN p ON p.service_sid = m.service_sid AND p.identity = m.identity) AS merged
GROUP BY service_sid, first_activity`

// liveIdentityStats is identityStats with the account's pending events
// merged in. Behind liveRollup the month's rows were read twice: once
// joined to the pending user-months, once hashed whole to find the pending
// user-months the month lacks (35 ms with 3 000 events pending, 11 ms
// with none). Here the month's rows and the month's pending user-months
// meet in one full join, each read once, and are merged as the fold merges
// the columns the figures read.
var liveIdentityStats = `WITH p AS MATERIALIZED (` +
	pendingMonthUsersWhere(` AND month = $2 AND ($3::text IS NULL OR service_sid = $3)`, pendingColumns{endpoints: true}) + `)
` + identityStatsOf + `(
    SELECT coalesce(m.reserved, p.reserved) AS reserved,
           coalesce(m.events, 0) + coalesce(p.events, 0) AS events,
           coalesce(m.activities, 0::smallint) | coalesce(p.activities, 0::smallint) AS activities,
           CASE WHEN p.endpoints IS NULL OR p.endpoints <@ m.endpoints THEN m.endpoints
                ELSE ARRAY(SELECT DISTINCT e FROM unnest(m.endpoints || p.endpoints) AS e ORDER BY e) END AS endpoints,
           coalesce(m.identity_flags, p.identity_flags) AS identity_flags
    FROM (SELECT service_sid, identity, reserved, events, activities, endpoints, identity_flags FROM month_users
          WHERE account_sid = $1 AND month = $2 AND ($3::text IS NULL OR service_sid = $3)) AS m
    FULL JOIN p ON p.service_sid = m.service_sid AND p.identity = m.identity) AS merged
GROUP BY reserved`

// liveLookalikeCount is lookalikeCount with the account's pending events
// merged in. Behind liveRollup every merged row of the month was computed
// and hashed for a count that reads a partial index: 17 ms against 0.1 ms
// with 3 000 events pending. A merge changes a lookalike group only by
// adding members, and a member is a row with a key: the month's rows with
// one (the partial index), the pending identities whose key is another
// identity, and the identities that become their own key's member as the
// fold marks them (pendingLookalike, foldLookalikeSelves): a pending
// identity that is a key of any of those, and a row of the month, without
// a mark, that is a key of a pending identity (probed by key). A row
// already marked is among the month's rows; UNION counts each member once.
const liveLookalikeCount = `WITH p AS MATERIALIZED (
    SELECT DISTINCT service_sid, identity, lookalike FROM rollup_pending
    WHERE account_sid = $1 AND month = $2 AND ($3::text IS NULL OR service_sid = $3)),
k AS MATERIALIZED (
    SELECT service_sid, identity, lookalike FROM month_users
    WHERE account_sid = $1 AND month = $2 AND ($3::text IS NULL OR service_sid = $3) AND lookalike IS NOT NULL
    UNION
    SELECT service_sid, identity, lookalike FROM p WHERE lookalike IS NOT NULL)
SELECT coalesce(sum(n), 0) FROM (
    SELECT count(*) AS n FROM (
        SELECT service_sid, identity, lookalike FROM k
        UNION
        SELECT service_sid, identity, identity FROM p
        WHERE lookalike IS NULL AND (service_sid, identity) IN (SELECT service_sid, lookalike FROM k)
        UNION
        SELECT service_sid, lookalike, lookalike FROM (SELECT DISTINCT service_sid, lookalike FROM p WHERE lookalike IS NOT NULL) AS q
        WHERE (SELECT true FROM month_users m WHERE m.account_sid = $1 AND m.month = $2
               AND m.service_sid = q.service_sid AND m.identity = q.lookalike)) AS members
    GROUP BY service_sid, lookalike
    HAVING count(*) >= 2) AS g`

// queryLiveOr runs sql on q, or live instead on a reader with events
// pending: a statement that merges them itself rather than behind
// liveRollup.
func queryLiveOr(ctx context.Context, q querier, sql, live string, args ...any) (pgx.Rows, error) {
	if r, ok := q.(rollupReader); ok && r.live {
		return r.tx.Query(ctx, live, args...)
	}
	return q.Query(ctx, sql, args...)
}

// queryRowLiveOr is queryLiveOr for a statement of one row.
func queryRowLiveOr(ctx context.Context, q querier, sql, live string, args ...any) pgx.Row {
	if r, ok := q.(rollupReader); ok && r.live {
		return r.tx.QueryRow(ctx, live, args...)
	}
	return q.QueryRow(ctx, sql, args...)
}

// rollupReader is a repeatable-read transaction reading an account's
// rollup: with live set, every statement reads it with the pending
// events merged in.
type rollupReader struct {
	tx   pgx.Tx
	live bool
}

func (r rollupReader) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if r.live {
		sql = liveRollup(sql)
	}
	return r.tx.Query(ctx, sql, args...)
}

func (r rollupReader) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if r.live {
		sql = liveRollup(sql)
	}
	return r.tx.QueryRow(ctx, sql, args...)
}

// readRollup runs fn in one read-only repeatable-read snapshot of the
// account's rollup, merged with its pending events if it has any. It
// never folds, so it never waits for a fold.
func (s *Store) readRollup(ctx context.Context, accountSID string, fn func(q rollupReader) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		r := rollupReader{tx: tx}
		if err := tx.QueryRow(ctx, foldPending, accountSID).Scan(&r.live); err != nil {
			return fmt.Errorf("look for pending events: %w", err)
		}
		if r.live {
			if _, err := tx.Exec(ctx, liveSettings); err != nil {
				return fmt.Errorf("set read settings: %w", err)
			}
		}
		return fn(r)
	})
}
