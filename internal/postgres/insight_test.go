package postgres_test

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// insightIdentities mixes lookalikes (case, spaces, fullwidth, zero-width
// characters, NFC/NFD, ligatures, Hangul jamo), identities that are only
// their own key, reserved characters and random-like ones.
var insightIdentities = []string{
	"alice", "Alice", "alice ", "ａｌｉｃｅ", "al\u200bice", "ALICE",
	"Jos\u00e9", "Jose\u0301", "jos\u00e9",
	"file", "ﬁle",
	"\uac00", "\u1100\u1161",
	"Bob", "bob smith", "bob\u3000smith",
	" ", "\u200b",
	"carol", "dave", "Eve", "ı", "i", "İ",
	"user@example.com", "User@Example.com", "a/b?c=d&e", "#tag[1]", "50%", "x+y=z;w",
	"550e8400-e29b-41d4-a716-446655440000", "d41d8cd98f00b204e9800998ecf8427e",
}

type insightUser struct {
	events     int64
	activities int16
	endpoints  map[string]bool
}

// TestIdentityInsightMatchesBruteForce records random events through both
// ingestion paths (batches and streams), folding between bodies, and checks
// every §7 addition and every flag of the listing against a computation
// over the events themselves, for all services and for one.
func TestIdentityInsightMatchesBruteForce(t *testing.T) {
	s, _, ac := newStore(t)
	rng := rand.New(rand.NewPCG(25, 17))
	oct := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	var all []usage.Event
	users := map[[2]string]*insightUser{}
	for i := range 1500 {
		a := usage.Activities[rng.IntN(8)]
		if rng.IntN(3) == 0 { // more single-activity users
			a = []usage.Activity{usage.Authenticate, usage.Update}[rng.IntN(2)]
		}
		src := usage.SDK
		if !a.Allows(usage.SDK) || (a.Allows(usage.REST) && rng.IntN(2) == 0) {
			src = usage.REST
		}
		identity := insightIdentities[rng.IntN(len(insightIdentities))]
		if rng.IntN(5) < 3 { // sparse: one-time and single-activity users
			identity = fmt.Sprintf("%s-%d", []string{"u", "U", "u "}[rng.IntN(3)], rng.IntN(600))
		}
		e := usage.Event{ID: fmt.Sprintf("i%d", i), Activity: a, Source: src,
			ServiceSID: fmt.Sprintf("IS%d", rng.IntN(2)), Identity: identity,
			OccurredAt: oct.Add(time.Duration(rng.Int64N(int64(60 * 24 * time.Hour))))}
		if rng.IntN(2) == 0 {
			e.EndpointID = fmt.Sprintf("ep%d", rng.IntN(4))
		}
		all = append(all, e)
		if usage.MonthOf(e.OccurredAt).Start().Equal(oct) {
			k := [2]string{e.ServiceSID, e.Identity}
			u := users[k]
			if u == nil {
				u = &insightUser{endpoints: map[string]bool{}}
				users[k] = u
			}
			u.events++
			u.activities |= a.Bit()
			if e.EndpointID != "" {
				u.endpoints[e.EndpointID] = true
			}
		}
	}
	for body := 0; len(all) > 0; body++ {
		n := min(len(all), 1+rng.IntN(200))
		if body%2 == 0 {
			record(t, s, ac, &usage.EventList{Events: all[:n]})
		} else {
			record(t, s, ac, events(all[:n]...))
		}
		if body%3 == 0 {
			fold(t, s)
		}
		all = all[n:]
	}

	flags := map[string]func(k [2]string, u *insightUser) bool{
		"one_time":           func(_ [2]string, u *insightUser) bool { return u.events == 1 },
		"rest_only":          func(_ [2]string, u *insightUser) bool { return u.activities&^usage.RESTOnlyActivities == 0 },
		"authenticate_only":  func(_ [2]string, u *insightUser) bool { return u.activities == usage.Authenticate.Bit() },
		"update_only":        func(_ [2]string, u *insightUser) bool { return u.activities == usage.Update.Bit() },
		"multi_endpoint":     func(_ [2]string, u *insightUser) bool { return len(u.endpoints) >= 3 },
		"reserved_character": func(k [2]string, _ *insightUser) bool { return usage.HasReserved(k[1]) },
		"random_like":        func(k [2]string, _ *insightUser) bool { return usage.RandomLike(k[1]) },
		"lookalike": func(k [2]string, _ *insightUser) bool {
			for o := range users {
				if o[0] == k[0] && o[1] != k[1] && usage.LookalikeKey(o[1]) == usage.LookalikeKey(k[1]) {
					return true
				}
			}
			return false
		},
	}
	if got, want := slices.Sorted(maps.Keys(flags)), slices.Sorted(slices.Values(postgres.IdentityFlags())); !slices.Equal(got, want) {
		t.Fatalf("flags %v, the store has %v", want, got)
	}
	m, _ := usage.ParseMonth("2026-10")
	one := "IS1"
	for _, svc := range []*string{nil, &one} {
		in := func(k [2]string) bool { return svc == nil || k[0] == *svc }
		counted := map[string]int64{}
		reserved := map[string]int64{}
		var groups []usage.LookalikeGroup
		byKey := map[[2]string]*usage.LookalikeGroup{}
		for k, u := range users {
			if !in(k) {
				continue
			}
			for f, fn := range flags {
				if fn(k, u) {
					counted[f]++
				}
			}
			usage.CountReserved(reserved, usage.ReservedMask(k[1]), 1)
			gk := [2]string{k[0], usage.LookalikeKey(k[1])}
			g := byKey[gk]
			if g == nil {
				g = &usage.LookalikeGroup{ServiceSID: gk[0], Key: gk[1]}
				byKey[gk] = g
			}
			g.Identities = append(g.Identities, k[1])
			g.Events += u.events
		}
		for _, g := range byKey {
			if len(g.Identities) >= 2 {
				slices.Sort(g.Identities)
				groups = append(groups, *g)
			}
		}
		slices.SortFunc(groups, func(a, b usage.LookalikeGroup) int {
			return cmp.Or(cmp.Compare(len(b.Identities), len(a.Identities)), cmp.Compare(a.ServiceSID, b.ServiceSID), cmp.Compare(a.Key, b.Key))
		})
		name := "all services"
		if svc != nil {
			name = *svc
		}
		t.Run(name, func(t *testing.T) {
			st, err := s.IdentityStats(t.Context(), ac, m, svc)
			if err != nil {
				t.Fatal(err)
			}
			stats := map[string]int64{"one_time": st.OneTimeIdentities, "rest_only": st.RESTOnlyIdentities,
				"authenticate_only": st.AuthenticateOnlyIdentities, "update_only": st.UpdateOnlyIdentities,
				"multi_endpoint": st.MultiEndpointIdentities, "reserved_character": st.ReservedCharacterIdentities,
				"random_like": st.RandomLikeIdentities, "lookalike": st.LookalikeIdentities}
			for f := range flags {
				if counted[f] == 0 {
					t.Errorf("%s: no identity; the test needs some", f)
				}
				if stats[f] != counted[f] {
					t.Errorf("%s_identities = %d, by the events %d", f, stats[f], counted[f])
				}
				rows, err := s.Identities(t.Context(), postgres.IdentityQuery{AccountSID: ac, Month: m, ServiceSID: svc, Flag: f, Limit: 1000})
				if err != nil {
					t.Fatal(err)
				}
				var listed []string
				for _, r := range rows {
					if k := [2]string{r.ServiceSID, r.Identity}; !flags[f](k, users[k]) {
						t.Errorf("flag=%s lists %+q of %s", f, r.Identity, r.ServiceSID)
					}
					listed = append(listed, r.ServiceSID+"/"+r.Identity)
				}
				if int64(len(rows)) != counted[f] {
					t.Errorf("flag=%s lists %d identities, the statistic counts %d: %+q", f, len(rows), counted[f], listed)
				}
			}
			if !maps.Equal(st.ReservedCharacters, reserved) {
				t.Errorf("reserved_characters %v, by the identities %v", st.ReservedCharacters, reserved)
			}
			if len(groups) == 0 {
				t.Fatal("no lookalike group; the test needs some")
			}
			got, err := s.LookalikeGroups(t.Context(), postgres.LookalikeQuery{AccountSID: ac, Month: m, ServiceSID: svc, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if showGroups(got) != showGroups(groups) {
				t.Errorf("lookalike groups\n%s\nby the identities\n%s", showGroups(got), showGroups(groups))
			}
			// Pages of 2, each after the last group of the one before.
			var paged []usage.LookalikeGroup
			q := postgres.LookalikeQuery{AccountSID: ac, Month: m, ServiceSID: svc, Limit: 2}
			for range 100 {
				page, err := s.LookalikeGroups(t.Context(), q)
				if err != nil {
					t.Fatal(err)
				}
				paged = append(paged, page...)
				if len(page) < 2 {
					break
				}
				last := page[len(page)-1]
				q.After = &postgres.LookalikeGroupPosition{Size: int64(len(last.Identities)), ServiceSID: last.ServiceSID, Key: last.Key}
			}
			if showGroups(paged) != showGroups(groups) {
				t.Errorf("lookalike groups by pages of 2\n%s\nwant\n%s", showGroups(paged), showGroups(groups))
			}
		})
	}
	if _, err := s.Identities(t.Context(), postgres.IdentityQuery{AccountSID: ac, Month: m, Flag: "famous", Limit: 10}); err == nil {
		t.Error("an unknown flag lists identities")
	}
}

func showGroups(gs []usage.LookalikeGroup) string {
	var b strings.Builder
	for _, g := range gs {
		fmt.Fprintf(&b, "%s %+q %+q %d\n", g.ServiceSID, g.Key, g.Identities, g.Events)
	}
	return b.String()
}

// TestLookalikeTwinInALaterFold: the identity that is a group's key
// ("alice") is marked with its own identity as key when a twin is active
// in its service and month, whichever of the two is folded first, or if
// both arrive in one fold; reads with the twin still pending count the
// group too; a twin in another service or month marks nothing.
func TestLookalikeTwinInALaterFold(t *testing.T) {
	m, _ := usage.ParseMonth("2026-10")
	type step struct {
		identity, service, at string
		fold                  bool
	}
	for name, steps := range map[string][]step{
		"key first":      {{"alice", "IS1", "2026-10-05T12:00:00Z", true}, {"Alice", "IS1", "2026-10-06T12:00:00Z", false}},
		"twin first":     {{"Alice", "IS1", "2026-10-05T12:00:00Z", true}, {"alice", "IS1", "2026-10-06T12:00:00Z", false}},
		"one fold":       {{"Alice", "IS1", "2026-10-05T12:00:00Z", false}, {"alice", "IS1", "2026-10-06T12:00:00Z", false}},
		"other service":  {{"alice", "IS1", "2026-10-05T12:00:00Z", true}, {"Alice", "IS2", "2026-10-06T12:00:00Z", false}},
		"other month":    {{"alice", "IS1", "2026-10-05T12:00:00Z", true}, {"Alice", "IS1", "2026-11-06T12:00:00Z", false}},
		"twin of a twin": {{"alice", "IS1", "2026-10-05T12:00:00Z", true}, {"Alice", "IS1", "2026-10-06T12:00:00Z", true}, {"ALICE", "IS1", "2026-10-07T12:00:00Z", false}},
	} {
		t.Run(name, func(t *testing.T) {
			s, pool, ac := newStore(t)
			want := map[string]int64{} // lookalike identities of October, after each step
			var users [][2]string
			for i, st := range steps {
				e := ev(fmt.Sprintf("e%d", i), st.identity, st.at)
				e.ServiceSID = st.service
				record(t, s, ac, events(e))
				if st.fold {
					fold(t, s)
				}
				if strings.HasPrefix(st.at, "2026-10") {
					users = append(users, [2]string{st.service, st.identity})
				}
			}
			groups := map[[2]string]int64{}
			for _, u := range users {
				groups[[2]string{u[0], usage.LookalikeKey(u[1])}]++
			}
			for _, n := range groups {
				if n >= 2 {
					want["n"] += n
				}
			}
			check := func(when string) {
				t.Helper()
				st, err := s.IdentityStats(t.Context(), ac, m, nil)
				if err != nil {
					t.Fatal(err)
				}
				rows, err := s.Identities(t.Context(), postgres.IdentityQuery{AccountSID: ac, Month: m, Flag: "lookalike", Limit: 10})
				if err != nil {
					t.Fatal(err)
				}
				gs, err := s.LookalikeGroups(t.Context(), postgres.LookalikeQuery{AccountSID: ac, Month: m, Limit: 10})
				if err != nil {
					t.Fatal(err)
				}
				var grouped int64
				for _, g := range gs {
					grouped += int64(len(g.Identities))
				}
				if st.LookalikeIdentities != want["n"] || int64(len(rows)) != want["n"] || grouped != want["n"] {
					t.Errorf("%s: %d lookalike identities, %d flagged, %d in groups %v; want %d",
						when, st.LookalikeIdentities, len(rows), grouped, gs, want["n"])
				}
			}
			check("with the last events pending")
			fold(t, s)
			check("folded")
			// Folded, the mark is in the table: every member of a group,
			// and only those, has its key set.
			marked := count(t, pool, `SELECT count(*) FROM month_users WHERE account_sid = $1 AND lookalike = identity`, ac)
			var wantMarked int64
			for g, n := range groups {
				if n >= 2 && slices.Contains(users, [2]string{g[0], g[1]}) {
					wantMarked++
				}
			}
			if marked != wantMarked {
				t.Errorf("%d identities marked as their own key, want %d", marked, wantMarked)
			}
		})
	}
}

// TestLookalikeMarkMigration: migration 00020 marks the identities already
// folded that are the key of an active twin, and its Down removes the
// marks.
func TestLookalikeMarkMigration(t *testing.T) {
	s, pool, ac := newStore(t)
	record(t, s, ac, events(ev("e1", "alice", "2026-10-05T12:00:00Z"), ev("e2", "Alice", "2026-10-05T12:00:00Z"),
		ev("e3", "bob", "2026-10-05T12:00:00Z")))
	fold(t, s)
	const marked = `SELECT count(*) FROM month_users WHERE lookalike = identity`
	if n := count(t, pool, marked); n != 1 {
		t.Fatalf("%d identities marked after the fold, want 1 (alice)", n)
	}
	mig, err := postgres.NewMigrator(pool)
	if err != nil {
		t.Fatal(err)
	}
	defer mig.Close()
	if err := mig.DownTo(t.Context(), 19); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, marked); n != 0 {
		t.Fatalf("%d identities marked after down, want 0", n)
	}
	if err := mig.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, `SELECT count(*) FROM month_users WHERE lookalike = identity AND identity = 'alice'`); n != 1 {
		t.Fatalf("alice is not marked after up again")
	}
	m, _ := usage.ParseMonth("2026-10")
	if st, err := s.IdentityStats(t.Context(), ac, m, nil); err != nil || st.LookalikeIdentities != 2 {
		t.Fatalf("after the round trip: %d lookalike identities (%v), want 2", st.LookalikeIdentities, err)
	}
}
