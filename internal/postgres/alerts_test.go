package postgres_test

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tallyhq/tally/internal/pgtest"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// alertStore is a store on a fresh database with two accounts.
func alertStore(t *testing.T) (s *postgres.Store, acme, other string) {
	t.Helper()
	pool, _ := pgtest.NewDB(t)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	s = postgres.New(pool, func() time.Time { return now })
	for _, sid := range []*string{&acme, &other} {
		a, err := s.CreateAccount(t.Context(), "Acme", false)
		if err != nil {
			t.Fatal(err)
		}
		*sid = a.SID
	}
	return s, acme, other
}

var alertSeq struct {
	sync.Mutex
	n int
}

// newAlert is an alert of account as the API would build it, with a fresh
// SID.
func newAlert(account string) postgres.Alert {
	alertSeq.Lock()
	alertSeq.n++
	n := alertSeq.n
	alertSeq.Unlock()
	return postgres.Alert{AccountSID: account, SID: fmt.Sprintf("AL%032x", n), Metric: postgres.MetricActiveUsers,
		Threshold: decimal.NewFromInt(int64(1000 + n)), WebhookURL: "https://203.0.113.10/hook"}
}

func countAlerts(t *testing.T, s *postgres.Store, account string) int {
	t.Helper()
	as, err := s.Alerts(t.Context(), account)
	if err != nil {
		t.Fatal(err)
	}
	return len(as)
}

// TestAlertCapHoldsUnderConcurrentCreates: an account full but for one
// alert, sent many creates at once, gets exactly one more; the rest are
// refused with ErrTooManyAlerts (an invalid request), and another account
// is not limited by it.
func TestAlertCapHoldsUnderConcurrentCreates(t *testing.T) {
	s, acme, other := alertStore(t)
	for range postgres.MaxAlertsPerAccount - 1 {
		if _, err := s.CreateAlert(t.Context(), newAlert(acme), []byte("sealed")); err != nil {
			t.Fatal(err)
		}
	}
	var toDelete string
	for round := range 3 {
		const racers = 12
		start := make(chan struct{})
		errs := make(chan error, racers)
		var wg sync.WaitGroup
		for range racers {
			wg.Go(func() {
				a := newAlert(acme)
				<-start
				_, err := s.CreateAlert(t.Context(), a, []byte("sealed"))
				if err == nil {
					toDelete = a.SID
				}
				errs <- err
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		created := 0
		for err := range errs {
			switch {
			case err == nil:
				created++
			case !errors.Is(err, postgres.ErrTooManyAlerts) || !errors.Is(err, usage.ErrInvalid):
				t.Fatalf("round %d: %v, want ErrTooManyAlerts", round, err)
			}
		}
		if n := countAlerts(t, s, acme); created != 1 || n != postgres.MaxAlertsPerAccount {
			t.Fatalf("round %d: %d of %d concurrent creates succeeded, the account has %d alerts; want 1 and %d",
				round, created, racers, n, postgres.MaxAlertsPerAccount)
		}
		// Deleting one makes room for exactly one again.
		if err := s.DeleteAlert(t.Context(), acme, toDelete); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CreateAlert(t.Context(), newAlert(other), []byte("sealed")); err != nil {
		t.Fatalf("another account's create: %v", err)
	}
	if _, err := s.CreateAlert(t.Context(), newAlert("AC"+fmt.Sprintf("%032x", 0)), []byte("sealed")); !errors.Is(err, usage.ErrNotFound) {
		t.Fatalf("create for an account that does not exist: %v, want not found", err)
	}
}

// TestAlertsWithLastDelivery: each alert of the account, oldest first,
// with its newest delivery exactly as AlertDeliveries lists it first (after
// a failed attempt: its status code, error and next attempt), and none for
// an alert that never fired.
func TestAlertsWithLastDelivery(t *testing.T) {
	s, acme, other := alertStore(t)
	ctx := t.Context()
	var as []postgres.Alert
	for _, acct := range []string{acme, acme, other} {
		a, err := s.CreateAlert(ctx, newAlert(acct), []byte("sealed"))
		if err != nil {
			t.Fatal(err)
		}
		as = append(as, a)
	}
	fired, never, others := as[0], as[1], as[2]
	fire := func(a postgres.Alert, month string, at time.Time, n int) {
		t.Helper()
		m, err := usage.ParseMonth(month)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := s.FireAlert(ctx, postgres.Firing{AccountSID: a.AccountSID, AlertSID: a.SID, Month: m,
			Value: decimal.NewFromInt(2000), ReachedAt: at, DeliveryID: fmt.Sprintf("WH%032x", n), Body: []byte(`{}`)})
		if err != nil || !ok {
			t.Fatalf("fire %s %s: %v, %v", a.SID, month, ok, err)
		}
	}
	oct, nov := time.Date(2026, 10, 30, 9, 0, 0, 0, time.UTC), time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	fire(fired, "2026-10", oct, 1)
	fire(fired, "2026-11", nov, 2)
	fire(others, "2026-11", nov, 3)
	// November's webhook gets a 500 and is due again later.
	claimed, err := s.ClaimDeliveries(ctx, acme, nov.Add(time.Second), 30*time.Second, 10)
	if err != nil || len(claimed) != 2 {
		t.Fatalf("claim: %d, %v", len(claimed), err)
	}
	code, next := 500, nov.Add(7*time.Second+123456*time.Microsecond)
	for _, c := range claimed {
		if c.Month.String() == "2026-11" {
			if ok, err := s.RecordAttempt(ctx, acme, c.ID, c.Attempts, postgres.AttemptOutcome{Status: postgres.DeliveryPending,
				StatusCode: &code, Error: "HTTP 500", NextAttempt: &next, At: nov.Add(2 * time.Second)}); err != nil || !ok {
				t.Fatalf("record: %v, %v", ok, err)
			}
		}
	}

	got, err := s.AlertsWithLastDelivery(ctx, acme)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].SID != fired.SID || got[1].SID != never.SID {
		t.Fatalf("alerts %+v, want %s then %s", got, fired.SID, never.SID)
	}
	if !reflect.DeepEqual(got[0].Alert, fired) || !reflect.DeepEqual(got[1].Alert, never) {
		t.Errorf("alerts %+v %+v, want %+v %+v", got[0].Alert, got[1].Alert, fired, never)
	}
	ds, err := s.AlertDeliveries(ctx, acme, fired.SID)
	if err != nil || len(ds) != 2 {
		t.Fatalf("deliveries: %d, %v", len(ds), err)
	}
	if got[0].Last == nil || !reflect.DeepEqual(*got[0].Last, ds[0]) {
		t.Errorf("last delivery %+v, want %+v", got[0].Last, ds[0])
	}
	if l := got[0].Last; l == nil || l.Month.String() != "2026-11" || l.Attempts != 1 || l.LastStatusCode == nil || *l.LastStatusCode != 500 ||
		l.LastError == nil || *l.LastError != "HTTP 500" || l.NextAttemptAt == nil || !l.NextAttemptAt.Equal(next) {
		t.Errorf("last delivery %+v, want November's after a 500", l)
	}
	if got[1].Last != nil {
		t.Errorf("an alert that never fired has a last delivery: %+v", got[1].Last)
	}
	if got, err := s.AlertsWithLastDelivery(ctx, other); err != nil || len(got) != 1 || got[0].Last == nil || got[0].Last.AlertSID != others.SID {
		t.Errorf("the other account's: %+v, %v", got, err)
	}
}

// TestFiringAndItsDeliveryAreOneTransaction: when the delivery row cannot
// be written, the firing is not recorded either, so the alert is still
// unfired and fires on the next evaluation instead of never sending.
func TestFiringAndItsDeliveryAreOneTransaction(t *testing.T) {
	s, acme, _ := alertStore(t)
	ctx := t.Context()
	a, err := s.CreateAlert(ctx, newAlert(acme), []byte("sealed"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := usage.ParseMonth("2026-11")
	f := postgres.Firing{AccountSID: acme, AlertSID: a.SID, Month: m, Value: decimal.NewFromInt(5000),
		ReachedAt: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), DeliveryID: "not a delivery id", Body: []byte(`{}`)}
	if ok, err := s.FireAlert(ctx, f); err == nil || ok {
		t.Fatalf("firing with a delivery that cannot be stored: %v, %v", ok, err)
	}
	unfired, err := s.UnfiredAccountAlerts(ctx, acme, m)
	if err != nil || len(unfired) != 1 || unfired[0].SID != a.SID {
		t.Fatalf("after the failed firing: %+v, %v; want the alert still unfired", unfired, err)
	}
	f.DeliveryID = fmt.Sprintf("WH%032x", 7)
	if ok, err := s.FireAlert(ctx, f); err != nil || !ok {
		t.Fatalf("firing again: %v, %v", ok, err)
	}
	if ok, err := s.FireAlert(ctx, f); err != nil || ok {
		t.Fatalf("a second firing in the month: %v, %v", ok, err)
	}
	if ds, err := s.AlertDeliveries(ctx, acme, a.SID); err != nil || len(ds) != 1 {
		t.Fatalf("deliveries: %+v, %v", ds, err)
	}
}
