package alerts_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tallyhq/tally/internal/alerts"
	"github.com/tallyhq/tally/internal/pgtest"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/secrets"
	"github.com/tallyhq/tally/internal/usage"
	"github.com/tallyhq/tally/reports"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// env is a store on a fresh database with one account, and a clock that
// is the wall clock until a test sets it.
type env struct {
	store   *postgres.Store
	box     *secrets.Box
	account string

	mu  sync.Mutex
	now time.Time // zero: the wall clock
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.now.IsZero() {
		return time.Now().UTC()
	}
	return e.now
}

func (e *env) set(t time.Time) {
	e.mu.Lock()
	e.now = t
	e.mu.Unlock()
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool, _ := pgtest.NewDB(t)
	box, err := secrets.NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{box: box}
	e.store = postgres.New(pool, e.clock)
	a, err := e.store.CreateAccount(t.Context(), "Acme", false)
	if err != nil {
		t.Fatal(err)
	}
	e.account = a.SID
	return e
}

func (e *env) evaluator() *alerts.Evaluator { return &alerts.Evaluator{Store: e.store, Now: e.clock} }

// users records one event for each of n new identities of account, now.
func (e *env) users(t *testing.T, account string, from, n int) {
	t.Helper()
	var b usage.EventList
	for i := from; i < from+n; i++ {
		b.Events = append(b.Events, usage.Event{ID: fmt.Sprintf("e%d", i), Activity: usage.Send, Source: usage.SDK,
			ServiceSID: "IS1", Identity: fmt.Sprintf("user%d", i), OccurredAt: e.clock().Add(-time.Second)})
	}
	if _, err := e.store.RecordEvents(t.Context(), account, &b); err != nil {
		t.Fatalf("RecordEvents: %v", err)
	}
}

// alert creates an alert as the API does and returns it with its secret.
func (e *env) alert(t *testing.T, account, metric, threshold, url string) (postgres.Alert, string) {
	t.Helper()
	secret := alerts.NewSigningSecret()
	a := postgres.Alert{AccountSID: account, SID: alerts.NewAlertSID(), Metric: metric,
		Threshold: decimal.RequireFromString(threshold), WebhookURL: url}
	a, err := e.store.CreateAlert(t.Context(), a, e.box.Seal(secret, a.SID))
	if err != nil {
		t.Fatal(err)
	}
	return a, secret
}

func (e *env) evaluate(t *testing.T) int {
	t.Helper()
	n, err := e.evaluator().Evaluate(t.Context())
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	return n
}

func (e *env) deliveries(t *testing.T, a postgres.Alert) []postgres.AlertDelivery {
	t.Helper()
	ds, err := e.store.AlertDeliveries(t.Context(), a.AccountSID, a.SID)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestFiresAtExactlyTheThreshold(t *testing.T) {
	e := newEnv(t)
	at, _ := e.alert(t, e.account, postgres.MetricActiveUsers, "3", "https://203.0.113.1/at")
	above, _ := e.alert(t, e.account, postgres.MetricActiveUsers, "4", "https://203.0.113.1/above")
	e.users(t, e.account, 0, 2)
	if n := e.evaluate(t); n != 0 {
		t.Fatalf("2 users: %d alerts fired, want 0", n)
	}
	e.users(t, e.account, 2, 1)
	if n := e.evaluate(t); n != 1 {
		t.Fatalf("3 users: %d alerts fired, want 1", n)
	}
	if ds := e.deliveries(t, at); len(ds) != 1 || ds[0].Status != postgres.DeliveryPending {
		t.Fatalf("threshold 3 at 3 users: deliveries %+v, want one pending", ds)
	}
	if ds := e.deliveries(t, above); len(ds) != 0 {
		t.Fatalf("threshold 4 at 3 users: deliveries %+v, want none", ds)
	}
}

func TestOncePerMonthAndAgainNextMonth(t *testing.T) {
	e := newEnv(t)
	e.set(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
	a, _ := e.alert(t, e.account, postgres.MetricActiveUsers, "1", "https://203.0.113.1/h")
	e.users(t, e.account, 0, 1)
	if n := e.evaluate(t); n != 1 {
		t.Fatalf("November: %d fired, want 1", n)
	}
	e.users(t, e.account, 1, 5)
	if n := e.evaluate(t); n != 0 {
		t.Fatalf("November again: %d fired, want 0", n)
	}
	e.set(time.Date(2026, 12, 1, 0, 0, 5, 0, time.UTC))
	if n := e.evaluate(t); n != 0 {
		t.Fatalf("December without users: %d fired, want 0", n)
	}
	e.users(t, e.account, 100, 1)
	if n := e.evaluate(t); n != 1 {
		t.Fatalf("December: %d fired, want 1", n)
	}
	ds := e.deliveries(t, a)
	if len(ds) != 2 || ds[0].Month.String() != "2026-12" || ds[1].Month.String() != "2026-11" {
		t.Fatalf("deliveries %+v, want December's and November's", ds)
	}
}

// TestAmountUnderATieredRateCard: the amount is the report's billing amount
// under its tiered card, exact, and ≥ fires.
func TestAmountUnderATieredRateCard(t *testing.T) {
	e := newEnv(t)
	card := `{"currency":"USD","free_users":2,"tiers":[{"up_to":3,"unit_price":"1.50"},{"up_to":null,"unit_price":"0.25"}]}`
	if err := e.store.SetRateCard(t.Context(), e.account, json.RawMessage(card)); err != nil {
		t.Fatal(err)
	}
	// 5 users: #3 at 1.50, #4 and #5 at 0.25: 2.00.
	reached, _ := e.alert(t, e.account, postgres.MetricAmount, "2.00", "https://203.0.113.1/a")
	notYet, _ := e.alert(t, e.account, postgres.MetricAmount, "2.01", "https://203.0.113.1/b")
	e.users(t, e.account, 0, 5)
	if n := e.evaluate(t); n != 1 {
		t.Fatalf("%d fired, want 1", n)
	}
	if len(e.deliveries(t, notYet)) != 0 {
		t.Fatal("threshold 2.01 fired at 2.00")
	}
	body := claimBody(t, e)
	if body["value"] != "2.00" || body["threshold"] != "2.00" || body["metric"] != "amount" || body["alert_sid"] != reached.SID {
		t.Fatalf("body %v", body)
	}
	// The same amount as the report's.
	r, err := e.store.ProvisionalReport(t.Context(), e.account, usage.MonthOf(e.clock()))
	if err != nil {
		t.Fatal(err)
	}
	out, err := reports.NewReport(r)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Billing.Amount.StringFixed(2); got != body["value"] {
		t.Fatalf("report's amount %s, webhook's %v", got, body["value"])
	}
}

// claimBody claims the account's one due delivery and returns its body.
func claimBody(t *testing.T, e *env) map[string]any {
	t.Helper()
	cs, err := e.store.ClaimDeliveries(t.Context(), e.account, e.clock(), time.Minute, 10)
	if err != nil || len(cs) != 1 {
		t.Fatalf("claim: %v, %d deliveries", err, len(cs))
	}
	var body map[string]any
	if err := json.Unmarshal(cs[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	if body["id"] != cs[0].ID || body["type"] != alerts.EventType {
		t.Fatalf("body %v of delivery %s", body, cs[0].ID)
	}
	return body
}

// TestFiguresAreTheReports: the evaluator's figures are those of the
// report of every account at once (MonthReports), for every account.
func TestFiguresAreTheReports(t *testing.T) {
	e := newEnv(t)
	other, err := e.store.CreateAccount(t.Context(), "Other", false)
	if err != nil {
		t.Fatal(err)
	}
	card := `{"currency":"EUR","free_users":1,"tiers":[{"up_to":null,"unit_price":"0.333"}]}`
	if err := e.store.SetRateCard(t.Context(), other.SID, json.RawMessage(card)); err != nil {
		t.Fatal(err)
	}
	e.users(t, e.account, 0, 4)
	e.users(t, other.SID, 0, 7)
	m := usage.MonthOf(e.clock())
	accounts := []string{e.account, other.SID}
	figs, err := e.store.MonthAlertFigures(t.Context(), accounts, m)
	if err != nil {
		t.Fatal(err)
	}
	reps, err := e.store.MonthReports(t.Context(), accounts, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range accounts {
		if figs[a].ActiveUsers != reps[a].ActiveUsers || string(figs[a].RateCard) != string(reps[a].RateCard) {
			t.Errorf("%s: figures %+v, report %d users, card %s", a, figs[a], reps[a].ActiveUsers, reps[a].RateCard)
		}
	}
	v, ok, err := alerts.Value(postgres.MetricAmount, figs[other.SID])
	if err != nil || !ok || v.String() != "2" { // 6 × 0.333 = 1.998 → 2.00
		t.Fatalf("amount %v %v %v", v, ok, err)
	}
}

func TestCreatedPastThresholdFiresAtOnce(t *testing.T) {
	e := newEnv(t)
	e.users(t, e.account, 0, 10)
	a, _ := e.alert(t, e.account, postgres.MetricActiveUsers, "5", "https://203.0.113.1/h")
	n, err := e.evaluator().EvaluateAccount(t.Context(), e.account)
	if err != nil || n != 1 {
		t.Fatalf("EvaluateAccount: %d, %v", n, err)
	}
	if ds := e.deliveries(t, a); len(ds) != 1 {
		t.Fatalf("deliveries %+v", ds)
	}
}

func TestDeletedAlertSendsNothing(t *testing.T) {
	e := newEnv(t)
	e.users(t, e.account, 0, 1)
	a, _ := e.alert(t, e.account, postgres.MetricActiveUsers, "1", "https://203.0.113.1/h")
	e.evaluate(t)
	if err := e.store.DeleteAlert(t.Context(), e.account, a.SID); err != nil {
		t.Fatal(err)
	}
	if n, err := e.store.OutboxDepth(t.Context()); err != nil || n != 0 {
		t.Fatalf("outbox %d, %v", n, err)
	}
	if _, err := e.store.AlertDeliveries(t.Context(), e.account, a.SID); err == nil {
		t.Fatal("deliveries of a deleted alert")
	}
}

// receiver is a TLS webhook receiver that records what it got.
type receiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	got      []received
	inFlight map[string]int // id → requests being served
	overlaps int            // requests for an id while another for it was served
	answer   func(n int) (status int, delay time.Duration)
}

type received struct {
	id, signature string
	body          []byte
}

func newReceiver(t *testing.T, answer func(n int) (int, time.Duration)) *receiver {
	r := &receiver{answer: answer, inFlight: map[string]int{}}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var body struct{ ID string }
		_ = json.Unmarshal(b, &body)
		r.mu.Lock()
		n := len(r.got)
		r.got = append(r.got, received{body.ID, req.Header.Get(alerts.SignatureHeader), b})
		if r.inFlight[body.ID] > 0 {
			r.overlaps++
		}
		r.inFlight[body.ID]++
		r.mu.Unlock()
		status, delay := r.answer(n)
		select {
		case <-time.After(delay):
		case <-req.Context().Done():
		}
		r.mu.Lock()
		r.inFlight[body.ID]--
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) received() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func (e *env) worker(r *receiver) *alerts.Worker {
	return &alerts.Worker{Store: e.store, Box: e.box, Now: e.clock, AllowPrivate: true,
		RootCAs: r.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs,
		Timeout: 3 * time.Second, BackoffBase: 2 * time.Millisecond, BackoffMax: 20 * time.Millisecond, Lease: 5 * time.Second}
}

// deliverUntil runs w until a's delivery is no longer pending, or fails.
func deliverUntil(t *testing.T, e *env, w *alerts.Worker, a postgres.Alert) postgres.AlertDelivery {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := w.RunOnce(t.Context()); err != nil {
			t.Fatalf("RunOnce: %v", err)
		}
		if ds := e.deliveries(t, a); len(ds) == 1 && ds[0].Status != postgres.DeliveryPending {
			return ds[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("still pending: %+v", e.deliveries(t, a))
	return postgres.AlertDelivery{}
}

func TestRetriedAfter500sWithTheSameID(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, func(n int) (int, time.Duration) {
		if n < 2 {
			return 500, 0
		}
		return 204, 0
	})
	e.users(t, e.account, 0, 1)
	a, secret := e.alert(t, e.account, postgres.MetricActiveUsers, "1", r.srv.URL+"/hook")
	e.evaluate(t)
	d := deliverUntil(t, e, e.worker(r), a)
	if d.Status != postgres.DeliveryDelivered || d.Attempts != 3 || d.LastStatusCode == nil || *d.LastStatusCode != 204 || d.DeliveredAt == nil {
		t.Fatalf("delivery %+v", d)
	}
	got := r.received()
	if len(got) != 3 {
		t.Fatalf("%d requests, want 3", len(got))
	}
	for _, g := range got {
		if g.id != d.ID || !bytes.Equal(g.body, got[0].body) {
			t.Fatalf("request for %s with body %s, want %s every time", g.id, g.body, d.ID)
		}
		if err := alerts.Verify(secret, g.signature, g.body, time.Now(), 5*time.Minute); err != nil {
			t.Fatalf("signature %q: %v", g.signature, err)
		}
	}
}

func TestRetriedAfterATimeoutWithTheSameID(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, func(n int) (int, time.Duration) {
		if n == 0 {
			return 200, 5 * time.Second // past the worker's 500 ms
		}
		return 200, 0
	})
	e.users(t, e.account, 0, 1)
	a, _ := e.alert(t, e.account, postgres.MetricActiveUsers, "1", r.srv.URL+"/hook")
	e.evaluate(t)
	w := e.worker(r)
	w.Timeout = 500 * time.Millisecond
	d := deliverUntil(t, e, w, a)
	if d.Status != postgres.DeliveryDelivered || d.Attempts != 2 {
		t.Fatalf("delivery %+v", d)
	}
	if got := r.received(); len(got) != 2 || got[0].id != d.ID || got[1].id != d.ID {
		t.Fatalf("requests %+v", got)
	}
}

func TestGivesUpAfterRetryFor(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, func(int) (int, time.Duration) { return 503, 0 })
	start := time.Now().UTC()
	e.set(start)
	e.users(t, e.account, 0, 1)
	a, _ := e.alert(t, e.account, postgres.MetricActiveUsers, "1", r.srv.URL+"/hook")
	e.evaluate(t)
	w := e.worker(r)
	w.RetryFor = 24 * time.Hour
	for _, at := range []time.Duration{0, time.Hour, 23 * time.Hour} {
		e.set(start.Add(at))
		if n, err := w.RunOnce(t.Context()); err != nil || n != 1 {
			t.Fatalf("after %s: %d attempts, %v", at, n, err)
		}
		if d := e.deliveries(t, a)[0]; d.Status != postgres.DeliveryPending {
			t.Fatalf("after %s: %+v", at, d)
		}
	}
	e.set(start.Add(24 * time.Hour))
	d := deliverUntil(t, e, w, a)
	if d.Status != postgres.DeliveryFailed || d.Attempts != 4 || d.LastError == nil || *d.LastStatusCode != 503 || d.NextAttemptAt != nil {
		t.Fatalf("delivery %+v", d)
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	e := newEnv(t)
	hits := 0
	var mu sync.Mutex
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/target" {
			mu.Lock()
			hits++
			mu.Unlock()
			return
		}
		http.Redirect(w, req, "/target", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	e.users(t, e.account, 0, 1)
	a, _ := e.alert(t, e.account, postgres.MetricActiveUsers, "1", srv.URL+"/hook")
	e.evaluate(t)
	w := &alerts.Worker{Store: e.store, Box: e.box, Now: e.clock, AllowPrivate: true,
		RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, Timeout: time.Second, BackoffBase: time.Hour}
	if n, err := w.RunOnce(t.Context()); err != nil || n != 1 {
		t.Fatalf("RunOnce: %d, %v", n, err)
	}
	d := e.deliveries(t, a)[0]
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 || d.Status != postgres.DeliveryPending || d.LastStatusCode == nil || *d.LastStatusCode != 307 {
		t.Fatalf("redirect target hit %d times; delivery %+v", hits, d)
	}
}

// TestRestartLosesNothing: a delivery that failed on one worker is sent by
// a new one (a restarted process), and a delivery whose worker died in the
// middle of an attempt is sent again once its lease runs out, with the
// same id.
func TestRestartLosesNothing(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, func(n int) (int, time.Duration) {
		if n == 0 {
			return 500, 0
		}
		return 200, 0
	})
	e.users(t, e.account, 0, 1)
	a, _ := e.alert(t, e.account, postgres.MetricActiveUsers, "1", r.srv.URL+"/hook")
	e.evaluate(t)
	first := e.worker(r)
	if _, err := first.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if d := e.deliveries(t, a)[0]; d.Status != postgres.DeliveryPending || d.Attempts != 1 {
		t.Fatalf("after the first worker: %+v", d)
	}
	second := e.worker(r) // a new process: a new worker, a new client
	d := deliverUntil(t, e, second, a)
	if d.Status != postgres.DeliveryDelivered || d.Attempts != 2 {
		t.Fatalf("after the second worker: %+v", d)
	}

	// A worker that claims and dies: its lease runs out, the next one sends.
	b, _ := e.alert(t, e.account, postgres.MetricActiveUsers, "1", r.srv.URL+"/hook")
	e.evaluate(t)
	claimed, err := e.store.ClaimDeliveries(t.Context(), e.account, e.clock(), 100*time.Millisecond, 10)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %d", err, len(claimed))
	}
	if n, err := e.worker(r).RunOnce(t.Context()); err != nil || n != 0 {
		t.Fatalf("while leased: %d attempts, %v", n, err)
	}
	time.Sleep(150 * time.Millisecond)
	d = deliverUntil(t, e, e.worker(r), b)
	if d.Status != postgres.DeliveryDelivered || d.Attempts != 2 || d.ID != claimed[0].ID {
		t.Fatalf("after the lease: %+v", d)
	}
}

// TestTwoWorkersShareTheOutbox: two workers (two replicas) draining one
// outbox send each delivery once, never the same one at the same time.
func TestTwoWorkersShareTheOutbox(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, func(int) (int, time.Duration) { return 200, 20 * time.Millisecond })
	var as []postgres.Alert
	accounts := []string{e.account}
	for i := range 3 {
		acct, err := e.store.CreateAccount(t.Context(), fmt.Sprintf("A%d", i), false)
		if err != nil {
			t.Fatal(err)
		}
		accounts = append(accounts, acct.SID)
	}
	for _, acct := range accounts {
		e.users(t, acct, 0, 1)
		for range 6 {
			a, _ := e.alert(t, acct, postgres.MetricActiveUsers, "1", r.srv.URL+"/hook")
			as = append(as, a)
		}
	}
	if n := e.evaluate(t); n != len(as) {
		t.Fatalf("%d fired, want %d", n, len(as))
	}
	var wg sync.WaitGroup
	for range 2 {
		w := e.worker(r)
		w.Parallel = 3
		wg.Go(func() {
			for range 200 {
				if _, err := w.RunOnce(t.Context()); err != nil {
					t.Error(err)
					return
				}
				if n, _ := e.store.OutboxDepth(t.Context()); n == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	got := r.received()
	seen := map[string]int{}
	for _, g := range got {
		seen[g.id]++
	}
	if len(got) != len(as) || len(seen) != len(as) || r.overlaps != 0 {
		t.Fatalf("%d requests for %d ids (%d alerts), %d overlapping", len(got), len(seen), len(as), r.overlaps)
	}
	for _, a := range as {
		if ds := e.deliveries(t, a); ds[0].Status != postgres.DeliveryDelivered || ds[0].Attempts != 1 {
			t.Fatalf("delivery %+v", ds[0])
		}
	}
}

// TestSlowReceiverDelaysNoOtherAccount: a receiver that does not answer
// holds up only its own account's webhooks.
func TestSlowReceiverDelaysNoOtherAccount(t *testing.T) {
	e := newEnv(t)
	slow := newReceiver(t, func(int) (int, time.Duration) { return 200, 5 * time.Second })
	fast := newReceiver(t, func(int) (int, time.Duration) { return 200, 0 })
	other, err := e.store.CreateAccount(t.Context(), "Other", false)
	if err != nil {
		t.Fatal(err)
	}
	e.users(t, e.account, 0, 1)
	e.users(t, other.SID, 0, 1)
	e.alert(t, e.account, postgres.MetricActiveUsers, "1", slow.srv.URL+"/hook")
	b, _ := e.alert(t, other.SID, postgres.MetricActiveUsers, "1", fast.srv.URL+"/hook")
	e.evaluate(t)
	w := e.worker(fast)
	w.RootCAs.AddCert(slow.srv.Certificate())
	w.Timeout = 4 * time.Second
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	start := time.Now()
	go func() { w.RunOnce(ctx); close(done) }()
	for time.Since(start) < 3*time.Second {
		if d := e.deliveries(t, b)[0]; d.Status == postgres.DeliveryDelivered {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the other account's webhook waited for the slow receiver")
}
