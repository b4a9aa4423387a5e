package alerts_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/alerts"
	"github.com/tallyhq/tally/internal/postgres"
)

// TestFiresAfterAFoldWithoutWaitingForThePass: wired as `tally serve`
// wires them (the background fold's onFolded is Evaluator.Changed), an
// alert fires within seconds of the fold that takes its account past the
// threshold, with the pass over every alert an hour away (held to
// MaxEvaluateEvery, 30 s: still far beyond the deadline here). Only the
// accounts a fold changed are compared: another account's alert, past its
// threshold but folded before, waits for that pass.
func TestFiresAfterAFoldWithoutWaitingForThePass(t *testing.T) {
	e := newEnv(t)
	a, _ := e.alert(t, e.account, postgres.MetricActiveUsers, "2", "https://203.0.113.1/a")
	other, err := e.store.CreateAccount(t.Context(), "Other", false)
	if err != nil {
		t.Fatal(err)
	}
	e.users(t, other.SID, 100, 1)
	if _, err := e.store.FoldRollup(t.Context(), other.SID); err != nil {
		t.Fatal(err)
	}
	quiet, _ := e.alert(t, other.SID, postgres.MetricActiveUsers, "1", "https://203.0.113.1/quiet")

	ctx, cancel := context.WithCancel(t.Context())
	eval := &alerts.Evaluator{Store: e.store, Now: e.clock, Settle: 10 * time.Millisecond}
	var wg sync.WaitGroup
	wg.Go(func() { e.store.FoldInBackground(ctx, 50*time.Millisecond, 2, eval.Changed, nil) })
	wg.Go(func() { eval.Run(ctx, time.Hour) })
	defer func() { cancel(); wg.Wait() }()

	fired := func(a postgres.Alert) bool { return len(e.deliveries(t, a)) > 0 }
	e.users(t, e.account, 0, 1) // one below: folded and compared, nothing fires
	time.Sleep(500 * time.Millisecond)
	if fired(a) {
		t.Fatal("fired one user below its threshold")
	}
	e.users(t, e.account, 1, 1) // reaches it
	start := time.Now()
	for !fired(a) && time.Since(start) < 10*time.Second {
		time.Sleep(20 * time.Millisecond)
	}
	if !fired(a) {
		t.Fatalf("not fired %s after the fold that reached its threshold: evaluation waits for the pass over every alert", time.Since(start).Round(time.Millisecond))
	}
	t.Logf("fired %s after the body that reached the threshold", time.Since(start).Round(time.Millisecond))
	if fired(quiet) {
		t.Error("an alert of an account no fold changed was compared before the pass over every alert")
	}
}

// TestChangedNeverWaits: marking accounts from the fold's goroutines
// returns at once even while no evaluator runs (a stopped or busy Run): a
// fold is never held up by alerts.
func TestChangedNeverWaits(t *testing.T) {
	eval := &alerts.Evaluator{}
	done := make(chan struct{})
	go func() {
		for range 100_000 {
			eval.Changed("AC1")
			eval.Changed("AC2")
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Changed blocks without an evaluator draining it")
	}
}
