package alerts_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tallyhq/tally/internal/alerts"
	"github.com/tallyhq/tally/internal/postgres"
)

// attempts reads tally_alert_delivery_attempts_total by outcome.
func attempts(t *testing.T, m *alerts.Metrics) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "tally_alert_delivery_attempts_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			out[s.GetLabel()[0].GetValue()] = s.GetCounter().GetValue()
		}
	}
	return out
}

// TestDefaultRetrySchedule: with the worker's defaults, the first retry
// comes within 30 s (5–10 s, jittered), the wait doubles, a delivery is
// still retried 24 hours after its firing and is failed after 25; the
// attempts metric counts each outcome.
func TestDefaultRetrySchedule(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, func(int) (int, time.Duration) { return 500, 0 })
	start := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	e.set(start)
	e.users(t, e.account, 0, 1)
	var as []postgres.Alert
	for i := range 6 {
		a, _ := e.alert(t, e.account, postgres.MetricActiveUsers, "1", fmt.Sprintf("%s/hook%d", r.srv.URL, i))
		as = append(as, a)
	}
	if n := e.evaluate(t); n != len(as) {
		t.Fatalf("%d fired, want %d", n, len(as))
	}
	metrics := alerts.NewMetrics(e.store)
	w := &alerts.Worker{Store: e.store, Box: e.box, Now: e.clock, AllowPrivate: true, Metrics: metrics,
		RootCAs: r.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	run := func(at time.Duration, want int) {
		t.Helper()
		e.set(start.Add(at))
		if n, err := w.RunOnce(t.Context()); err != nil || n != want {
			t.Fatalf("at +%s: %d attempts, %v; want %d", at, n, err, want)
		}
	}
	waits := func(from time.Duration, lo, hi time.Duration) {
		t.Helper()
		seen := map[time.Duration]bool{}
		for _, a := range as {
			d := e.deliveries(t, a)[0]
			if d.Status != postgres.DeliveryPending || d.NextAttemptAt == nil {
				t.Fatalf("delivery %+v", d)
			}
			wait := d.NextAttemptAt.Sub(start.Add(from))
			if wait < lo || wait > hi {
				t.Errorf("attempt %d: next attempt %s later, want %s to %s", d.Attempts, wait, lo, hi)
			}
			seen[wait] = true
		}
		if len(seen) == 1 {
			t.Errorf("every delivery waits the same %v: no jitter", seen)
		}
	}
	run(0, len(as))
	waits(0, 5*time.Second, 10*time.Second)
	run(10*time.Second, len(as))
	waits(10*time.Second, 10*time.Second, 20*time.Second)
	run(24*time.Hour, len(as))
	for _, a := range as {
		if d := e.deliveries(t, a)[0]; d.Status != postgres.DeliveryPending {
			t.Fatalf("24 h after firing: %+v, want still pending", d)
		}
	}
	run(25*time.Hour, len(as))
	for _, a := range as {
		if d := e.deliveries(t, a)[0]; d.Status != postgres.DeliveryFailed || d.Attempts != 4 {
			t.Fatalf("25 h after firing: %+v, want failed after 4 attempts", d)
		}
	}
	if got, want := attempts(t, metrics), map[string]float64{"retry": 18, "failed": 6, "delivered": 0}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("attempts by outcome %v, want %v", got, want)
	}
}

// TestAnswerIsReadAtMost64KiB: a receiver that answers 200 with an endless
// body does not hold the attempt: the worker reads 64 KiB of it, hangs up
// and counts the webhook delivered.
func TestAnswerIsReadAtMost64KiB(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		chunk := []byte(strings.Repeat("x", 32<<10))
		for req.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	e.users(t, e.account, 0, 1)
	a, _ := e.alert(t, e.account, postgres.MetricActiveUsers, "1", srv.URL+"/hook")
	e.evaluate(t)
	w := &alerts.Worker{Store: e.store, Box: e.box, Now: e.clock, AllowPrivate: true, Timeout: 4 * time.Second,
		RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	began := time.Now()
	if n, err := w.RunOnce(t.Context()); err != nil || n != 1 {
		t.Fatalf("RunOnce: %d, %v", n, err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("the attempt took %s: the endless answer was read on", took)
	}
	if d := e.deliveries(t, a)[0]; d.Status != postgres.DeliveryDelivered {
		t.Errorf("delivery %+v", d)
	}
}

// TestHTTPIsRefusedAtDelivery: a stored http URL (the address rule was
// lifted at creation, and is not at delivery) is never dialled.
func TestHTTPIsRefusedAtDelivery(t *testing.T) {
	e := newEnv(t)
	e.users(t, e.account, 0, 1)
	a, _ := e.alert(t, e.account, postgres.MetricActiveUsers, "1", "http://203.0.113.10/hook")
	e.evaluate(t)
	w := &alerts.Worker{Store: e.store, Box: e.box, Now: e.clock, Timeout: 2 * time.Second}
	if n, err := w.RunOnce(t.Context()); err != nil || n != 1 {
		t.Fatalf("RunOnce: %d, %v", n, err)
	}
	d := e.deliveries(t, a)[0]
	if d.Status != postgres.DeliveryPending || d.LastError == nil || *d.LastError != "webhook_url is not https" || d.LastStatusCode != nil {
		t.Errorf("delivery %+v (error %s)", d, deref(d.LastError))
	}
}

// TestRunningServiceSendsACrossing: the loops `tally serve` runs
// (Evaluator.Run, Worker.Run) send the webhook of an alert that events
// push past its threshold, with no API call in between; at the default
// intervals that is well within the 60 s of CONTRACT §14.
func TestRunningServiceSendsACrossing(t *testing.T) {
	if alerts.DefaultEvaluateEvery+alerts.DefaultPoll+alerts.DefaultTimeout > 30*time.Second {
		t.Fatalf("evaluation every %s and polling every %s leave too little of the 60 s", alerts.DefaultEvaluateEvery, alerts.DefaultPoll)
	}
	e := newEnv(t)
	r := newReceiver(t, func(int) (int, time.Duration) { return 204, 0 })
	a, secret := e.alert(t, e.account, postgres.MetricActiveUsers, "2", r.srv.URL+"/hook")
	ctx, cancel := context.WithCancel(t.Context())
	eval := e.evaluator()
	w := e.worker(r)
	var wg sync.WaitGroup
	wg.Go(func() { eval.Run(ctx, 50*time.Millisecond) })
	wg.Go(func() { w.Run(ctx, 50*time.Millisecond) })
	defer func() { cancel(); wg.Wait() }()

	e.users(t, e.account, 0, 1) // one below: nothing
	time.Sleep(500 * time.Millisecond)
	if got := r.received(); len(got) != 0 {
		t.Fatalf("a webhook below the threshold: %s", got[0].body)
	}
	e.users(t, e.account, 1, 1) // reaches it
	deadline := time.Now().Add(20 * time.Second)
	for len(r.received()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	got := r.received()
	if len(got) != 1 {
		t.Fatalf("%d webhooks, want 1", len(got))
	}
	if err := alerts.Verify(secret, got[0].signature, got[0].body, time.Now(), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got[0].body), `"value":2,`) || !strings.Contains(string(got[0].body), a.SID) {
		t.Errorf("body %s", got[0].body)
	}
}

// TestDocsReceiverExample compiles the receiver of docs/alerts.md and runs
// its verify on webhooks signed as the worker signs them: one genuine, one
// tampered with, one too old, one under another secret.
func TestDocsReceiverExample(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	doc, err := os.ReadFile("../../docs/alerts.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```go\n(.*?)```").FindSubmatch(doc)
	if m == nil || !strings.Contains(string(m[1]), "func verify(") {
		t.Fatal("docs/alerts.md has no Go receiver with a verify function")
	}
	dir := t.TempDir()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"id":"WH0123456789abcdef0123456789abcdef","type":"usage.threshold_reached"}`)
	const secret = "whsec_0123456789abcdefABCDEF0123456789"
	cases := []struct {
		name, secret, header, body string
		ok                         bool
	}{
		{"genuine", secret, alerts.Sign(secret, now.Add(-time.Minute), body), string(body), true},
		{"tampered", secret, alerts.Sign(secret, now, body), strings.Replace(string(body), "WH0", "WH1", 1), false},
		{"too old", secret, alerts.Sign(secret, now.Add(-6*time.Minute), body), string(body), false},
		{"another secret", secret, alerts.Sign("whsec_other", now, body), string(body), false},
	}
	var test strings.Builder
	fmt.Fprintf(&test, "package main\n\nimport (\n\t\"testing\"\n\t\"time\"\n)\n\nfunc TestVerify(t *testing.T) {\n\tnow := time.Unix(%d, 0)\n", now.Unix())
	for _, c := range cases {
		fmt.Fprintf(&test, "\tif err := verify(%q, %q, []byte(%q), now); (err == nil) != %v {\n\t\tt.Errorf(\"%s: %%v\", err)\n\t}\n",
			c.secret, c.header, c.body, c.ok, c.name)
	}
	test.WriteString("}\n")
	for name, text := range map[string]string{
		"go.mod":       "module receiver\n\ngo 1.26\n",
		"main.go":      string(m[1]),
		"main_test.go": test.String(),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.CommandContext(t.Context(), gobin, "test", "-count=1", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the docs' receiver: %v\n%s", err, out)
	}
}
