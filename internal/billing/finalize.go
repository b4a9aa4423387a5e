package billing

import (
	"context"
	"errors"
	"fmt"

	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// Result says what a run of the job did for one account-month.
type Result struct {
	// Report is the version stored, the latest when none was, or inside
	// the grace period the provisional report.
	Report usage.Report
	Stored bool // a new version was stored
}

// Finalize stores version 1 of a month; afterwards, version N+1 when users
// were added since version N, superseding it and saying how many were
// added; and nothing when no user was added, since a version is what a
// customer is billed by and late events of users already billed change
// nothing on the bill. A month flagged for a revision by late events that
// added no user is then no longer due.
//
// The whole decision runs inside store.HoldMonth, which holds the month's
// row: of concurrent Finalize calls (replicas, the CLI) the first stores
// the version and the others find no user added; a body for the month
// waits for the decision and then flags the month for the next revision.
func Finalize(ctx context.Context, store *postgres.Store, accountSID string, m usage.Month) (Result, error) {
	var res Result
	err := store.HoldMonth(ctx, accountSID, m, func(h *postgres.MonthHold) error {
		latest, err := h.Latest(ctx)
		if errors.Is(err, usage.ErrNotFound) {
			res.Report, err = h.StoreVersion(ctx, postgres.NewVersion{Version: 1})
			res.Stored = err == nil
			return err
		}
		if err != nil {
			return err
		}
		added, err := h.UsersAddedSince(ctx, *latest.Version)
		if err != nil {
			return err
		}
		if added == 0 {
			res.Report = latest
			return h.ClearRevisionDue(ctx)
		}
		res.Report, err = h.StoreVersion(ctx, postgres.NewVersion{
			Version: *latest.Version + 1, Supersedes: latest.Version, AddedUsers: &added})
		res.Stored = err == nil
		return err
	})
	if err != nil {
		return Result{}, fmt.Errorf("finalize %s %s: %w", accountSID, m, err)
	}
	return res, nil
}
