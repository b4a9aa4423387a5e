package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/billing"
	"github.com/tallyhq/tally/internal/pgtest"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// monthReportOneByOne is the platform report as it was: for each account,
// its latest version, or else its provisional report.
func monthReportOneByOne(ctx context.Context, s *postgres.Store, account string, m usage.Month) (usage.Report, error) {
	r, err := s.Version(ctx, account, m, nil)
	if err == nil || !errors.Is(err, usage.ErrNotFound) {
		return r, err
	}
	return s.ProvisionalReport(ctx, account, m)
}

// TestMonthReportsMatchEachAccount: the platform's month, computed for all
// accounts at once, is each account's own report: a final version, and
// provisional ones with several services, new and returning users, a rate
// card, and none at all.
func TestMonthReportsMatchEachAccount(t *testing.T) {
	s, _, first := newStore(t)
	oct := mustMonth(t, "2026-10")
	accounts := []string{first}
	for i := range 3 {
		a, err := s.CreateAccount(t.Context(), fmt.Sprintf("Account %d", i), false)
		if err != nil {
			t.Fatal(err)
		}
		accounts = append(accounts, a.SID)
	}
	for i, a := range accounts[:3] {
		var es []usage.Event
		for u := range 5 + i {
			e := ev(fmt.Sprintf("e%d", u), fmt.Sprintf("user-%d", u), fmt.Sprintf("2026-10-%02dT12:00:00Z", 1+u))
			if u%2 == 1 {
				e.ServiceSID = "IS2"
			}
			if u == 3 {
				e.Activity, e.Source = usage.Update, usage.REST
			}
			es = append(es, e)
		}
		es = append(es, ev("sep", "user-0", "2026-09-30T12:00:00Z")) // user-0 returns in October
		record(t, s, a, &usage.EventList{Events: es})
	}
	if err := s.SetRateCard(t.Context(), accounts[1], json.RawMessage(
		`{"currency":"USD","free_users":2,"tiers":[{"up_to":null,"unit_price":"0.05"}]}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := billing.Finalize(t.Context(), s, accounts[2], oct); err != nil {
		t.Fatal(err)
	}
	record(t, s, accounts[0], events(ev("late", "user-9", "2026-10-20T12:00:00Z"))) // still pending
	got, err := s.MonthReports(t.Context(), accounts, oct)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range accounts {
		want, err := monthReportOneByOne(t.Context(), s, a, oct)
		if err != nil {
			t.Fatal(err)
		}
		g := got[a]
		g.GeneratedAt = want.GeneratedAt
		gj, _ := json.Marshal(g)
		wj, _ := json.Marshal(want)
		if string(gj) != string(wj) {
			t.Errorf("account %s:\n got %s\nwant %s", a, gj, wj)
		}
	}
	if got[accounts[0]].ActiveUsers != 6 {
		t.Errorf("the first account has %d active users, want 6 with the pending event", got[accounts[0]].ActiveUsers)
	}
}

// BenchmarkPlatformMonth: the platform report's month of 1 000 accounts of
// 10 users each, account by account as before, and all at once.
func BenchmarkPlatformMonth(b *testing.B) {
	pool, _ := pgtest.NewDB(b)
	s := postgres.New(pool, func() time.Time { return clock })
	m, err := usage.ParseMonth("2026-10")
	if err != nil {
		b.Fatal(err)
	}
	var accounts []string
	for i := range 1000 {
		a, err := s.CreateAccount(b.Context(), fmt.Sprintf("Account %d", i), false)
		if err != nil {
			b.Fatal(err)
		}
		accounts = append(accounts, a.SID)
		var es []usage.Event
		for u := range 10 {
			es = append(es, ev(fmt.Sprintf("e%d", u), fmt.Sprintf("user-%d", u), "2026-10-05T12:00:00Z"))
		}
		if _, err := s.RecordEvents(b.Context(), a.SID, &usage.EventList{Events: es}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.FoldRollup(b.Context(), ""); err != nil {
		b.Fatal(err)
	}
	b.Run("account-by-account", func(b *testing.B) {
		for b.Loop() {
			for _, a := range accounts {
				if _, err := monthReportOneByOne(b.Context(), s, a, m); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("all-at-once", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.MonthReports(b.Context(), accounts, m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
