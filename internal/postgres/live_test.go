package postgres_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/pgtest"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// TestReadsWithPendingEventsMatchFoldedReads: every read of the rollup
// answers the same with events pending (merged in by the read, live.go) as
// after they are folded. The events span three months, services and
// lookalike identities, arrive late (a month's events after later months
// were folded, so a user's first month moves earlier) and are folded now
// and then, so pending events meet rollup rows of the same user-month,
// users already known and users that are new.
func TestReadsWithPendingEventsMatchFoldedReads(t *testing.T) {
	s, pool, ac := newStore(t)
	rng := rand.New(rand.NewPCG(27, 1))
	aug := time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)
	var all []usage.Event
	for i := range 3000 {
		a := usage.Activities[rng.IntN(8)]
		src := usage.SDK
		if !a.Allows(usage.SDK) || (a.Allows(usage.REST) && rng.IntN(2) == 0) {
			src = usage.REST
		}
		identity := insightIdentities[rng.IntN(len(insightIdentities))]
		if rng.IntN(3) > 0 {
			identity = fmt.Sprintf("%s-%d", []string{"u", "U", "u "}[rng.IntN(3)], rng.IntN(300))
		}
		e := usage.Event{ID: fmt.Sprintf("l%d", i), Activity: a, Source: src,
			ServiceSID: fmt.Sprintf("IS%d", rng.IntN(2)), Identity: identity,
			OccurredAt: aug.Add(time.Duration(rng.Int64N(int64(92 * 24 * time.Hour))))}
		if rng.IntN(2) == 0 {
			e.EndpointID = fmt.Sprintf("ep%d", rng.IntN(5))
		}
		all = append(all, e)
	}
	// October and September first, August last: late events.
	late := func(e usage.Event) int { return -int(e.OccurredAt.Month()) }
	for i := range all {
		for j := i; j > 0 && late(all[j]) < late(all[j-1]) && rng.IntN(4) > 0; j-- {
			all[j], all[j-1] = all[j-1], all[j]
		}
	}
	for body := 0; len(all) > 0; body++ {
		n := min(len(all), 1+rng.IntN(300))
		record(t, s, ac, &usage.EventList{Events: all[:n]})
		if body%3 == 1 && len(all) > n {
			fold(t, s)
		}
		all = all[n:]
	}

	pending := count(t, pool, `SELECT count(*) FROM rollup_pending`)
	if pending == 0 {
		t.Fatal("no event is pending: the test needs reads that merge them in")
	}
	live := readEverything(t, s, ac)
	if n := count(t, pool, `SELECT count(*) FROM rollup_pending`); n != pending {
		t.Fatalf("%d events pending after the reads, %d before: a read folded", n, pending)
	}
	fold(t, s)
	if n := count(t, pool, `SELECT count(*) FROM rollup_pending`); n != 0 {
		t.Fatalf("%d events pending after a fold", n)
	}
	folded := readEverything(t, s, ac)
	if len(live) != len(folded) {
		t.Fatalf("%d reads with events pending, %d folded", len(live), len(folded))
	}
	for name, want := range folded {
		if got := live[name]; got != want {
			t.Errorf("%s with %d events pending:\n%s\nfolded:\n%s", name, pending, got, want)
		}
	}
}

// readEverything runs every read of the rollup and returns each answer as
// JSON, by name.
func readEverything(t *testing.T, s *postgres.Store, ac string) map[string]string {
	t.Helper()
	ctx := t.Context()
	out := map[string]string{}
	put := func(name string, v any, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err := json.MarshalIndent(v, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		out[name] = string(b)
	}
	months, err := s.Months(ctx, ac)
	put("months", months, err)
	one := "IS1"
	for _, month := range []string{"2026-08", "2026-09", "2026-10", "2026-11"} {
		m, _ := usage.ParseMonth(month)
		r, err := s.ProvisionalReport(ctx, ac, m)
		r.GeneratedAt = time.Time{}
		put(month+" report", r, err)
		n, err := s.ActiveUsers(ctx, ac, m)
		put(month+" active users", n, err)

		var roster []usage.RosterEntry
		q := postgres.RosterQuery{AccountSID: ac, Month: m, Limit: 17}
		for {
			var page []usage.RosterEntry
			err := s.Roster(ctx, q, func(e usage.RosterEntry) error { page = append(page, e); return nil })
			if err != nil {
				t.Fatalf("%s roster: %v", month, err)
			}
			roster = append(roster, page...)
			if len(page) < q.Limit {
				break
			}
			q.AfterService, q.AfterIdentity = page[len(page)-1].ServiceSID, page[len(page)-1].Identity
		}
		put(month+" roster", roster, nil)

		for _, svc := range []*string{nil, &one} {
			where := month + " all services"
			if svc != nil {
				where = month + " " + *svc
			}
			st, err := s.IdentityStats(ctx, ac, m, svc)
			put(where+" stats", st, err)
			for _, flag := range append([]string{""}, postgres.IdentityFlags()...) {
				var ids []usage.IdentityMonth
				q := postgres.IdentityQuery{AccountSID: ac, Month: m, ServiceSID: svc, Flag: flag, Limit: 23}
				for {
					page, err := s.Identities(ctx, q)
					if err != nil {
						t.Fatalf("%s identities %q: %v", where, flag, err)
					}
					ids = append(ids, page...)
					if len(page) < q.Limit {
						break
					}
					q.AfterService, q.AfterIdentity = page[len(page)-1].ServiceSID, page[len(page)-1].Identity
				}
				put(fmt.Sprintf("%s identities flag %q", where, flag), ids, nil)
			}
			var groups []usage.LookalikeGroup
			lq := postgres.LookalikeQuery{AccountSID: ac, Month: m, ServiceSID: svc, Limit: 3}
			for {
				page, err := s.LookalikeGroups(ctx, lq)
				if err != nil {
					t.Fatalf("%s lookalikes: %v", where, err)
				}
				groups = append(groups, page...)
				if len(page) < lq.Limit {
					break
				}
				g := page[len(page)-1]
				lq.After = &postgres.LookalikeGroupPosition{Size: int64(len(g.Identities)), ServiceSID: g.ServiceSID, Key: g.Key}
			}
			put(where+" lookalikes", groups, nil)
		}
	}
	for _, id := range []string{"alice", "Alice", "u-1", "u -7", "Jos\u00e9", "ﬁle"} {
		h, err := s.UserHistory(ctx, ac, "IS0", id)
		if err != nil && !isNotFound(err) {
			t.Fatalf("history of %q: %v", id, err)
		}
		put("history "+id, h, nil)
	}
	return out
}

func isNotFound(err error) bool { return errors.Is(err, usage.ErrNotFound) }

// TestLiveRosterBreaksTiesByEventID: a user's pending event at the same
// instant as its folded first event becomes the first when its id is
// smaller, in the provisional roster read with events pending (merged by
// rosterRows) and in the report's users by first activity
// (liveMonthFigures), as after the fold.
func TestLiveRosterBreaksTiesByEventID(t *testing.T) {
	s, _, ac := newStore(t)
	at := "2026-10-05T10:00:00.5Z"
	var folded, pending []usage.Event
	for i := range 6 {
		id := fmt.Sprintf("tie-%d", i)
		folded = append(folded, ev("m-"+id, id, at))
		e := ev([]string{"a-", "z-"}[i%2]+id, id, at)
		e.Activity, e.Source = usage.Join, usage.SDK
		pending = append(pending, e)
	}
	record(t, s, ac, events(folded...))
	fold(t, s)
	record(t, s, ac, events(pending...))
	m, _ := usage.ParseMonth("2026-10")
	read := func() []usage.RosterEntry {
		var out []usage.RosterEntry
		err := s.Roster(t.Context(), postgres.RosterQuery{AccountSID: ac, Month: m}, func(e usage.RosterEntry) error {
			out = append(out, e)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	byFirst := func() map[usage.Activity]int64 {
		r, err := s.ProvisionalReport(t.Context(), ac, m)
		if err != nil {
			t.Fatal(err)
		}
		return r.Services[0].ByFirstActivity
	}
	live, liveByFirst := read(), byFirst()
	fold(t, s)
	if want := read(); fmt.Sprint(live) != fmt.Sprint(want) {
		t.Fatalf("with events pending:\n%v\nfolded:\n%v", live, want)
	}
	if want := (map[usage.Activity]int64{usage.Join: 3, usage.Send: 3}); fmt.Sprint(liveByFirst) != fmt.Sprint(want) || fmt.Sprint(byFirst()) != fmt.Sprint(want) {
		t.Errorf("users by first activity with events pending %v, folded %v, want %v", liveByFirst, byFirst(), want)
	}
	for i, e := range live {
		want := []string{"a-", "m-"}[i%2] + e.Identity
		if e.FirstEventID != want || e.Events != 2 {
			t.Errorf("%s: first event %s of %d, want %s of 2", e.Identity, e.FirstEventID, e.Events, want)
		}
	}
}

// TestLiveNewUsers: the new users of a month read with events pending
// (liveNewUsers) match those after the fold, for each way a pending event
// can move a user's first month, on the report and on the statistics.
func TestLiveNewUsers(t *testing.T) {
	s, _, ac := newStore(t)
	folded := []usage.Event{
		ev("f1", "known-oct-pending-oct", "2026-10-03T00:00:00Z"),
		ev("f2", "known-sep-pending-aug", "2026-09-03T00:00:00Z"),
		ev("f3", "known-sep-pending-aug", "2026-10-03T00:00:00Z"),
		ev("f4", "known-oct-pending-sep", "2026-10-03T00:00:00Z"),
		ev("f5", "known-nov-pending-oct", "2026-11-03T00:00:00Z"),
		ev("f6", "known-oct", "2026-10-04T00:00:00Z"),
	}
	pending := []usage.Event{
		ev("p1", "known-oct-pending-oct", "2026-10-05T00:00:00Z"),
		ev("p2", "known-sep-pending-aug", "2026-08-05T00:00:00Z"),
		ev("p3", "known-oct-pending-sep", "2026-09-05T00:00:00Z"),
		ev("p4", "known-nov-pending-oct", "2026-10-05T00:00:00Z"),
		ev("p5", "unknown-pending-oct", "2026-10-05T00:00:00Z"),
		ev("p6", "unknown-pending-sep-oct", "2026-09-05T00:00:00Z"),
		ev("p7", "unknown-pending-sep-oct", "2026-10-05T00:00:00Z"),
	}
	record(t, s, ac, events(folded...))
	fold(t, s)
	record(t, s, ac, events(pending...))
	read := func() string {
		var out []string
		for _, month := range []string{"2026-08", "2026-09", "2026-10", "2026-11"} {
			m, _ := usage.ParseMonth(month)
			r, err := s.ProvisionalReport(t.Context(), ac, m)
			if err != nil {
				t.Fatal(err)
			}
			st, err := s.IdentityStats(t.Context(), ac, m, nil)
			if err != nil {
				t.Fatal(err)
			}
			var n int64
			for _, svc := range r.Figures.Services {
				n += svc.NewUsers
			}
			out = append(out, fmt.Sprintf("%s: report %d, stats %d", month, n, st.NewIdentities))
		}
		return fmt.Sprint(out)
	}
	live := read()
	fold(t, s)
	// Folded: August known-sep-pending-aug; September
	// known-oct-pending-sep, unknown-pending-sep-oct; October
	// known-oct-pending-oct, known-nov-pending-oct, unknown-pending-oct,
	// known-oct; November none.
	want := "[2026-08: report 1, stats 1 2026-09: report 2, stats 2 2026-10: report 4, stats 4 2026-11: report 0, stats 0]"
	if got := read(); got != want {
		t.Fatalf("folded: %s, want %s", got, want)
	}
	if live != want {
		t.Fatalf("with events pending: %s, want %s", live, want)
	}
}

// TestLiveEventsThrough: a report read with events pending says it counts
// the events received up to the latest pending one, as after the fold
// (liveMonthFigures merges last_received_at), whatever the order in which
// the events happened.
func TestLiveEventsThrough(t *testing.T) {
	pool, _ := pgtest.NewDB(t)
	now := clock
	s := postgres.New(pool, func() time.Time { return now })
	a, err := s.CreateAccount(t.Context(), "Acme", false)
	if err != nil {
		t.Fatal(err)
	}
	record(t, s, a.SID, events(ev("e1", "alice", "2026-11-20T10:00:00Z"), ev("e2", "bob", "2026-11-20T10:00:00Z")))
	fold(t, s)
	now = clock.Add(time.Hour)
	record(t, s, a.SID, events(ev("e3", "alice", "2026-11-02T10:00:00Z")))
	m, _ := usage.ParseMonth("2026-11")
	through := func() time.Time {
		r, err := s.ProvisionalReport(t.Context(), a.SID, m)
		if err != nil {
			t.Fatal(err)
		}
		if r.EventsThrough == nil {
			t.Fatal("no events_through")
		}
		return *r.EventsThrough
	}
	live := through()
	fold(t, s)
	if folded := through(); !live.Equal(now) || !folded.Equal(now) {
		t.Errorf("events through %v with an event pending, %v folded; want %v", live, folded, now)
	}
}
