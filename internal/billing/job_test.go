package billing_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tallyhq/tally/internal/billing"
	"github.com/tallyhq/tally/internal/pgtest"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type source struct {
	events []usage.Event
	i      int
}

func (s *source) Next() (usage.Event, error) {
	if s.i >= len(s.events) {
		return usage.Event{}, io.EOF
	}
	s.i++
	return s.events[s.i-1], nil
}

func (s *source) Err() error { return nil }

// fixture is one account on its own database with a movable clock.
type fixture struct {
	t     *testing.T
	pool  *pgxpool.Pool
	store *postgres.Store
	job   *billing.Job
	ac    string
	mu    sync.Mutex
	now   time.Time
	posts int
}

func newFixture(t *testing.T) *fixture {
	pool, _ := pgtest.NewDB(t)
	f := &fixture{t: t, pool: pool, now: time.Date(2026, 10, 20, 12, 0, 0, 0, time.UTC)}
	f.store = postgres.New(pool, f.clock)
	f.job = &billing.Job{Store: f.store, Now: f.clock}
	a, err := f.store.CreateAccount(t.Context(), "Acme", false)
	if err != nil {
		t.Fatal(err)
	}
	f.ac = a.SID
	return f
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) setNow(s string) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.now = t
	f.mu.Unlock()
}

func (f *fixture) post(events ...usage.Event) usage.IngestResult {
	f.t.Helper()
	// Posts alternate between the two ingest paths, a stream (COPY) and an
	// in-memory batch (one pipeline), so consecutive posts exercise both.
	var src usage.EventSource = &source{events: events}
	if f.posts++; f.posts%2 == 0 {
		src = &usage.EventList{Events: events}
	}
	res, err := f.store.RecordEvents(f.t.Context(), f.ac, src)
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

func event(id, service, identity string, a usage.Activity, at string) usage.Event {
	t, err := time.Parse(time.RFC3339, at)
	if err != nil {
		panic(err)
	}
	src := usage.SDK
	if !a.Allows(src) {
		src = usage.REST
	}
	return usage.Event{ID: id, Activity: a, Source: src, ServiceSID: service, Identity: identity, OccurredAt: t}
}

var oct = usage.Month{Year: 2026, Month: time.October}

// roster returns a version's roster as JSON, for byte-for-byte comparisons.
func (f *fixture) roster(version *int) (string, int) {
	f.t.Helper()
	var out []usage.RosterEntry
	err := f.store.Roster(f.t.Context(), postgres.RosterQuery{AccountSID: f.ac, Month: oct, Version: version},
		func(e usage.RosterEntry) error { out = append(out, e); return nil })
	if err != nil {
		f.t.Fatal(err)
	}
	b, _ := json.Marshal(out)
	return string(b), len(out)
}

func (f *fixture) run() billing.Result {
	f.t.Helper()
	res, err := f.job.Run(f.t.Context(), f.ac, oct)
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

func TestFiguresAndVersions(t *testing.T) {
	f := newFixture(t)
	f.post(
		// alice is active in two services: two users, one identity.
		event("a1", "IS1", "alice", usage.Create, "2026-10-01T00:00:00Z"),
		event("a2", "IS1", "alice", usage.Send, "2026-10-02T00:00:00Z"),
		event("a3", "IS2", "alice", usage.Authenticate, "2026-10-03T00:00:00Z"),
		// bob was created through REST and did nothing else: rest-only.
		event("b1", "IS1", "bob", usage.Create, "2026-10-04T00:00:00Z"),
		event("b2", "IS1", "bob", usage.Update, "2026-10-05T00:00:00Z"),
		// carol was active in September: not new in October.
		event("c0", "IS1", "carol", usage.Join, "2026-09-30T23:59:59Z"),
		event("c1", "IS1", "carol", usage.Join, "2026-10-31T23:59:59Z"),
	)

	// Inside the month and its grace period, a run stores nothing.
	res := f.run()
	if res.Stored || res.Report.Version != nil || res.Report.Status != usage.StatusProvisional {
		t.Fatalf("run inside the month: %+v", res)
	}
	f.setNow("2026-11-03T23:59:59Z") // 72h after the month ends, less a second
	if res := f.run(); res.Stored {
		t.Fatal("stored inside the grace period")
	}

	f.setNow("2026-11-04T00:00:00Z")
	res = f.run()
	r := res.Report
	if !res.Stored || r.Version == nil || *r.Version != 1 || r.Status != usage.StatusFinal || r.Supersedes != nil {
		t.Fatalf("first final run: %+v", res)
	}
	if r.ActiveUsers != 4 || r.DistinctIdentities != 3 {
		t.Fatalf("active_users %d distinct_identities %d, want 4 and 3", r.ActiveUsers, r.DistinctIdentities)
	}
	want := map[string]usage.ServiceFigures{
		"IS1": {ServiceSID: "IS1", ActiveUsers: 3, NewUsers: 2, RESTOnlyUsers: 1,
			ByFirstActivity: map[usage.Activity]int64{usage.Create: 2, usage.Join: 1}},
		"IS2": {ServiceSID: "IS2", ActiveUsers: 1, NewUsers: 1, RESTOnlyUsers: 0,
			ByFirstActivity: map[usage.Activity]int64{usage.Authenticate: 1}},
	}
	if len(r.Services) != 2 {
		t.Fatalf("services %+v", r.Services)
	}
	for _, s := range r.Services {
		w := want[s.ServiceSID]
		if s.ActiveUsers != w.ActiveUsers || s.NewUsers != w.NewUsers || s.RESTOnlyUsers != w.RESTOnlyUsers ||
			fmt.Sprint(s.ByFirstActivity) != fmt.Sprint(w.ByFirstActivity) {
			t.Errorf("service %s = %+v, want %+v", s.ServiceSID, s, w)
		}
	}
	rosterV1, n := f.roster(r.Version)
	if int64(n) != r.ActiveUsers {
		t.Fatalf("roster has %d rows, active_users %d", n, r.ActiveUsers)
	}

	// The checksum, recomputed from the stored figures and roster, matches.
	stored, err := f.store.Version(t.Context(), f.ac, oct, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := usage.NewChecksum(f.ac, oct, stored.Version, stored.Figures)
	f.store.Roster(t.Context(), postgres.RosterQuery{AccountSID: f.ac, Month: oct, Version: stored.Version},
		func(e usage.RosterEntry) error { c.Add(e); return nil })
	if got := c.Sum(); got != stored.Checksum || len(got) != 64 {
		t.Fatalf("recomputed checksum %s, stored %s", got, stored.Checksum)
	}

	// A second run with nothing new stores nothing.
	if res := f.run(); res.Stored || *res.Report.Version != 1 {
		t.Fatalf("rerun: %+v", res)
	}

	// A late event of a known user: late, but no user added, no version.
	if got := f.post(event("a4", "IS1", "alice", usage.Send, "2026-10-10T00:00:00Z")); got.Late != 1 {
		t.Fatalf("late event of a known user: %+v, want late 1", got)
	}
	if res := f.run(); res.Stored {
		t.Fatal("a late event that adds no user stored a version")
	}

	// A late event of a new user: version 2 adds one user; version 1 and its
	// roster do not change.
	if got := f.post(event("d1", "IS2", "dave", usage.Join, "2026-10-15T00:00:00Z")); got.Late != 1 || got.Accepted != 1 {
		t.Fatalf("late event: %+v", got)
	}
	if got := f.post(event("d1", "IS2", "dave", usage.Join, "2026-10-15T00:00:00Z")); got.Late != 0 || got.Duplicates != 1 {
		t.Fatalf("duplicate late event: %+v", got)
	}
	f.setNow("2026-11-05T00:00:00Z")
	res = f.run()
	r2 := res.Report
	if !res.Stored || *r2.Version != 2 || r2.Supersedes == nil || *r2.Supersedes != 1 || r2.AddedUsers == nil || *r2.AddedUsers != 1 || r2.ActiveUsers != 5 {
		t.Fatalf("revision: %+v", res)
	}
	v1 := 1
	again, err := f.store.Version(t.Context(), f.ac, oct, &v1)
	if err != nil {
		t.Fatal(err)
	}
	if again.Checksum != stored.Checksum || again.ActiveUsers != 4 || !again.GeneratedAt.Equal(stored.GeneratedAt) {
		t.Fatalf("version 1 changed: %+v", again)
	}
	if after, _ := f.roster(&v1); after != rosterV1 {
		t.Fatal("version 1's roster changed")
	}
	var added []string
	f.store.Roster(t.Context(), postgres.RosterQuery{AccountSID: f.ac, Month: oct, Version: r2.Version, AddedSince: &v1},
		func(e usage.RosterEntry) error { added = append(added, e.ServiceSID+"/"+e.Identity); return nil })
	if fmt.Sprint(added) != "[IS2/dave]" {
		t.Fatalf("added since 1: %v", added)
	}
	// The duplicate late event produced nothing more.
	if res := f.run(); res.Stored {
		t.Fatal("a third version without new users")
	}
}

func TestVersionsAreWriteOnce(t *testing.T) {
	f := newFixture(t)
	f.post(event("a1", "IS1", "alice", usage.Send, "2026-10-01T00:00:00Z"))
	f.setNow("2026-12-01T00:00:00Z")
	f.run()
	for _, sql := range []string{
		`UPDATE report_versions SET active_users = 0`,
		`DELETE FROM report_versions`,
		`TRUNCATE report_versions CASCADE`,
		`UPDATE report_roster SET events = 0`,
		`DELETE FROM report_roster`,
		`TRUNCATE report_roster`,
	} {
		if _, err := f.pool.Exec(t.Context(), sql); err == nil {
			t.Errorf("%s succeeded", sql)
		}
	}
}

func TestConcurrentRunsStoreOneVersion(t *testing.T) {
	f := newFixture(t)
	var evs []usage.Event
	for i := 0; i < 2000; i++ {
		evs = append(evs, event(fmt.Sprint("e", i), "IS1", fmt.Sprint("user-", i), usage.Join, "2026-10-07T00:00:00Z"))
	}
	f.post(evs...)
	f.setNow("2026-12-01T00:00:00Z")
	// Half the runs go through a second store, as on another replica: a
	// store lets one finalization at a time run, so only the month's row
	// lock keeps runs of two stores from both storing.
	replica := &billing.Job{Store: postgres.New(f.pool, f.clock), Now: f.clock}
	var wg sync.WaitGroup
	results := make([]billing.Result, 4)
	errs := make([]error, 4)
	for i := range results {
		job := f.job
		if i%2 == 1 {
			job = replica
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = job.Run(context.Background(), f.ac, oct)
		}()
	}
	wg.Wait()
	stored := 0
	for i, r := range results {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if r.Stored {
			stored++
		}
		if *r.Report.Version != 1 {
			t.Errorf("run %d saw version %d", i, *r.Report.Version)
		}
	}
	var versions int
	if err := f.pool.QueryRow(t.Context(), `SELECT count(*) FROM report_versions`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if stored != 1 || versions != 1 {
		t.Fatalf("%d runs stored, %d versions, want 1 and 1", stored, versions)
	}
}

func TestMonthWithNoEvents(t *testing.T) {
	f := newFixture(t)
	res := f.run()
	if res.Report.ActiveUsers != 0 || len(res.Report.Services) != 0 || res.Report.EventsThrough != nil || res.Report.Checksum == "" {
		t.Fatalf("provisional empty month: %+v", res.Report)
	}
	f.setNow("2026-12-01T00:00:00Z")
	res = f.run()
	if !res.Stored || *res.Report.Version != 1 || res.Report.ActiveUsers != 0 {
		t.Fatalf("final empty month: %+v", res)
	}
}

func TestScheduler(t *testing.T) {
	f := newFixture(t)
	f.post(event("a1", "IS1", "alice", usage.Send, "2026-09-10T00:00:00Z"), event("a2", "IS1", "alice", usage.Send, "2026-10-10T00:00:00Z"))
	f.setNow("2026-11-02T00:00:00Z") // September is past its grace; October is not
	n, err := f.job.RunDue(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("RunDue stored %d (%v), want 1 (September)", n, err)
	}
	if n, _ := f.job.RunDue(t.Context()); n != 0 {
		t.Fatalf("second RunDue stored %d", n)
	}
	f.setNow("2026-11-04T00:00:00Z")
	if n, _ := f.job.RunDue(t.Context()); n != 1 {
		t.Fatalf("RunDue after October's grace stored %d, want 1", n)
	}
	// A late event adding a user to September is revised by the scheduler.
	f.post(event("b1", "IS1", "bob", usage.Send, "2026-09-11T00:00:00Z"))
	if n, _ := f.job.RunDue(t.Context()); n != 1 {
		t.Fatalf("RunDue after a late event stored %d, want 1", n)
	}
	sep := usage.Month{Year: 2026, Month: time.September}
	r, err := f.store.Version(t.Context(), f.ac, sep, nil)
	if err != nil || *r.Version != 2 || *r.AddedUsers != 1 {
		t.Fatalf("September: %+v %v", r, err)
	}
	if n, _ := f.job.RunDue(t.Context()); n != 0 {
		t.Fatalf("nothing due, stored %d", n)
	}
}

func TestRateCardStoredWithVersion(t *testing.T) {
	f := newFixture(t)
	f.post(event("a1", "IS1", "alice", usage.Send, "2026-10-01T00:00:00Z"))
	card1 := json.RawMessage(`{"currency":"USD","free_users":0,"tiers":[{"up_to":null,"unit_price":"0.05"}]}`)
	if err := f.store.SetRateCard(t.Context(), f.ac, card1); err != nil {
		t.Fatal(err)
	}
	f.setNow("2026-12-01T00:00:00Z")
	f.run()
	if err := f.store.SetRateCard(t.Context(), f.ac,
		json.RawMessage(`{"currency":"EUR","free_users":5,"tiers":[{"up_to":null,"unit_price":"1"}]}`)); err != nil {
		t.Fatal(err)
	}
	r, err := f.store.Version(t.Context(), f.ac, oct, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got, want any
	json.Unmarshal(r.RateCard, &got)
	json.Unmarshal(card1, &want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("version's rate card %s, want the one in force when it was made", r.RateCard)
	}
}
