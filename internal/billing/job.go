// Package billing is the monthly job: it finalizes each account's month once
// its grace period has passed and issues revisions when late events add
// users. Pricing with the account's rate card, in exact decimals, is its
// subpackage pricing, which needs no store.
package billing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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

	holderOnce sync.Once
	holderID   string
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
// returns the provisional report and stores nothing; afterwards it
// finalizes the month (Finalize): version 1, or version N+1 when users were
// added, or nothing.
func (j *Job) Run(ctx context.Context, accountSID string, m usage.Month) (Result, error) {
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

func (j *Job) run(ctx context.Context, accountSID string, m usage.Month) (Result, error) {
	if !j.Finalizable(m, j.Now()) {
		r, err := j.Store.ProvisionalReport(ctx, accountSID, m)
		return Result{Report: r}, err
	}
	return Finalize(ctx, j.Store, accountSID, m)
}

// jobLease names the lease a run of the monthly job holds.
const jobLease = "monthly-report-job"

// leaseTTL is how long a run's lease lasts unless renewed; a run renews it
// after each account-month, so only a run stuck that long on one
// account-month, or a replica that died, lets another start.
const leaseTTL = 10 * time.Minute

// RunDue runs every account-month that is past its grace period without a
// version, or that late events have flagged for a revision. It returns how
// many versions it stored. A failing account-month does not stop the
// others: their errors are joined in the one returned, and each is
// counted by Observe. At most one run is under way at a time across all
// replicas (a lease in the database); a run that finds another under way
// does nothing.
func (j *Job) RunDue(ctx context.Context) (int, error) {
	holder := j.holder()
	got, err := j.Store.TakeLease(ctx, jobLease, holder, leaseTTL)
	if err != nil || !got {
		return 0, err
	}
	defer j.Store.ReleaseLease(context.WithoutCancel(ctx), jobLease, holder)
	now := j.Now()
	due, err := j.Store.DueMonths(ctx, usage.MonthOf(now.Add(-j.finalizeAfter())))
	if err != nil {
		return 0, err
	}
	stored := 0
	var errs []error
	for _, d := range due {
		if err := ctx.Err(); err != nil {
			return stored, errors.Join(append(errs, err)...)
		}
		res, err := j.Run(ctx, d.AccountSID, d.Month)
		if err != nil {
			errs = append(errs, fmt.Errorf("run %s %s: %w", d.AccountSID, d.Month, err))
			if j.Log != nil {
				j.Log.ErrorContext(ctx, "report job: account-month failed", "account_sid", d.AccountSID,
					"month", d.Month.String(), "err", err)
			}
		} else if res.Stored {
			stored++
			if j.Log != nil {
				j.Log.InfoContext(ctx, "report version stored", "account_sid", d.AccountSID, "month", d.Month.String(),
					"version", *res.Report.Version, "active_users", res.Report.ActiveUsers)
			}
		}
		if got, err := j.Store.TakeLease(ctx, jobLease, holder, leaseTTL); err != nil || !got {
			return stored, errors.Join(append(errs, fmt.Errorf("report job lost its lease (%v): stopped", err))...)
		}
	}
	return stored, errors.Join(errs...)
}

// holder names this job's runs in the lease, once per Job.
func (j *Job) holder() string {
	j.holderOnce.Do(func() {
		b := make([]byte, 8)
		rand.Read(b)
		j.holderID = hex.EncodeToString(b)
	})
	return j.holderID
}

// Schedule runs RunDue every interval until ctx ends. On several replicas
// one runs at a time (RunDue's lease); were two to run, each account-month
// is still finalized under its row lock, and a second run finds nothing to
// add.
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
