// Package billing is the monthly job: it finalizes each account's month once
// its grace period has passed, issues revisions when late events add users,
// and prices reports with the account's rate card in exact decimals.
package billing

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// DefaultFinalizeAfter is how long after a month ends its report stays
// provisional, so that events delayed in the platform's pipeline still land
// in version 1.
const DefaultFinalizeAfter = 72 * time.Hour

// Job runs the monthly report job. Its clock is injected so tests can move
// time across month ends and grace periods.
type Job struct {
	Store         *postgres.Store
	Now           func() time.Time
	FinalizeAfter time.Duration
	Log           *slog.Logger
	// Observe, when set, is told the outcome and duration of every run.
	Observe func(outcome string, d time.Duration)
}

// Finalizable reports whether month m is past its grace period at now.
func (j *Job) Finalizable(m usage.Month, now time.Time) bool {
	return !now.Before(m.End().Add(j.finalizeAfter()))
}

func (j *Job) finalizeAfter() time.Duration {
	if j.FinalizeAfter <= 0 {
		return DefaultFinalizeAfter
	}
	return j.FinalizeAfter
}

// Run runs the job for one account-month: inside the grace period it
// returns the provisional report and stores nothing; afterwards it stores
// version 1, or version N+1 when users were added, or nothing.
func (j *Job) Run(ctx context.Context, accountSID string, m usage.Month) (postgres.FinalizeResult, error) {
	start := time.Now()
	res, err := j.run(ctx, accountSID, m)
	if j.Observe != nil {
		outcome := "unchanged"
		switch {
		case err != nil:
			outcome = "error"
		case res.Stored:
			outcome = "stored"
		case res.Report.Version == nil:
			outcome = "provisional"
		}
		j.Observe(outcome, time.Since(start))
	}
	return res, err
}

func (j *Job) run(ctx context.Context, accountSID string, m usage.Month) (postgres.FinalizeResult, error) {
	if !j.Finalizable(m, j.Now()) {
		r, err := j.Store.ProvisionalReport(ctx, accountSID, m)
		return postgres.FinalizeResult{Report: r}, err
	}
	return j.Store.FinalizeMonth(ctx, accountSID, m)
}

// RunDue runs every account-month that is past its grace period without a
// version, or that late events have flagged for a revision. It returns how
// many versions it stored.
func (j *Job) RunDue(ctx context.Context) (int, error) {
	now := j.Now()
	due, err := j.Store.DueMonths(ctx, usage.MonthOf(now.Add(-j.finalizeAfter())))
	if err != nil {
		return 0, err
	}
	stored := 0
	for _, d := range due {
		if err := ctx.Err(); err != nil {
			return stored, err
		}
		res, err := j.Run(ctx, d.AccountSID, d.Month)
		if err != nil {
			return stored, fmt.Errorf("run %s %s: %w", d.AccountSID, d.Month, err)
		}
		if res.Stored {
			stored++
			if j.Log != nil {
				j.Log.InfoContext(ctx, "report version stored", "account_sid", d.AccountSID, "month", d.Month.String(),
					"version", *res.Report.Version, "active_users", res.Report.ActiveUsers)
			}
		}
	}
	return stored, nil
}

// Schedule runs RunDue every interval until ctx ends. Runs on several
// replicas are safe: each account-month is finalized under its advisory
// lock, and a second run finds nothing to add.
func (j *Job) Schedule(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := j.RunDue(ctx); err != nil && ctx.Err() == nil && j.Log != nil {
			j.Log.ErrorContext(ctx, "report job failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
