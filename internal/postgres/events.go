package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tallyhq/tally/internal/usage"
)

// EventSource yields the events of one request body in order. The JSON and
// NDJSON decoders implement it; NDJSON bodies are read while they are copied
// into PostgreSQL, never held whole in memory.
type EventSource interface {
	// Next returns the next valid event, or io.EOF after the last one. An
	// invalid event is remembered by the source and skipped.
	Next() (usage.Event, error)
	// Err reports, after Next returned io.EOF, why the body must be refused
	// as a whole (a *usage.ValidationError), or nil.
	Err() error
}

// IngestResult counts what one body did.
type IngestResult struct {
	Accepted   int64 `json:"accepted"`
	Duplicates int64 `json:"duplicates"`
	Late       int64 `json:"late"`
}

// Batch is an EventSource whose events are all in memory and valid: a JSON
// batch, the events of token verifications. RecordEvents sends it as one
// array per column inside the statement that merges it, in one round trip,
// where a stream needs a COPY into a staging table first.
type Batch struct {
	Events []usage.Event
	next   int
}

// Next implements EventSource.
func (b *Batch) Next() (usage.Event, error) {
	if b.next >= len(b.Events) {
		return usage.Event{}, io.EOF
	}
	b.next++
	return b.Events[b.next-1], nil
}

// Err implements EventSource: a Batch holds only valid events.
func (b *Batch) Err() error { return nil }

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
    identity_flags smallint NOT NULL
) ON COMMIT DELETE ROWS`

var stagingColumns = []string{"id", "occurred_at", "month", "activity", "activity_bit", "source", "source_bit",
	"service_sid", "identity", "actor", "channel_sid", "endpoint_id", "identity_flags"}

// Where mergeEvents reads a body: a Batch from one array per staging
// column ($4…$16), a stream from the staging table it was copied into.
const (
	// The optional columns arrive as plain strings, "" for absent (an
	// absent field is stored as NULL either way): a column[textElem] is encoded
	// without reflection or allocation (columns.go), a []*string through
	// reflection, element by element.
	batchInput = `SELECT id, occurred_at, month, activity, activity_bit, source, source_bit, service_sid, identity,
        nullif(actor, '') AS actor, nullif(channel_sid, '') AS channel_sid, nullif(endpoint_id, '') AS endpoint_id,
        identity_flags
        FROM unnest($4::text[], $5::timestamptz[], $6::date[], $7::text[], $8::smallint[],
        $9::text[], $10::smallint[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::smallint[])
        AS i (id, occurred_at, month, activity, activity_bit, source, source_bit, service_sid, identity, actor,
              channel_sid, endpoint_id, identity_flags)`
	stagingInput = `SELECT * FROM ingest_staging`
)

// mergeEvents records a body in one statement, so a body is one pass over
// its rows whatever it holds. $1 is the account, $2 the time of receipt, $3
// the sorted months of the body.
//
//   - fresh: the insert into events is the idempotency check; ON CONFLICT
//     DO NOTHING leaves out every id the account already sent. Ids go in
//     sorted order, so concurrent bodies sharing ids wait on each other
//     instead of deadlocking.
//   - months notes the months the account has events in, for the scheduler;
//     DO NOTHING leaves existing rows unlocked.
//   - revisions marks the finalized months that received new events (only
//     those rows are locked, in month order: the key scan of = ANY($3)).
//   - pending appends the new events for the rollup; a fold merges them
//     into month_users and users later (see fold.go), so a body updates no
//     rollup row and takes no row lock outside the ids it inserts. They go
//     to the partition of the current slot, read as they are written.
//
// It returns the number of new events and how many of them are late (in a
// month that already has a final version).
const mergeEvents = `WITH input AS MATERIALIZED (%s),
fresh AS (
    INSERT INTO events (account_sid, event_id, occurred_at, activity, source, service_sid, identity, actor,
        channel_sid, endpoint_id, received_at)
    SELECT $1, id, occurred_at, activity, source, service_sid, identity, actor, channel_sid, endpoint_id, $2
    FROM input ORDER BY id
    ON CONFLICT DO NOTHING
    RETURNING event_id
),
f AS MATERIALIZED (
    SELECT i.* FROM input i JOIN fresh ON fresh.event_id = i.id
),
months AS (
    INSERT INTO account_months (account_sid, month)
    SELECT DISTINCT $1, month FROM f ORDER BY 2
    ON CONFLICT DO NOTHING
),
revisions AS (
    UPDATE account_months SET revision_due = true
    WHERE account_sid = $1 AND month = ANY($3::date[]) AND final_version IS NOT NULL AND NOT revision_due
      AND month IN (SELECT month FROM f)
),
pending AS (
    INSERT INTO rollup_pending (account_sid, month, service_sid, identity, event_id, occurred_at, activity,
        activity_bit, source_bit, endpoint_id, identity_flags, received_at, slot)
    SELECT $1, month, service_sid, identity, id, occurred_at, activity, activity_bit, source_bit, endpoint_id,
        identity_flags, $2, (SELECT last_value FROM rollup_slot)::smallint
    FROM f
)
SELECT (SELECT count(*) FROM f),
       (SELECT count(*) FROM f JOIN account_months a
        ON a.account_sid = $1 AND a.month = f.month AND a.final_version IS NOT NULL)`

var (
	mergeBatch   = fmt.Sprintf(mergeEvents, batchInput)
	mergeStaging = fmt.Sprintf(mergeEvents, stagingInput)
)

const lockMonthsShared = `SELECT pg_advisory_xact_lock_shared(k) FROM (SELECT unnest($1::bigint[]) AS k ORDER BY 1) AS keys`

// RecordEvents stores the events of one body for an account, all or
// nothing, and returns only after commit. An event whose id the account
// already sent is a duplicate, whatever else it carries; so is a repeat of an
// id within the body (the first occurrence wins).
func (s *Store) RecordEvents(ctx context.Context, accountSID string, src EventSource) (IngestResult, error) {
	res, err := s.recordEvents(ctx, accountSID, src)
	if err != nil {
		var verr *usage.ValidationError
		if errors.As(err, &verr) {
			return IngestResult{}, err
		}
		return IngestResult{}, translate(fmt.Errorf("record events for %s: %w", accountSID, err))
	}
	return res, nil
}

func (s *Store) recordEvents(ctx context.Context, accountSID string, src EventSource) (IngestResult, error) {
	rows := &stagingRows{src: src, months: make(map[usage.Month]struct{})}
	if b, ok := src.(*Batch); ok {
		rows.seen = make(map[string]struct{}, len(b.Events))
		// A Batch goes in a single round trip: the month locks and the
		// merge in the implicit transaction of one pipeline, committed at
		// its end.
		cols := rows.columns(len(b.Events))
		return s.merge(ctx, s.pool, mergeBatch, cols, accountSID, sortedMonths(rows.months),
			int64(len(rows.seen)), rows.repeats)
	}
	rows.seen = make(map[string]struct{})
	conn, err := s.ingestConn(ctx)
	if err != nil {
		return IngestResult{}, err
	}
	defer conn.Release()
	var res IngestResult
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
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
		res, err = s.merge(ctx, tx, mergeStaging, nil, accountSID, sortedMonths(rows.months), n, rows.repeats)
		return err
	})
	return res, err
}

// batchSender is a transaction, or a pool whose pipeline is one implicit
// transaction on one connection.
type batchSender interface {
	SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
}

// merge sends, in one round trip, the shared locks of the body's months and
// the statement that merges its events (n of them, once repeats within the
// body were dropped); input holds the arguments of a Batch's columns.
func (s *Store) merge(ctx context.Context, q batchSender, stmt string, input []any, accountSID string, months []usage.Month, n, repeats int64) (IngestResult, error) {
	starts := make([]time.Time, len(months))
	for i, m := range months {
		starts[i] = m.Start()
	}
	// Shared month locks come first, in a statement of their own: the
	// report job takes them exclusively, so it never finalizes a month
	// while a body for it is in flight, and the merge, whose snapshot is
	// taken after the locks are held, sees any version committed before
	// and counts its events as late.
	b := &pgx.Batch{}
	b.Queue(lockMonthsShared, monthLockKeys(accountSID, months))
	b.Queue(stmt, append([]any{accountSID, s.now().UTC(), starts}, input...)...)
	br := q.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return IngestResult{}, fmt.Errorf("lock months: %w", err)
	}
	var res IngestResult
	if err := br.QueryRow().Scan(&res.Accepted, &res.Late); err != nil {
		return IngestResult{}, fmt.Errorf("merge events: %w", err)
	}
	// Closing reads the end of the pipeline: for a pool, its commit.
	if err := br.Close(); err != nil {
		return IngestResult{}, fmt.Errorf("commit events: %w", err)
	}
	res.Duplicates = n - res.Accepted + repeats
	return res, nil
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

// stagingRows adapts an EventSource to pgx.CopyFromSource.
type stagingRows struct {
	src     EventSource
	seen    map[string]struct{}
	months  map[usage.Month]struct{}
	repeats int64 // ids repeated within the body: duplicates never copied
	ev      usage.Event
	month   usage.Month
	srcErr  error
}

func (r *stagingRows) Next() bool {
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
func (r *stagingRows) Values() ([]any, error) {
	e := &r.ev
	return []any{e.ID, e.OccurredAt.UTC(), r.month.Start(), string(e.Activity), e.Activity.Bit(),
		string(e.Source), e.Source.Bit(), e.ServiceSID, e.Identity,
		nullable(e.Actor), nullable(e.ChannelSID), nullable(e.EndpointID), usage.IdentityFlags(e.Identity)}, nil
}

// columns reads the whole source, of about n events, into one array per
// staging column, for mergeBatch.
func (r *stagingRows) columns(n int) []any {
	var (
		ids, activities, sources = make(column[textElem], 0, n), make(column[textElem], 0, n), make(column[textElem], 0, n)
		services, identities     = make(column[textElem], 0, n), make(column[textElem], 0, n)
		occurred, months         = make(column[timestamptzElem], 0, n), make(column[dateElem], 0, n)
		activityBits, sourceBits = make([]int16, 0, n), make([]int16, 0, n)
		flags                    = make([]int16, 0, n)
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
	}
	return []any{ids, occurred, months, activities, activityBits, sources, sourceBits, services, identities,
		actors, channels, endpoints, flags}
}

func (r *stagingRows) Err() error { return r.srcErr }

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

// monthLockKey is the advisory lock key of one account-month, shared by
// ingestion (shared) and the report job (exclusive). A collision between
// two account-months only makes one wait for the other.
func monthLockKey(accountSID string, m usage.Month) int64 {
	h := fnv.New64a()
	h.Write([]byte("tally.month\x00" + accountSID + "\x00" + m.String()))
	return int64(h.Sum64())
}

func monthLockKeys(accountSID string, ms []usage.Month) []int64 {
	keys := make([]int64, len(ms))
	for i, m := range ms {
		keys[i] = monthLockKey(accountSID, m)
	}
	return keys
}
