package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tallyhq/tally/internal/usage"
)

// The staging table lives per connection (temporary, emptied at commit), so
// a streamed body is copied in one COPY and merged in one statement.
const createStaging = `CREATE TEMP TABLE IF NOT EXISTS ingest_staging (
    id           text COLLATE "C" NOT NULL,
    occurred_at  timestamptz NOT NULL,
    month        date NOT NULL,
    activity     text NOT NULL,
    activity_bit smallint NOT NULL,
    source       text NOT NULL,
    source_bit   smallint NOT NULL,
    service_sid  text COLLATE "C" NOT NULL,
    identity     text COLLATE "C" NOT NULL,
    actor        text,
    channel_sid  text,
    endpoint_id  text COLLATE "C",
    identity_flags smallint NOT NULL,
    lookalike    text COLLATE "C",
    reserved     integer NOT NULL
) ON COMMIT DELETE ROWS`

var stagingColumns = []string{"id", "occurred_at", "month", "activity", "activity_bit", "source", "source_bit",
	"service_sid", "identity", "actor", "channel_sid", "endpoint_id", "identity_flags", "lookalike", "reserved"}

// A body is recorded in one transaction of statements that each touch one
// table of one account, so that on Citus each is routed to the worker
// holding the account and the transaction commits there alone (a single
// statement with data-modifying CTEs is planned by Citus CTE by CTE,
// through the coordinator, with a two-phase commit).
//
//   - insertMonths and lockMonths: the months of the body are noted (the
//     scheduler finds the months to finalize in account_months) and their
//     rows locked in KEY SHARE mode, in month order. Finalization locks its
//     month's row FOR UPDATE (reports.go): it never finalizes a month while
//     a body for it is in flight, and a body that waited for it reads the
//     final version it stored, so its events count as late and flag a
//     revision. Row locks live with the rows, on every engine; an advisory
//     lock would be one node's. The row is inserted before it is locked: a
//     body must wait for a finalization that is creating it.
//   - insertEvents: the insert into events is the idempotency check; ON
//     CONFLICT DO NOTHING leaves out every id the account already sent.
//     Ids go in sorted order, so concurrent bodies sharing ids wait on each
//     other instead of deadlocking. It returns the new events.
//   - insertPending appends the new events for the rollup; a fold merges
//     them into month_users and users later (fold.go), so a body updates no
//     rollup row.
//   - markRevisions flags the finalized months that received new events.
const (
	insertMonths = `INSERT INTO account_months (account_sid, month)
SELECT $1, m FROM unnest($2::date[]) AS m ORDER BY 2
ON CONFLICT DO NOTHING`
	lockMonths = `SELECT month, final_version IS NOT NULL FROM account_months
WHERE account_sid = $1 AND month = ANY($2::date[])
ORDER BY month FOR KEY SHARE`
	insertEvents = `INSERT INTO events (account_sid, event_id, occurred_at, activity, source, service_sid, identity, actor,
    channel_sid, endpoint_id, received_at)
SELECT $1, id, occurred_at, activity, source, service_sid, identity, actor, channel_sid, endpoint_id, $2
FROM (%s) AS i ORDER BY id
ON CONFLICT DO NOTHING
RETURNING event_id, occurred_at`
	insertPending = `INSERT INTO rollup_pending (account_sid, month, service_sid, identity, event_id, occurred_at, activity,
    activity_bit, source_bit, endpoint_id, identity_flags, received_at, lookalike, reserved)
SELECT $1, month, service_sid, identity, id, occurred_at, activity, activity_bit, source_bit, endpoint_id,
    identity_flags, $2, lookalike, reserved
FROM (%s) AS i`
	markRevisions = `UPDATE account_months SET revision_due = true
WHERE account_sid = $1 AND month = ANY($2::date[]) AND final_version IS NOT NULL AND NOT revision_due`
)

// Where the statements read a body: a usage.EventList from one array per
// column ($3…$17), a stream from the staging table it was copied into
// (only its new events, $3, unless that is NULL: all of them).
const (
	// The optional columns arrive as plain strings, "" for absent (an
	// absent field is stored as NULL either way): a column[textElem] is encoded
	// without reflection or allocation (columns.go), a []*string through
	// reflection, element by element.
	// The lookalike key arrives as lookalikeElem encodes it: "" when it is
	// the identity itself (stored as NULL), " " for the empty key.
	arrayInput = `SELECT id, occurred_at, month, activity, activity_bit, source, source_bit, service_sid, identity,
        nullif(actor, '') AS actor, nullif(channel_sid, '') AS channel_sid, nullif(endpoint_id, '') AS endpoint_id,
        identity_flags, CASE lookalike WHEN '' THEN NULL WHEN ' ' THEN '' ELSE lookalike END AS lookalike, reserved
        FROM unnest($3::text[], $4::timestamptz[], $5::date[], $6::text[], $7::smallint[],
        $8::text[], $9::smallint[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::smallint[],
        $16::text[], $17::integer[])
        AS i (id, occurred_at, month, activity, activity_bit, source, source_bit, service_sid, identity, actor,
              channel_sid, endpoint_id, identity_flags, lookalike, reserved)`
	stagingInput      = `SELECT * FROM ingest_staging`
	stagingFreshInput = `SELECT * FROM ingest_staging WHERE $3::text[] IS NULL OR id IN (SELECT unnest($3::text[]))`
)

var (
	insertArrayEvents    = fmt.Sprintf(insertEvents, arrayInput)
	insertArrayPending   = fmt.Sprintf(insertPending, arrayInput)
	insertStagingEvents  = fmt.Sprintf(insertEvents, stagingInput)
	insertStagingPending = fmt.Sprintf(insertPending, stagingFreshInput)
)

// RecordEvents stores the events of one body for an account, all or
// nothing, and returns only after commit. An event whose id the account
// already sent is a duplicate, whatever else it carries; so is a repeat of an
// id within the body (the first occurrence wins).
//
// A *usage.EventList is sent as one array per column inside the statements
// that merge it, in one round trip; any other source is streamed with a
// COPY into a staging table first.
func (s *Store) RecordEvents(ctx context.Context, accountSID string, src usage.EventSource) (usage.IngestResult, error) {
	if err := s.makeRoom(ctx, accountSID); err != nil {
		return usage.IngestResult{}, err
	}
	res, err := s.recordEvents(ctx, accountSID, src)
	if err != nil {
		var verr *usage.ValidationError
		if errors.As(err, &verr) {
			return usage.IngestResult{}, err
		}
		return usage.IngestResult{}, translate(fmt.Errorf("record events for %s: %w", accountSID, err))
	}
	s.recorded(accountSID, res.Accepted)
	return res, nil
}

func (s *Store) recordEvents(ctx context.Context, accountSID string, src usage.EventSource) (usage.IngestResult, error) {
	rows := &eventRows{src: src, months: make(map[usage.Month]struct{})}
	if list, ok := src.(*usage.EventList); ok {
		rows.seen = make(map[string]struct{}, len(list.Events))
		cols := rows.arrays(len(list.Events))
		var res usage.IngestResult
		err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
			var err error
			res, err = s.merge(ctx, tx, accountSID, sortedMonths(rows.months), int64(len(rows.seen)), rows.repeats,
				insertArrayEvents, cols, func(fresh []string, all bool) (string, []any) {
					if all {
						return insertArrayPending, cols
					}
					return insertArrayPending, freshColumns(cols, fresh)
				})
			return err
		})
		return res, err
	}
	rows.seen = make(map[string]struct{})
	conn, err := s.ingestConn(ctx)
	if err != nil {
		return usage.IngestResult{}, err
	}
	defer conn.Release()
	var res usage.IngestResult
	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{}, func(tx pgx.Tx) error {
		n, err := tx.CopyFrom(ctx, pgx.Identifier{"ingest_staging"}, stagingColumns, rows)
		if err != nil {
			if rows.srcErr != nil { // the body, not the database, failed
				return rows.srcErr
			}
			return fmt.Errorf("copy events: %w", err)
		}
		if err := src.Err(); err != nil {
			return err
		}
		res, err = s.merge(ctx, tx, accountSID, sortedMonths(rows.months), n, rows.repeats,
			insertStagingEvents, nil, func(fresh []string, all bool) (string, []any) {
				if all {
					return insertStagingPending, []any{nil}
				}
				return insertStagingPending, []any{fresh}
			})
		return err
	})
	return res, err
}

// merge records a body's n events (once repeats within the body were
// dropped) in tx: it notes and locks the body's months, inserts the events
// (insert, with input as its arguments after the account and the time),
// then appends the new ones to rollup_pending (the statement and arguments
// that pending gives for them; all says every event of the body is new)
// and flags the revisions they call for.
//
// The first three statements go in one pipeline, one round trip, inside tx
// (docs/design.md, "Transactions"): its results are read and closed before
// the next statement, and the commit is the caller's.
func (s *Store) merge(ctx context.Context, tx pgx.Tx, accountSID string, months []usage.Month, n, repeats int64,
	insert string, input []any, pending func(fresh []string, all bool) (string, []any)) (usage.IngestResult, error) {
	starts := make([]time.Time, len(months))
	for i, m := range months {
		starts[i] = m.Start()
	}
	now := s.now().UTC()
	pipeline := &pgx.Batch{}
	pipeline.Queue(insertMonths, accountSID, starts)
	pipeline.Queue(lockMonths, accountSID, starts)
	pipeline.Queue(insert, append([]any{accountSID, now}, input...)...)
	br := tx.SendBatch(ctx, pipeline)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return usage.IngestResult{}, fmt.Errorf("note months: %w", err)
	}
	final := make(map[time.Time]bool, len(months))
	var month time.Time
	var isFinal bool
	if _, err := pgx.ForEachRow(must(br.Query()), []any{&month, &isFinal}, func() error {
		if isFinal {
			final[month.UTC()] = true
		}
		return nil
	}); err != nil {
		return usage.IngestResult{}, fmt.Errorf("lock months: %w", err)
	}
	fresh := make([]string, 0, n)
	var late []time.Time
	var id string
	var at time.Time
	if _, err := pgx.ForEachRow(must(br.Query()), []any{&id, &at}, func() error {
		fresh = append(fresh, id)
		if len(final) > 0 {
			if m := usage.MonthOf(at).Start(); final[m] {
				late = append(late, m)
			}
		}
		return nil
	}); err != nil {
		return usage.IngestResult{}, fmt.Errorf("insert events: %w", err)
	}
	if err := br.Close(); err != nil {
		return usage.IngestResult{}, fmt.Errorf("insert events: %w", err)
	}
	res := usage.IngestResult{Accepted: int64(len(fresh)), Late: int64(len(late)), Duplicates: n - int64(len(fresh)) + repeats}
	if len(fresh) > 0 {
		stmt, args := pending(fresh, int64(len(fresh)) == n)
		if _, err := tx.Exec(ctx, stmt, append([]any{accountSID, now}, args...)...); err != nil {
			return usage.IngestResult{}, fmt.Errorf("append pending events: %w", err)
		}
	}
	if len(late) > 0 {
		if _, err := tx.Exec(ctx, markRevisions, accountSID, late); err != nil {
			return usage.IngestResult{}, fmt.Errorf("flag revisions: %w", err)
		}
	}
	return res, nil
}

// must passes on the rows of a queued query; their error, if any, comes
// from iterating them.
func must(rows pgx.Rows, _ error) pgx.Rows { return rows }

// freshColumns keeps, of an EventList's column arrays, the events whose ids are
// in fresh.
func freshColumns(cols []any, fresh []string) []any {
	keep := make(map[string]struct{}, len(fresh))
	for _, id := range fresh {
		keep[id] = struct{}{}
	}
	ids := cols[0].(column[textElem])
	idx := make([]int, 0, len(fresh))
	for i, id := range ids {
		if _, ok := keep[string(id)]; ok {
			idx = append(idx, i)
		}
	}
	out := make([]any, len(cols))
	for c, col := range cols {
		switch col := col.(type) {
		case column[textElem]:
			out[c] = pick(col, idx)
		case column[timestamptzElem]:
			out[c] = pick(col, idx)
		case column[dateElem]:
			out[c] = pick(col, idx)
		case []int16:
			out[c] = pick(col, idx)
		case []int32:
			out[c] = pick(col, idx)
		default:
			panic(fmt.Sprintf("freshColumns: column %d is a %T", c, col))
		}
	}
	return out
}

func pick[S ~[]E, E any](s S, idx []int) S {
	out := make(S, len(idx))
	for i, j := range idx {
		out[i] = s[j]
	}
	return out
}

// stagingKey marks, in a connection's CustomData, that its session holds
// the staging table.
const stagingKey = "tally.ingest_staging"

// ingestConn acquires a connection whose session has the staging table.
// The table is created once per connection, outside any transaction (a
// rollback would take it away), not once per body.
func (s *Store) ingestConn(ctx context.Context) (*pgxpool.Conn, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire connection: %w", err)
	}
	data := conn.Conn().PgConn().CustomData()
	if data[stagingKey] == nil {
		if _, err := conn.Exec(ctx, createStaging); err != nil {
			conn.Release()
			return nil, fmt.Errorf("create staging table: %w", err)
		}
		data[stagingKey] = true
	}
	return conn, nil
}

// eventRows reads a body's events once each, dropping ids repeated within
// the body and noting the months, as rows for the store: it is the
// pgx.CopyFromSource of a streamed body's COPY, and arrays turns an
// EventList into column arrays.
type eventRows struct {
	src     usage.EventSource
	seen    map[string]struct{}
	months  map[usage.Month]struct{}
	repeats int64 // ids repeated within the body: duplicates never copied
	ev      usage.Event
	month   usage.Month
	srcErr  error
}

func (r *eventRows) Next() bool {
	for {
		e, err := r.src.Next()
		if err == io.EOF {
			return false
		}
		if err != nil {
			r.srcErr = err
			return false
		}
		if _, dup := r.seen[e.ID]; dup {
			r.repeats++
			continue
		}
		r.seen[e.ID] = struct{}{}
		r.ev, r.month = e, usage.MonthOf(e.OccurredAt)
		r.months[r.month] = struct{}{}
		return true
	}
}

// Values is the current event as a row of stagingColumns.
func (r *eventRows) Values() ([]any, error) {
	e := &r.ev
	return []any{e.ID, e.OccurredAt.UTC(), r.month.Start(), string(e.Activity), e.Activity.Bit(),
		string(e.Source), e.Source.Bit(), e.ServiceSID, e.Identity,
		nullable(e.Actor), nullable(e.ChannelSID), nullable(e.EndpointID), usage.IdentityFlags(e.Identity),
		lookalikeValue(e.Identity), usage.ReservedMask(e.Identity)}, nil
}

// arrays reads the whole source, of about n events, into one array per
// column of arrayInput.
func (r *eventRows) arrays(n int) []any {
	var (
		ids, activities, sources = make(column[textElem], 0, n), make(column[textElem], 0, n), make(column[textElem], 0, n)
		services, identities     = make(column[textElem], 0, n), make(column[textElem], 0, n)
		occurred, months         = make(column[timestamptzElem], 0, n), make(column[dateElem], 0, n)
		activityBits, sourceBits = make([]int16, 0, n), make([]int16, 0, n)
		flags                    = make([]int16, 0, n)
		lookalikes               = make(column[textElem], 0, n)
		reserved                 = make([]int32, 0, n)
		actors, channels         = make(column[textElem], 0, n), make(column[textElem], 0, n)
		endpoints                = make(column[textElem], 0, n)
	)
	for r.Next() {
		e := &r.ev
		ids = append(ids, textElem(e.ID))
		occurred = append(occurred, timestamptzElem(e.OccurredAt.UTC()))
		months = append(months, dateElem(r.month.Start()))
		activities = append(activities, textElem(e.Activity))
		activityBits = append(activityBits, e.Activity.Bit())
		sources = append(sources, textElem(e.Source))
		sourceBits = append(sourceBits, e.Source.Bit())
		services = append(services, textElem(e.ServiceSID))
		identities = append(identities, textElem(e.Identity))
		actors = append(actors, textElem(e.Actor))
		channels = append(channels, textElem(e.ChannelSID))
		endpoints = append(endpoints, textElem(e.EndpointID))
		flags = append(flags, usage.IdentityFlags(e.Identity))
		lookalikes = append(lookalikes, lookalikeElem(e.Identity))
		reserved = append(reserved, usage.ReservedMask(e.Identity))
	}
	return []any{ids, occurred, months, activities, activityBits, sources, sourceBits, services, identities,
		actors, channels, endpoints, flags, lookalikes, reserved}
}

func (r *eventRows) Err() error { return r.srcErr }

// lookalikeValue is the identity's lookalike key for the staging table:
// NULL when the key is the identity itself (month_users.lookalike, migration
// 00017).
func lookalikeValue(identity string) any {
	if k := usage.LookalikeKey(identity); k != identity {
		return k
	}
	return nil
}

// lookalikeElem is the identity's lookalike key for a text array of
// arrayInput, which holds no NULL: "" when the key is the identity itself
// (an identity is never empty), " " for the empty key (a key never begins
// with a space). arrayInput decodes it.
func lookalikeElem(identity string) textElem {
	switch k := usage.LookalikeKey(identity); k {
	case identity:
		return ""
	case "":
		return " "
	default:
		return textElem(k)
	}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func sortedMonths(set map[usage.Month]struct{}) []usage.Month {
	ms := make([]usage.Month, 0, len(set))
	for m := range set {
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Start().Before(ms[j].Start()) })
	return ms
}
