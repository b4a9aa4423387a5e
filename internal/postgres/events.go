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
// batch, the events of token verifications. RecordEvents sends it to the
// staging table in the same round trip as the statements that merge it,
// where a stream needs a COPY of its own.
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
// a body is copied in one COPY and merged with a few set-based statements.
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
    fresh        boolean NOT NULL DEFAULT true
) ON COMMIT DELETE ROWS`

// stageBatch inserts a Batch into the staging table from one array per
// column.
const stageBatch = `INSERT INTO ingest_staging (id, occurred_at, month, activity, activity_bit, source, source_bit,
    service_sid, identity, actor, channel_sid, endpoint_id, identity_flags)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::date[], $4::text[], $5::smallint[], $6::text[], $7::smallint[],
    $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::smallint[])`

var stagingColumns = []string{"id", "occurred_at", "month", "activity", "activity_bit", "source", "source_bit",
	"service_sid", "identity", "actor", "channel_sid", "endpoint_id", "identity_flags"}

// claimIDs claims the body's event ids in the idempotency table and marks
// the rows whose id was already taken; it reports the number of duplicates.
// Ids are inserted in sorted order so that concurrent bodies sharing ids wait
// on each other instead of deadlocking. Marking the duplicates, not the new
// rows, leaves a body of new events (the usual case) unwritten.
const claimIDs = `WITH claimed AS (
    INSERT INTO event_ids (account_sid, event_id)
    SELECT $1, id FROM ingest_staging ORDER BY id
    ON CONFLICT DO NOTHING
    RETURNING event_id
)
UPDATE ingest_staging SET fresh = false WHERE id NOT IN (SELECT event_id FROM claimed)`

const insertEvents = `INSERT INTO events (account_sid, occurred_at, event_id, activity, source, service_sid,
    identity, actor, channel_sid, endpoint_id, received_at)
SELECT $1, occurred_at, id, activity, source, service_sid, identity, actor, channel_sid, endpoint_id, $2
FROM ingest_staging WHERE fresh`

// upsertMonthUsers folds the fresh events into the per-month rollup, one row
// per (month, service, identity), in key order: concurrent bodies that touch
// the same users then lock them in one order and never deadlock (40P01).
// The first activity is the earliest event, ties broken by event id.
const upsertMonthUsers = `INSERT INTO month_users AS m (account_sid, month, service_sid, identity,
    first_activity, first_event_id, first_at, last_at, events, activities, sources, endpoints, last_received_at,
    identity_flags)
SELECT $1, month, service_sid, identity,
       (array_agg(activity ORDER BY occurred_at, id))[1],
       (array_agg(id ORDER BY occurred_at, id))[1],
       min(occurred_at), max(occurred_at), count(*),
       bit_or(activity_bit), bit_or(source_bit),
       coalesce(array_agg(DISTINCT endpoint_id ORDER BY endpoint_id) FILTER (WHERE endpoint_id IS NOT NULL), '{}'),
       $2, min(identity_flags)
FROM ingest_staging WHERE fresh
GROUP BY month, service_sid, identity
ORDER BY month, service_sid, identity
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
    last_received_at = EXCLUDED.last_received_at`

// upsertUsers keeps the month of each user's first activity ever, in key
// order for the same reason as the rollup. Most users of a body are known
// from this month or an earlier one: they are skipped by an index probe
// (users_pkey) that takes no row lock, so bodies sharing users do not queue
// on them. Skipping is safe because first_month only ever moves earlier.
const upsertUsers = `INSERT INTO users AS u (account_sid, service_sid, identity, first_month)
SELECT $1, s.service_sid, s.identity, s.first_month
FROM (SELECT service_sid, identity, min(month) AS first_month
      FROM ingest_staging WHERE fresh GROUP BY service_sid, identity) AS s
WHERE coalesce((SELECT k.first_month FROM users k
                WHERE k.account_sid = $1 AND k.service_sid = s.service_sid AND k.identity = s.identity),
               'infinity') > s.first_month
ORDER BY s.service_sid, s.identity
ON CONFLICT (account_sid, service_sid, identity) DO UPDATE SET first_month = EXCLUDED.first_month
WHERE EXCLUDED.first_month < u.first_month`

// insertAccountMonths notes the months the account has events in, for the
// scheduler. DO NOTHING leaves existing rows unlocked, so concurrent bodies
// for one month do not queue on its row.
const insertAccountMonths = `INSERT INTO account_months (account_sid, month)
SELECT DISTINCT $1, month FROM ingest_staging WHERE fresh ORDER BY 2
ON CONFLICT DO NOTHING`

const lockMonthsShared = `SELECT pg_advisory_xact_lock_shared(k) FROM (SELECT unnest($1::bigint[]) AS k ORDER BY 1) AS keys`

// countLate counts the fresh events of months that already have a final
// version.
const countLate = `SELECT count(*) FROM ingest_staging s
JOIN account_months a ON a.account_sid = $1 AND a.month = s.month AND a.final_version IS NOT NULL
WHERE s.fresh`

// flagLate marks the finalized months that received fresh events for a
// revision. Only those rows are locked, in month order (the primary key
// scan of = ANY over sorted months).
const flagLate = `UPDATE account_months SET revision_due = true
WHERE account_sid = $1 AND month = ANY($2::date[]) AND final_version IS NOT NULL AND NOT revision_due
  AND month IN (SELECT month FROM ingest_staging WHERE fresh)`

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
	conn, err := s.ingestConn(ctx)
	if err != nil {
		return IngestResult{}, err
	}
	defer conn.Release()
	rows := &stagingRows{src: src, seen: make(map[string]struct{}), months: make(map[usage.Month]struct{})}
	if _, ok := src.(*Batch); ok {
		// A Batch goes in a single round trip: staged and merged in the
		// implicit transaction of one pipeline, committed at its end.
		cols := rows.columns()
		months := sortedMonths(rows.months)
		for _, m := range months {
			if _, ok := s.partitions.Load(m); ok {
				continue
			}
			if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return s.ensurePartition(ctx, tx, m) }); err != nil {
				return IngestResult{}, err
			}
		}
		b := &pgx.Batch{}
		b.Queue(stageBatch, cols...)
		return s.merge(ctx, conn, b, accountSID, months, int64(len(cols[0].([]string))), rows.repeats)
	}
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
		months := sortedMonths(rows.months)
		for _, m := range months {
			if err := s.ensurePartition(ctx, tx, m); err != nil {
				return err
			}
		}
		res, err = s.merge(ctx, tx, &pgx.Batch{}, accountSID, months, n, rows.repeats)
		return err
	})
	return res, err
}

// batchSender is a transaction, or a connection where a pipeline is one
// implicit transaction.
type batchSender interface {
	SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
}

// merge appends to b the set-based statements that merge the staged events
// (n of them, once repeats within the body were dropped) and sends them in
// one round trip.
func (s *Store) merge(ctx context.Context, q batchSender, b *pgx.Batch, accountSID string, months []usage.Month, n, repeats int64) (IngestResult, error) {
	staged := b.Len() // statements already queued: their results come first
	starts := make([]time.Time, len(months))
	for i, m := range months {
		starts[i] = m.Start()
	}
	now := s.now().UTC()
	// Shared month locks come first: the report job takes them exclusively,
	// so it never finalizes a month while a body for it is in flight, and a
	// body that commits after a version sees it and counts as late. The
	// rollup comes last: its rows are the ones concurrent bodies share, so
	// they stay locked for the shortest time.
	b.Queue(lockMonthsShared, monthLockKeys(accountSID, months))
	b.Queue(claimIDs, accountSID)
	b.Queue(insertEvents, accountSID, now)
	b.Queue(upsertUsers, accountSID)
	b.Queue(insertAccountMonths, accountSID)
	b.Queue(flagLate, accountSID, starts)
	b.Queue(upsertMonthUsers, accountSID, now)
	b.Queue(countLate, accountSID)
	names := []string{"lock months", "claim event ids", "insert events", "update users", "record account months",
		"flag revisions", "update month rollup"}
	br := q.SendBatch(ctx, b)
	defer br.Close()
	for range staged {
		if _, err := br.Exec(); err != nil {
			return IngestResult{}, fmt.Errorf("stage events: %w", err)
		}
	}
	var res IngestResult
	for _, name := range names {
		tag, err := br.Exec()
		if err != nil {
			return IngestResult{}, fmt.Errorf("%s: %w", name, err)
		}
		if name == "claim event ids" {
			res.Duplicates = tag.RowsAffected()
		}
	}
	if err := br.QueryRow().Scan(&res.Late); err != nil {
		return IngestResult{}, fmt.Errorf("count late events: %w", err)
	}
	// Closing reads the end of the pipeline: for a connection, its commit.
	if err := br.Close(); err != nil {
		return IngestResult{}, fmt.Errorf("commit events: %w", err)
	}
	res.Accepted = n - res.Duplicates
	res.Duplicates += repeats
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

// columns reads the whole source into one array per staging column, for
// stageBatch.
func (r *stagingRows) columns() []any {
	var (
		ids, activities, sources, services, identities []string
		occurred                                       []time.Time
		months                                         []time.Time
		activityBits, sourceBits, flags                []int16
		actors, channels, endpoints                    []*string
	)
	for r.Next() {
		e := &r.ev
		ids = append(ids, e.ID)
		occurred = append(occurred, e.OccurredAt.UTC())
		months = append(months, r.month.Start())
		activities = append(activities, string(e.Activity))
		activityBits = append(activityBits, e.Activity.Bit())
		sources = append(sources, string(e.Source))
		sourceBits = append(sourceBits, e.Source.Bit())
		services = append(services, e.ServiceSID)
		identities = append(identities, e.Identity)
		actors = append(actors, optional(e.Actor))
		channels = append(channels, optional(e.ChannelSID))
		endpoints = append(endpoints, optional(e.EndpointID))
		flags = append(flags, usage.IdentityFlags(e.Identity))
	}
	return []any{ids, occurred, months, activities, activityBits, sources, sourceBits, services, identities,
		actors, channels, endpoints, flags}
}

// optional is s for a nullable column of an array: nil when empty.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (r *stagingRows) Err() error { return r.srcErr }

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// ensurePartition creates the events partition of month m inside the ingest
// transaction if it does not exist yet. An advisory lock serializes creators
// so two bodies for a new month do not race on the catalog.
func (s *Store) ensurePartition(ctx context.Context, tx pgx.Tx, m usage.Month) error {
	if _, ok := s.partitions.Load(m); ok {
		return nil
	}
	name := partitionName(m)
	var exists bool
	// pg_class is read with a fresh snapshot; to_regclass would consult the
	// catalog cache, which can still miss a partition another transaction
	// committed while this one waited for the lock.
	check := `SELECT EXISTS (SELECT 1 FROM pg_class WHERE relname = $1 AND relnamespace = current_schema()::regnamespace)`
	if err := tx.QueryRow(ctx, check, name).Scan(&exists); err != nil {
		return fmt.Errorf("check partition %s: %w", name, err)
	}
	if !exists {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('tally.events.partition'))`); err != nil {
			return fmt.Errorf("lock partitions: %w", err)
		}
		if err := tx.QueryRow(ctx, check, name).Scan(&exists); err != nil {
			return fmt.Errorf("check partition %s: %w", name, err)
		}
	}
	if !exists {
		// The name and bounds come from a parsed Month, never from input text.
		ddl := fmt.Sprintf(`CREATE TABLE %s PARTITION OF events FOR VALUES FROM ('%s') TO ('%s')`,
			name, m.Start().Format(time.RFC3339), m.End().Format(time.RFC3339))
		if _, err := tx.Exec(ctx, ddl); err != nil {
			return fmt.Errorf("create partition %s: %w", name, err)
		}
		return nil // cached once a later body sees it committed
	}
	s.partitions.Store(m, struct{}{})
	return nil
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

func partitionName(m usage.Month) string {
	return fmt.Sprintf("events_%04d_%02d", m.Year, int(m.Month))
}
