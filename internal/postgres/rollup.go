package postgres

import (
	"context"
	"fmt"

	"github.com/tallyhq/tally/internal/usage"
)

// ActiveUsers counts the distinct users (service, identity) of an account
// active in month m, from the rollup: one row per active user, so a count of
// rows is exact without touching events.
func (s *Store) ActiveUsers(ctx context.Context, accountSID string, m usage.Month) (int64, error) {
	var n int64
	err := s.readRollup(ctx, accountSID, func(q rollupReader) error {
		return q.QueryRow(ctx, `SELECT count(*) FROM month_users WHERE account_sid = $1 AND month = $2`,
			accountSID, m.Start()).Scan(&n)
	})
	if err != nil {
		return 0, translate(fmt.Errorf("active users of %s in %s: %w", accountSID, m, err))
	}
	return n, nil
}
