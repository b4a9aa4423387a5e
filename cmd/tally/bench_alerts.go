package main

import (
	"context"
	"fmt"
	"time"

	"github.com/tallyhq/tally/internal/bench"
)

// alertsBatch is the events per body of the alerts bench: small bodies, so
// that each account's figures grow over many folds and its alerts fire one
// after another during the ingest, not all on its one body.
const alertsBatch = 100

// alertsSettle is how long the alerts bench waits, after the last body, for
// every alert to fire and be delivered.
const alertsSettle = 30 * time.Second

// alertsRun is what one alerts run of one engine measured.
type alertsRun struct {
	none, with float64 // JSON ingest, events/s, without and with the alerts
	// firedDuring is how many alerts had fired when the last body was
	// answered; settled is the time from then until every alert had fired
	// and its webhook was delivered.
	firedDuring, fired, delivered int64
	settled                       time.Duration
	loadBefore, loadAfter         string
}

// benchAlerts is CONTRACT §14's "firing must not slow ingestion": the same
// ingest into the same accounts with no alert and with o.alerts alerts over
// them, in one run, as the server runs them (evaluated after each fold and
// every TALLY_ALERT_INTERVAL, delivered by its outbox worker).
func benchAlerts(ctx context.Context, e *env, engines []*benchEngine, recv *bench.Receiver, o benchOptions) error {
	out := e.stdout
	w := bench.NewWorkload(o.events, "alerts", 3).InMonth(time.Now())
	bodies := w.Bodies(alertsBatch, false)
	users := w.UsersPerAccount(alertsBatch, o.alertAccounts)
	envs := make([]*bench.Env, len(engines))
	for i, g := range engines {
		var accts []bench.Account
		for k := range o.alertAccounts {
			a, err := newBenchAccount(ctx, g, fmt.Sprintf("Alerts %d", k+1))
			if err != nil {
				return err
			}
			accts = append(accts, a)
		}
		ae := *g.env
		ae.Accounts = accts
		envs[i] = &ae
	}
	runs := make([][]alertsRun, len(engines))
	for r := 0; r < o.runs; r++ {
		for k := range engines {
			i := k
			if r%2 == 1 {
				i = len(engines) - 1 - k
			}
			g, env := engines[i], envs[i]
			res := alertsRun{loadBefore: bench.LoadAvg()}
			// Which goes first alternates between runs, so that a machine
			// slowing down or speeding up during a run favours neither.
			order := []int{0, o.alerts}
			if r%2 == 1 {
				order = []int{o.alerts, 0}
			}
			for _, n := range order {
				rate, err := alertsIngestOnce(ctx, g, env, bodies, users, n, recv, o, &res)
				if err != nil {
					return fmt.Errorf("%s, %d alerts: %w", g.label, n, err)
				}
				if n == 0 {
					res.none = rate
				} else {
					res.with = rate
				}
			}
			res.loadAfter = bench.LoadAvg()
			runs[i] = append(runs[i], res)
			fmt.Fprintf(e.stderr, "run %d, %s: json ingest %.0f/s without alerts, %.0f/s with %d (ratio %.3f); fired %d during ingest, %d/%d fired/delivered %.1fs after it; load %s → %s\n",
				r+1, g.label, res.none, res.with, o.alerts, res.with/res.none, res.firedDuring, res.fired, res.delivered,
				res.settled.Seconds(), res.loadBefore, res.loadAfter)
		}
	}
	for i, g := range engines {
		rs := runs[i]
		pick := func(f func(alertsRun) float64) bench.Stats {
			var xs []float64
			for _, r := range rs {
				xs = append(xs, f(r))
			}
			return bench.Summarize(xs)
		}
		fmt.Fprintf(out, "## Ingest beside usage alerts, %s: %d events in the current month, JSON bodies of %d, %d clients, %d accounts, %d alerts\n\n",
			g.label, o.events, alertsBatch, o.clients, o.alertAccounts, o.alerts)
		fmt.Fprintf(out, "| figure | median (min, max) |\n|---|---|\n")
		fmt.Fprintf(out, "| JSON ingest, no alert, events/s | %s |\n", pick(func(r alertsRun) float64 { return r.none }))
		fmt.Fprintf(out, "| JSON ingest, %d alerts, events/s | %s |\n", o.alerts, pick(func(r alertsRun) float64 { return r.with }))
		fmt.Fprintf(out, "| with alerts / without, run by run | %s |\n", pick(func(r alertsRun) float64 { return r.with / r.none }))
		fmt.Fprintf(out, "| alerts fired by the last body's answer | %s |\n", pick(func(r alertsRun) float64 { return float64(r.firedDuring) }))
		fmt.Fprintf(out, "| from the last body until every alert fired and was delivered, s | %s |\n", pick(func(r alertsRun) float64 { return r.settled.Seconds() }))
		fmt.Fprintf(out, "| webhooks delivered | %s |\n\n", pick(func(r alertsRun) float64 { return float64(r.delivered) }))
		for r, run := range rs {
			fmt.Fprintf(out, "Run %d: %.0f and %.0f events/s, ratio %.3f; load average %s → %s.\n", r+1, run.none, run.with, run.with/run.none,
				run.loadBefore, run.loadAfter)
		}
		fmt.Fprintln(out)
	}
	return nil
}

// alertsIngestOnce ingests bodies into env's accounts from a clean slate,
// beside n alerts, and returns the events per second; with alerts it then
// waits for every alert to fire and be delivered, and records that in res.
func alertsIngestOnce(ctx context.Context, g *benchEngine, env *bench.Env, bodies [][]byte, users []int, n int, recv *bench.Receiver,
	o benchOptions, res *alertsRun) (float64, error) {
	if err := env.Reset(ctx); err != nil {
		return 0, err
	}
	if err := env.ClearAlerts(ctx); err != nil {
		return 0, err
	}
	if n > 0 {
		if err := env.CreateAlerts(ctx, g.box, env.Accounts, users, n, recv.URL); err != nil {
			return 0, err
		}
	}
	d, totals, err := env.Post(ctx, bodies, false, o.clients)
	if err != nil {
		return 0, fmt.Errorf("json ingest: %w", err)
	}
	if totals[0] != int64(o.events) {
		return 0, fmt.Errorf("json ingest accepted %d of %d", totals[0], o.events)
	}
	rate := float64(o.events) / d.Seconds()
	if n == 0 {
		// What is left to fold is not the next measurement's.
		_, err := env.Fold(ctx)
		return rate, err
	}
	end := time.Now()
	if res.firedDuring, _, err = env.AlertCounts(ctx); err != nil {
		return 0, err
	}
	for {
		fired, delivered, err := env.AlertCounts(ctx)
		if err != nil {
			return 0, err
		}
		res.fired, res.delivered, res.settled = fired, delivered, time.Since(end)
		if delivered >= int64(n) {
			return rate, nil
		}
		if time.Since(end) > alertsSettle {
			return 0, fmt.Errorf("%d of %d alerts fired, %d delivered, %s after the last body", fired, n, delivered, alertsSettle)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
