package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tallyhq/tally/internal/pgtest"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

var clock = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// sliceSource feeds events to RecordEvents; err is what Err reports.
type sliceSource struct {
	events []usage.Event
	i      int
	err    error
}

func (s *sliceSource) Next() (usage.Event, error) {
	if s.i >= len(s.events) {
		return usage.Event{}, io.EOF
	}
	s.i++
	return s.events[s.i-1], nil
}

func (s *sliceSource) Err() error { return s.err }

func events(es ...usage.Event) *sliceSource { return &sliceSource{events: es} }

func ev(id, identity string, at string) usage.Event {
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		panic(err)
	}
	return usage.Event{ID: id, Activity: usage.Send, Source: usage.SDK, ServiceSID: "IS1", Identity: identity, OccurredAt: t}
}

// newStore returns a store on a fresh database with one account.
func newStore(t *testing.T) (*postgres.Store, *pgxpool.Pool, string) {
	t.Helper()
	pool, _ := pgtest.NewDB(t)
	s := postgres.New(pool, func() time.Time { return clock })
	a, err := s.CreateAccount(t.Context(), "Acme", false)
	if err != nil {
		t.Fatal(err)
	}
	return s, pool, a.SID
}

func record(t *testing.T, s *postgres.Store, account string, src usage.EventSource) usage.IngestResult {
	t.Helper()
	res, err := s.RecordEvents(t.Context(), account, src)
	if err != nil {
		t.Fatalf("RecordEvents: %v", err)
	}
	return res
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// fold folds every pending event into the rollup, for a test that reads
// month_users or users directly (the store's reads merge pending events in
// by themselves).
func fold(t *testing.T, s *postgres.Store) {
	t.Helper()
	if _, err := s.FoldRollup(t.Context(), ""); err != nil {
		t.Fatalf("FoldRollup: %v", err)
	}
}

func activeUsers(t *testing.T, s *postgres.Store, account, month string) int64 {
	t.Helper()
	m, err := usage.ParseMonth(month)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.ActiveUsers(t.Context(), account, m)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRetryCountsDuplicatesAndChangesNothing(t *testing.T) {
	s, pool, ac := newStore(t)
	batch := []usage.Event{
		ev("e1", "alice", "2026-10-05T12:00:00Z"),
		ev("e2", "bob", "2026-10-06T12:00:00Z"),
		ev("e3", "alice", "2026-10-07T12:00:00Z"),
	}
	got := record(t, s, ac, events(batch...))
	if got != (usage.IngestResult{Accepted: 3}) {
		t.Fatalf("first post = %+v, want 3 accepted", got)
	}
	rollup := func() string {
		fold(t, s)
		var out string
		err := pool.QueryRow(t.Context(), `SELECT string_agg(format('%s|%s|%s|%s|%s', identity, events, first_event_id, first_at, last_at), ';' ORDER BY identity) FROM month_users`).Scan(&out)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := rollup()

	got = record(t, s, ac, events(batch...))
	if got != (usage.IngestResult{Duplicates: 3}) {
		t.Fatalf("retry = %+v, want 3 duplicates", got)
	}
	// A retry that carries another occurred_at is still the same event.
	moved := ev("e1", "alice", "2026-09-01T00:00:00Z")
	got = record(t, s, ac, events(moved))
	if got != (usage.IngestResult{Duplicates: 1}) {
		t.Fatalf("retry with another occurred_at = %+v, want 1 duplicate", got)
	}
	if after := rollup(); after != before {
		t.Fatalf("rollup changed on retry:\n%s\n%s", before, after)
	}
	if n := count(t, pool, `SELECT count(*) FROM events`); n != 3 {
		t.Fatalf("%d events stored, want 3", n)
	}
	if n := activeUsers(t, s, ac, "2026-09"); n != 0 {
		t.Fatalf("September has %d active users, want 0", n)
	}
	if n := activeUsers(t, s, ac, "2026-10"); n != 2 {
		t.Fatalf("October has %d active users, want 2", n)
	}
}

func TestIdempotencyIsPerAccount(t *testing.T) {
	s, pool, ac := newStore(t)
	other, err := s.CreateAccount(t.Context(), "Other", false)
	if err != nil {
		t.Fatal(err)
	}
	e := ev("same-id", "alice", "2026-10-05T12:00:00Z")
	record(t, s, ac, events(e))
	if got := record(t, s, other.SID, events(e)); got.Accepted != 1 {
		t.Fatalf("other account's post = %+v, want accepted", got)
	}
	if n := count(t, pool, `SELECT count(*) FROM events`); n != 2 {
		t.Fatalf("%d events, want 2", n)
	}
}

func TestRepeatedIDWithinBodyIsDuplicate(t *testing.T) {
	body := []usage.Event{
		ev("e1", "alice", "2026-10-05T12:00:00Z"),
		ev("e1", "bob", "2026-10-05T12:00:00Z"),
		ev("e2", "bob", "2026-10-05T12:00:00Z"),
	}
	for name, src := range map[string]usage.EventSource{"stream": events(body...), "batch": &usage.EventList{Events: body}} {
		t.Run(name, func(t *testing.T) {
			s, pool, ac := newStore(t)
			got := record(t, s, ac, src)
			if got != (usage.IngestResult{Accepted: 2, Duplicates: 1}) {
				t.Fatalf("got %+v, want 2 accepted 1 duplicate", got)
			}
			// The first occurrence wins.
			if n := count(t, pool, `SELECT count(*) FROM events WHERE event_id = 'e1' AND identity = 'alice'`); n != 1 {
				t.Fatal("first occurrence of e1 not stored")
			}
			// A retry of the whole body is all duplicates.
			if got := record(t, s, ac, &usage.EventList{Events: body}); got != (usage.IngestResult{Duplicates: 3}) {
				t.Fatalf("retry = %+v, want 3 duplicates", got)
			}
		})
	}
}

func TestInvalidBodyStoresNothing(t *testing.T) {
	s, pool, ac := newStore(t)
	src := events(ev("e1", "alice", "2026-10-05T12:00:00Z"), ev("e2", "bob", "2026-10-05T12:00:00Z"))
	src.err = &usage.ValidationError{Errors: []usage.FieldError{{Index: 2, Field: "source", Message: "bad"}}}
	_, err := s.RecordEvents(t.Context(), ac, src)
	var verr *usage.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err = %v, want the validation error", err)
	}
	for _, table := range []string{"events", "month_users", "users", "account_months"} {
		if n := count(t, pool, `SELECT count(*) FROM `+table); n != 0 {
			t.Errorf("%s holds %d rows after a refused body", table, n)
		}
	}
}

func TestMonthBoundaries(t *testing.T) {
	s, pool, ac := newStore(t)
	record(t, s, ac, events(
		ev("oct-last", "a", "2026-10-31T23:59:59.999999Z"),
		ev("nov-first", "b", "2026-11-01T00:00:00Z"),
		ev("offset-oct", "c", "2026-11-01T04:59:59+05:00"),
		ev("offset-nov", "d", "2026-11-01T05:00:00+05:00"),
	))
	tests := []struct {
		id, month, at string
	}{
		{"oct-last", "2026-10-01", "2026-10-31T23:59:59.999999Z"},
		{"nov-first", "2026-11-01", "2026-11-01T00:00:00Z"},
		{"offset-oct", "2026-10-01", "2026-10-31T23:59:59Z"},
		{"offset-nov", "2026-11-01", "2026-11-01T00:00:00Z"},
	}
	fold(t, s)
	for _, tt := range tests {
		var month string
		err := pool.QueryRow(t.Context(), `SELECT month::text FROM month_users WHERE first_event_id = $1`, tt.id).Scan(&month)
		if err != nil || month != tt.month {
			t.Errorf("%s in month %q (%v), want %s", tt.id, month, err, tt.month)
		}
		var at time.Time
		err = pool.QueryRow(t.Context(), `SELECT occurred_at FROM events WHERE event_id = $1`, tt.id).Scan(&at)
		if want, _ := time.Parse(time.RFC3339Nano, tt.at); err != nil || !at.Equal(want) {
			t.Errorf("%s stored as occurred at %v (%v), want %s", tt.id, at, err, tt.at)
		}
	}
	if a, b := activeUsers(t, s, ac, "2026-10"), activeUsers(t, s, ac, "2026-11"); a != 2 || b != 2 {
		t.Fatalf("October %d, November %d active users, want 2 and 2", a, b)
	}
}

// TestEventsOfAnyMonth stores events of months nothing prepared for.
func TestEventsOfAnyMonth(t *testing.T) {
	s, pool, ac := newStore(t)
	record(t, s, ac, events(ev("old", "a", "2000-01-01T00:00:00Z"), ev("y2k9", "b", "2009-06-15T00:00:00Z")))
	if n := count(t, pool, `SELECT count(*) FROM events`); n != 2 {
		t.Fatalf("%d events stored, want 2", n)
	}
	if a, b := activeUsers(t, s, ac, "2000-01"), activeUsers(t, s, ac, "2009-06"); a != 1 || b != 1 {
		t.Fatalf("January 2000 %d, June 2009 %d active users, want 1 and 1", a, b)
	}
}

// TestRollupMatchesEvents posts random events in random batches and checks
// every rollup figure against a scan of the events.
func TestRollupMatchesEvents(t *testing.T) {
	s, pool, ac := newStore(t)
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)
	var all []usage.Event
	for i := 0; i < 3000; i++ {
		a := usage.Activities[rng.IntN(8)]
		src := usage.SDK
		if a == usage.Create || a == usage.Update || (a.Allows(usage.REST) && rng.IntN(2) == 0) {
			src = usage.REST
		}
		e := usage.Event{
			ID:         fmt.Sprintf("e%d", rng.IntN(2500)), // some ids repeat
			Activity:   a,
			Source:     src,
			ServiceSID: fmt.Sprintf("IS%d", rng.IntN(3)),
			Identity:   fmt.Sprintf("user-%d", rng.IntN(150)),
			OccurredAt: start.Add(time.Duration(rng.Int64N(int64(90 * 24 * time.Hour)))),
		}
		if rng.IntN(3) == 0 {
			e.EndpointID = fmt.Sprintf("ep-%d", rng.IntN(5))
		}
		all = append(all, e)
	}
	// Bodies alternate between a stream (COPY) and an in-memory Batch
	// (staged with the other statements): both paths must agree.
	for i := 0; len(all) > 0; i++ {
		n := min(len(all), 1+rng.IntN(400))
		var src usage.EventSource = events(all[:n]...)
		if i%2 == 1 {
			src = &usage.EventList{Events: all[:n]}
		}
		record(t, s, ac, src)
		all = all[n:]
		// Folds fall between arbitrary bodies: folding in any grouping
		// must give the rollup of folding everything at once.
		if rng.IntN(4) == 0 {
			fold(t, s)
		}
	}
	fold(t, s)
	const compare = `
WITH e AS (
  SELECT date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date AS month, service_sid, identity,
         count(*) AS events, min(occurred_at) AS first_at, max(occurred_at) AS last_at,
         (array_agg(event_id ORDER BY occurred_at, event_id))[1] AS first_event_id,
         (array_agg(activity ORDER BY occurred_at, event_id))[1] AS first_activity,
         coalesce(array_agg(DISTINCT endpoint_id COLLATE "C" ORDER BY endpoint_id COLLATE "C") FILTER (WHERE endpoint_id IS NOT NULL), '{}') AS endpoints
  FROM events WHERE account_sid = $1 GROUP BY 1, 2, 3)
SELECT count(*) FROM e FULL JOIN month_users m USING (month, service_sid, identity)
WHERE m.account_sid IS NULL OR e.month IS NULL OR e.events <> m.events OR e.first_at <> m.first_at
   OR e.last_at <> m.last_at OR e.first_event_id <> m.first_event_id
   OR e.first_activity <> m.first_activity OR e.endpoints <> m.endpoints`
	if n := count(t, pool, compare, ac); n != 0 {
		t.Fatalf("%d rollup rows disagree with the events", n)
	}
	distinct := count(t, pool, `SELECT count(DISTINCT (service_sid, identity)) FROM events
		WHERE account_sid = $1 AND occurred_at >= '2026-09-01' AND occurred_at < '2026-10-01'`, ac)
	if got := activeUsers(t, s, ac, "2026-09"); got != distinct || got == 0 {
		t.Fatalf("ActiveUsers = %d, count(DISTINCT) = %d", got, distinct)
	}
	if n := count(t, pool, `SELECT count(*) FROM users u FULL JOIN (
		SELECT service_sid, identity, date_trunc('month', min(occurred_at) AT TIME ZONE 'UTC')::date f
		FROM events GROUP BY 1, 2) e
		USING (service_sid, identity) WHERE u.first_month IS DISTINCT FROM e.f`); n != 0 {
		t.Fatalf("%d users rows disagree with the events", n)
	}
}

// TestConcurrentOverlappingBatches has 4 clients post batches that share
// users (and some event ids) for a while: no error (no deadlock), and the
// counts are exact.
func TestConcurrentOverlappingBatches(t *testing.T) {
	t.Parallel()
	s, pool, ac := newStore(t)
	duration := 60 * time.Second
	if testing.Short() {
		duration = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(t.Context(), duration)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 5)
	var mu sync.Mutex
	sent := map[string]usage.Event{} // first accepted... every id maps to one event
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for b := 0; ctx.Err() == nil; b++ {
				batch := make([]usage.Event, 0, 200)
				for i := 0; i < 200; i++ {
					// Ids are a function of their content, so whichever client
					// wins a shared id stores the same event.
					u := rng.IntN(300)
					day := rng.IntN(60)
					id := fmt.Sprintf("u%d-d%d-%d", u, day, rng.IntN(3))
					batch = append(batch, usage.Event{ID: id, Activity: usage.Join, Source: usage.SDK,
						ServiceSID: "IS1", Identity: fmt.Sprintf("user-%d", u),
						OccurredAt: time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, day)})
				}
				// Shuffled, so that lock order comes from the store, not the client.
				rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
				if _, err := s.RecordEvents(context.WithoutCancel(ctx), ac, events(batch...)); err != nil {
					errc <- fmt.Errorf("client %d batch %d: %w", c, b, err)
					return
				}
				mu.Lock()
				for _, e := range batch {
					sent[e.ID] = e
				}
				mu.Unlock()
			}
		}()
	}
	// Folds run while the bodies commit: a pending event is folded once,
	// by whichever fold deletes it or empties its slot, and one committed
	// after a fold's snapshot waits for the next.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			// Every account's (switching slots), then as a read of the
			// account folds (deleting from both slots).
			account := []string{"", ac}[i%2]
			if _, err := s.FoldRollup(context.WithoutCancel(ctx), account); err != nil {
				errc <- fmt.Errorf("fold: %w", err)
				return
			}
			time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
		}
	}()
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if n := count(t, pool, `SELECT count(*) FROM events`); n != int64(len(sent)) {
		t.Fatalf("%d events stored, %d distinct ids sent", n, len(sent))
	}
	want := map[string]map[string]bool{}
	for _, e := range sent {
		m := usage.MonthOf(e.OccurredAt).String()
		if want[m] == nil {
			want[m] = map[string]bool{}
		}
		want[m][e.Identity] = true
	}
	for m, users := range want {
		if got := activeUsers(t, s, ac, m); got != int64(len(users)) {
			t.Errorf("%s: %d active users, want %d", m, got, len(users))
		}
	}
	if n := count(t, pool, `SELECT coalesce(sum(events), 0) FROM month_users`); n != int64(len(sent)) {
		t.Fatalf("rollup counts %d events, want %d", n, len(sent))
	}
}

// TestReadsSeePendingEvents: a read of the rollup right after a body is
// acknowledged sees it, with no fold in between and without folding; and
// the background fold empties the pending table by itself.
func TestReadsSeePendingEvents(t *testing.T) {
	s, pool, ac := newStore(t)
	record(t, s, ac, events(ev("e1", "alice", "2026-10-05T12:00:00Z"), ev("e2", "bob", "2026-10-06T12:00:00Z")))
	if got := activeUsers(t, s, ac, "2026-10"); got != 2 {
		t.Fatalf("ActiveUsers = %d right after the body, want 2", got)
	}
	if n := count(t, pool, `SELECT count(*) FROM rollup_pending`); n != 2 {
		t.Fatalf("%d events pending after a read, want 2: reads do not fold", n)
	}

	record(t, s, ac, events(ev("e3", "carol", "2026-10-07T12:00:00Z")))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	var foldedAccounts sync.Map
	onFolded := func(a string) { foldedAccounts.Store(a, true) }
	go func() { s.FoldInBackground(ctx, 10*time.Millisecond, 2, onFolded, nil); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for count(t, pool, `SELECT count(*) FROM rollup_pending`) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the background fold left events pending for 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if n := count(t, pool, `SELECT count(*) FROM month_users WHERE month = '2026-10-01'`); n != 3 {
		t.Fatalf("%d month_users rows after the background fold, want 3", n)
	}
	if _, ok := foldedAccounts.Load(ac); !ok {
		t.Fatal("the background fold folded the account without telling onFolded")
	}
}

// TestFoldKeepsControlCharacters: the fold aggregates first events and
// endpoints through escaped text; ids and endpoints holding the escape's
// own bytes, or prefixes of each other, must come out whole and in byte
// order.
func TestFoldKeepsControlCharacters(t *testing.T) {
	s, pool, ac := newStore(t)
	mk := func(id, endpoint string) usage.Event {
		e := ev(id, "alice", "2026-10-05T12:00:00Z")
		e.EndpointID = endpoint
		return e
	}
	record(t, s, ac, events(mk("ab\x01", "x\x01"), mk("ab\x01\x01", "x"), mk("ab", "\x01"), mk("ab\x02", "x\x01\x01y")))
	fold(t, s)
	var first string
	var endpoints []string
	err := pool.QueryRow(t.Context(), `SELECT first_event_id, endpoints FROM month_users WHERE identity = 'alice'`).Scan(&first, &endpoints)
	if err != nil {
		t.Fatal(err)
	}
	if first != "ab" {
		t.Errorf("first_event_id = %q, want %q", first, "ab")
	}
	want := []string{"\x01", "x", "x\x01", "x\x01\x01y"}
	if fmt.Sprint(endpoints) != fmt.Sprint(want) || len(endpoints) != len(want) {
		t.Errorf("endpoints = %q, want %q", endpoints, want)
	}
}

// TestFoldPlansAfresh folds again and again on one connection: no fold may
// run a cached generic plan, which would keep the plan made when users was
// empty (a sequential scan of users per new user-month) once users is large.
func TestFoldPlansAfresh(t *testing.T) {
	_, url := pgtest.NewDB(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1 // one session, so its prepared statements can be read back
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s := postgres.New(pool, func() time.Time { return clock })
	a, err := s.CreateAccount(t.Context(), "Acme", false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		record(t, s, a.SID, &usage.EventList{Events: []usage.Event{ev(fmt.Sprintf("e%d", i), fmt.Sprintf("user-%d", i), "2026-10-05T12:00:00Z")}})
		fold(t, s)
	}
	var generic, custom int64
	err = pool.QueryRow(t.Context(), `SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0)
		FROM pg_prepared_statements WHERE statement LIKE 'INSERT INTO month_users%'`).Scan(&generic, &custom)
	if err != nil {
		t.Fatal(err)
	}
	if generic != 0 || custom < 12 {
		t.Fatalf("the fold ran %d generic and %d custom plans, want 0 and at least 12", generic, custom)
	}
	if n := count(t, pool, `SELECT count(*) FROM users`); n != 12 {
		t.Fatalf("%d users, want 12", n)
	}
}

// TestFoldProbesUsersByIndex: the fold must probe users through its
// primary key, by identity, even when the planner takes the account for
// empty. Planned on an empty table, the probe was a sequential scan per new
// user, over the pages the same statement was filling; planned for an
// account the statistics did not know yet (a new one, ingesting), it was a
// scan of the account's users of the service through users_first_month
// (its leading columns matched the probe's account too, and the index is
// smaller): both quadratic in the users of the account, 4 s for a fold of
// 5 000 events.
func TestFoldProbesUsersByIndex(t *testing.T) {
	s, pool, ac := newStore(t)
	// As after autovacuum analyzed the tables while they were empty.
	if _, err := pool.Exec(t.Context(), `ANALYZE users; ANALYZE rollup_pending`); err != nil {
		t.Fatal(err)
	}
	probe := func(account string, want *regexp.Regexp) {
		t.Helper()
		tx, err := pool.Begin(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(t.Context())
		if _, err := tx.Exec(t.Context(), postgres.SetFoldSettings); err != nil {
			t.Fatal(err)
		}
		plan := explain(t, tx, postgres.FoldUsers, account, 0, 1)
		if strings.Contains(plan, "Seq Scan on users") {
			t.Fatalf("the fold scans users sequentially:\n%s", plan)
		}
		if !want.MatchString(plan) {
			t.Fatalf("the fold does not probe users as %s:\n%s", want, plan)
		}
	}
	// On Citus the plan is the worker's, on shards (users_102027).
	// Empty, any index will do; planned for users that grew since, an
	// index over all of users would not.
	probe(ac, regexp.MustCompile(`Index (Only )?Scan using \w+ on users(_\d+)? k`))

	// An account with many users, analyzed, beside a new one.
	var l usage.EventList
	for i := range 5000 {
		l.Events = append(l.Events, ev(fmt.Sprintf("e%d", i), fmt.Sprintf("user-%d", i), "2026-10-05T12:00:00Z"))
	}
	record(t, s, ac, &l)
	fold(t, s)
	if _, err := pool.Exec(t.Context(), `ANALYZE users; ANALYZE rollup_pending`); err != nil {
		t.Fatal(err)
	}
	fresh, err := s.CreateAccount(t.Context(), "New", false)
	if err != nil {
		t.Fatal(err)
	}
	// On Citus, in the same shard as the account with the users: a shard
	// of nobody's users is empty, and any index will do there.
	for i := 0; pgtest.Engine() == "citus"; i++ {
		const shard = `SELECT get_shard_id_for_distribution_column('users', $1::text)`
		if count(t, pool, shard, fresh.SID) == count(t, pool, shard, ac) {
			break
		}
		if i == 200 {
			t.Fatal("no new account in the shard of the first in 200 tries")
		}
		if fresh, err = s.CreateAccount(t.Context(), fmt.Sprint("New ", i), false); err != nil {
			t.Fatal(err)
		}
	}
	probe(fresh.SID, regexp.MustCompile(`Index (Only )?Scan using users_pkey(_\d+)? on users(_\d+)? k`))
}

// explain returns the text plan of a statement.
func explain(t *testing.T, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, args ...any) string {
	t.Helper()
	rows, err := q.Query(t.Context(), "EXPLAIN "+sql, args...)
	if err != nil {
		t.Fatalf("explain: %v", err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("explain: %v", err)
	}
	return strings.Join(lines, "\n")
}

// TestFoldIsNotJITCompiled: with the fold's enable_seqscan off, a scan
// costs over 10^10, past jit_above_cost, and compiling a fold statement
// took ~0.5 s even with nothing to fold. Every read of the rollup folds
// first, so each report and each identity statistic paid it.
func TestFoldIsNotJITCompiled(t *testing.T) {
	_, pool, ac := newStore(t)
	tx, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context())
	var available bool
	if err := tx.QueryRow(t.Context(), `SELECT pg_jit_available()`).Scan(&available); err != nil {
		t.Fatal(err)
	}
	if !available {
		t.Log("this cluster has no JIT provider: nothing here could be compiled")
	}
	if _, err := tx.Exec(t.Context(), postgres.SetFoldSettings); err != nil {
		t.Fatal(err)
	}
	for name, sql := range map[string]string{"month users": postgres.FoldMonthUsers, "users": postgres.FoldUsers,
		"delete": postgres.FoldDelete} {
		var plan string
		if err := tx.QueryRow(t.Context(), "EXPLAIN (FORMAT JSON) "+sql, ac, 0, 1).Scan(&plan); err != nil {
			t.Fatalf("explain the %s fold: %v", name, err)
		}
		if strings.Contains(plan, `"JIT"`) {
			t.Errorf("the %s fold is JIT-compiled:\n%s", name, plan)
		}
	}
}

// TestConcurrentFoldsFoldEachEventOnce folds one account from several
// goroutines of two stores at once while bodies keep arriving: folds that
// race for the same events start again, and every event reaches the rollup
// exactly once.
func TestConcurrentFoldsFoldEachEventOnce(t *testing.T) {
	s, pool, ac := newStore(t)
	ctx := t.Context()
	const bodies, perBody = 20, 50
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var folded [4]int64
	// Two stores, as two replicas: within one store folds of an account
	// queue, across stores they race.
	replicas := []*postgres.Store{s, postgres.New(pool, func() time.Time { return clock })}
	for g := range folded {
		wg.Go(func() {
			for {
				n, err := replicas[g%2].FoldRollup(ctx, ac)
				if err != nil {
					t.Error(err)
					return
				}
				folded[g] += n
				select {
				case <-stop:
					return
				default:
				}
			}
		})
	}
	for b := range bodies {
		var es []usage.Event
		for i := range perBody {
			// Users recur across bodies, so folds merge into the same rows.
			es = append(es, ev(fmt.Sprintf("b%d-%d", b, i), fmt.Sprintf("user-%d", (b*7+i)%60),
				fmt.Sprintf("2026-10-%02dT12:00:00Z", 1+(b+i)%28)))
		}
		record(t, s, ac, &usage.EventList{Events: es})
	}
	close(stop)
	wg.Wait()
	fold(t, s)
	total := int64(0)
	for _, n := range folded {
		total += n
	}
	if n := count(t, pool, `SELECT sum(events) FROM month_users WHERE account_sid = $1`, ac); n != bodies*perBody {
		t.Fatalf("the rollup counts %d events, want %d", n, bodies*perBody)
	}
	if n := count(t, pool, `SELECT count(*) FROM month_users WHERE account_sid = $1`, ac); n != 60 {
		t.Fatalf("%d user-months, want 60", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM users WHERE account_sid = $1`, ac); n != 60 {
		t.Fatalf("%d users, want 60", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM rollup_pending`); n != 0 {
		t.Fatalf("%d events still pending", n)
	}
}

// TestReadDoesNotWaitForAFold holds a fold of one account open and reads
// that account and another: neither read waits for the fold, and the read
// of the account being folded sees its events, still pending in the
// read's snapshot.
func TestReadDoesNotWaitForAFold(t *testing.T) {
	s, pool, busy := newStore(t)
	other, err := s.CreateAccount(t.Context(), "Other", false)
	if err != nil {
		t.Fatal(err)
	}
	record(t, s, busy, events(ev("e1", "alice", "2026-10-05T12:00:00Z")))
	record(t, s, other.SID, events(ev("e1", "bob", "2026-10-05T12:00:00Z")))

	// A fold of busy that has merged and deleted but not committed.
	tx, err := pool.BeginTx(t.Context(), pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context())
	for _, sql := range []string{postgres.SetFoldSettings, postgres.FoldMonthUsers, postgres.FoldUsers, postgres.FoldDelete} {
		args := []any{busy, 0, 1} // the whole account, as one part
		if sql == postgres.SetFoldSettings {
			args = nil
		}
		if _, err := tx.Exec(t.Context(), sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	m, err := usage.ParseMonth("2026-10")
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.ActiveUsers(ctx, other.SID, m)
	if err != nil {
		t.Fatalf("reading another account while a fold is in flight: %v", err)
	}
	if n != 1 {
		t.Fatalf("ActiveUsers = %d, want 1", n)
	}
	n, err = s.ActiveUsers(ctx, busy, m)
	if err != nil {
		t.Fatalf("reading an account while its fold is in flight: %v", err)
	}
	if n != 1 {
		t.Fatalf("ActiveUsers of the account being folded = %d, want 1", n)
	}
	// The reads of every account at once: the platform's month and the
	// console's list.
	reports, err := s.MonthReports(ctx, []string{busy, other.SID}, m)
	if err != nil {
		t.Fatalf("the platform's month while a fold is in flight: %v", err)
	}
	if a, b := reports[busy].ActiveUsers, reports[other.SID].ActiveUsers; a != 1 || b != 1 {
		t.Fatalf("the platform's month: %d and %d active users, want 1 and 1", a, b)
	}
	list, err := s.AccountsMonth(ctx, m)
	if err != nil {
		t.Fatalf("the console's accounts while a fold is in flight: %v", err)
	}
	for _, a := range list {
		if a.ActiveUsers != 1 {
			t.Fatalf("the console's accounts: %s has %d active users, want 1", a.Account.SID, a.ActiveUsers)
		}
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := activeUsers(t, s, busy, "2026-10"); got != 1 {
		t.Fatalf("the busy account has %d active users, want 1", got)
	}
}

// waitFor polls a count until it is positive.
func waitFor(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int64
		if err := pool.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s", sql)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOptionalFieldsStored: a batch (column arrays) and a stream (COPY into
// staging) store the optional fields alike: as given, and NULL when absent.
func TestOptionalFieldsStored(t *testing.T) {
	s, pool, ac := newStore(t)
	full := func(id string) usage.Event {
		e := ev(id, "alice", "2026-11-05T12:00:00Z")
		e.Actor, e.ChannelSID, e.EndpointID = "bob", "CH1", "alice-phone"
		return e
	}
	record(t, s, ac, &usage.EventList{Events: []usage.Event{full("b1"), ev("b2", "alice", "2026-11-05T12:00:01Z")}})
	record(t, s, ac, events(full("s1"), ev("s2", "alice", "2026-11-05T12:00:02Z")))
	rows, err := pool.Query(t.Context(), `SELECT event_id, coalesce(actor, '<null>'), coalesce(channel_sid, '<null>'),
		coalesce(endpoint_id, '<null>') FROM events WHERE account_sid = $1 ORDER BY event_id`, ac)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var id, actor, channel, endpoint string
		if err := rows.Scan(&id, &actor, &channel, &endpoint); err != nil {
			t.Fatal(err)
		}
		got = append(got, id+" "+actor+" "+channel+" "+endpoint)
	}
	want := []string{"b1 bob CH1 alice-phone", "b2 <null> <null> <null>", "s1 bob CH1 alice-phone", "s2 <null> <null> <null>"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stored:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := count(t, pool, `SELECT count(*) FROM rollup_pending WHERE account_sid = $1 AND endpoint_id IS NULL`, ac); n != 2 {
		t.Errorf("%d pending events without an endpoint, want 2", n)
	}
}
