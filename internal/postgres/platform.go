package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tallyhq/tally/internal/usage"
)

// The platform's month: every account's report at once, in a handful of
// statements over all accounts instead of a report per account (with 1 000
// accounts that was ~1 000 folds, transactions and roster scans). The
// statements are those of one account's report without the account filter,
// grouped by account; on Citus each runs on every worker in parallel.
const (
	allLatestVersions = `SELECT DISTINCT ON (account_sid) account_sid, ` + versionColumns + `
FROM report_versions WHERE month = $1 ORDER BY account_sid, version DESC`
	allMonthFigures = `SELECT account_sid, service_sid, first_activity, count(*),
       count(*) FILTER (WHERE activities & ~$2::smallint = 0), max(last_received_at)
FROM month_users WHERE month = $1
GROUP BY account_sid, service_sid, first_activity
ORDER BY account_sid, service_sid, first_activity`
	allMonthNewUsers = `SELECT account_sid, service_sid, count(*) FROM users WHERE first_month = $1
GROUP BY account_sid, service_sid`
	allMonthIdentities = `SELECT account_sid, count(DISTINCT identity) FROM month_users WHERE month = $1
GROUP BY account_sid`
	allRateCards = `SELECT account_sid, card FROM rate_cards`
)

var allMonthRoster = `SELECT account_sid, ` + fmt.Sprintf(rosterColumns, "first_at", "last_at") + `
FROM month_users WHERE month = $1 ORDER BY account_sid, service_sid, identity`

// MonthReports returns the report of month m of each of the accounts: its
// latest stored version, or else its provisional figures computed now, the
// same report (checksum included) that asking for each account alone gives.
//
// It folds nothing, so it waits for no fold. The accounts with no event
// pending are read in one pass over the month; each one with events
// pending is read alone after it, merging its own (ProvisionalReport).
func (s *Store) MonthReports(ctx context.Context, accounts []string, m usage.Month) (map[string]usage.Report, error) {
	now := s.now().UTC()
	out := make(map[string]usage.Report, len(accounts))
	var live []string
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		out = make(map[string]usage.Report, len(accounts))
		live = live[:0]
		provisional := make(map[string]*usage.Report, len(accounts))
		for _, a := range accounts {
			provisional[a] = &usage.Report{AccountSID: a, Month: m, Status: usage.StatusProvisional, GeneratedAt: now}
		}
		rows, err := tx.Query(ctx, allLatestVersions, m.Start())
		if err != nil {
			return fmt.Errorf("latest versions: %w", err)
		}
		var account string
		for rows.Next() {
			if err := rows.Scan(&account, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil); err != nil {
				return fmt.Errorf("latest versions: %w", err)
			}
			if _, ok := provisional[account]; !ok {
				continue
			}
			r := usage.Report{AccountSID: account, Month: m}
			if err := scanVersion(versionRow{rows}, &r); err != nil {
				return fmt.Errorf("latest versions: %w", err)
			}
			out[account] = r
			delete(provisional, account)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("latest versions: %w", err)
		}
		if len(provisional) == 0 {
			return nil
		}
		rows, err = tx.Query(ctx, pendingAccounts)
		if err != nil {
			return fmt.Errorf("accounts with pending events: %w", err)
		}
		if _, err := pgx.ForEachRow(rows, []any{&account}, func() error {
			if _, ok := provisional[account]; ok {
				live = append(live, account)
				delete(provisional, account)
			}
			return nil
		}); err != nil {
			return fmt.Errorf("accounts with pending events: %w", err)
		}
		if len(provisional) == 0 {
			return nil
		}
		return allProvisional(ctx, tx, m, provisional, out)
	})
	if err != nil {
		return nil, translate(fmt.Errorf("reports of %s: %w", m, err))
	}
	for _, a := range live {
		r, err := s.ProvisionalReport(ctx, a, m)
		if err != nil {
			return nil, err
		}
		out[a] = r
	}
	return out, nil
}

// versionRow scans a row of allLatestVersions past its account column.
type versionRow struct{ rows pgx.Rows }

func (v versionRow) Scan(dest ...any) error {
	return v.rows.Scan(append([]any{nil}, dest...)...)
}

// allProvisional computes the provisional reports of the accounts in
// reports, in tx, and adds them to out.
func allProvisional(ctx context.Context, tx pgx.Tx, m usage.Month, reports map[string]*usage.Report, out map[string]usage.Report) error {
	var account, svc, act string
	var n, restOnly int64
	var through *time.Time
	rows, err := tx.Query(ctx, allMonthFigures, m.Start(), usage.RESTOnlyActivities)
	if err != nil {
		return fmt.Errorf("figures: %w", err)
	}
	if _, err := pgx.ForEachRow(rows, []any{&account, &svc, &act, &n, &restOnly, &through}, func() error {
		if r := reports[account]; r != nil {
			addFigures(&r.Figures, svc, act, n, restOnly, through)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("figures: %w", err)
	}
	rows, err = tx.Query(ctx, allMonthNewUsers, m.Start())
	if err != nil {
		return fmt.Errorf("new users: %w", err)
	}
	if _, err := pgx.ForEachRow(rows, []any{&account, &svc, &n}, func() error {
		if r := reports[account]; r != nil {
			if err := setNewUsers(&r.Figures, svc, n); err != nil {
				return fmt.Errorf("account %s: %w", account, err)
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("new users: %w", err)
	}
	for _, r := range reports {
		r.DistinctIdentities = r.ActiveUsers
	}
	rows, err = tx.Query(ctx, allMonthIdentities, m.Start())
	if err != nil {
		return fmt.Errorf("identities: %w", err)
	}
	if _, err := pgx.ForEachRow(rows, []any{&account, &n}, func() error {
		if r := reports[account]; r != nil {
			r.DistinctIdentities = n
		}
		return nil
	}); err != nil {
		return fmt.Errorf("identities: %w", err)
	}
	var card []byte
	rows, err = tx.Query(ctx, allRateCards)
	if err != nil {
		return fmt.Errorf("rate cards: %w", err)
	}
	if _, err := pgx.ForEachRow(rows, []any{&account, &card}, func() error {
		if r := reports[account]; r != nil {
			r.RateCard = append([]byte(nil), card...)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("rate cards: %w", err)
	}
	// The checksums, in one pass over every roster of the month.
	sums := make(map[string]*usage.Checksum, len(reports))
	for a, r := range reports {
		sums[a] = usage.NewChecksum(a, m, nil, r.Figures)
	}
	var e usage.RosterEntry
	rows, err = tx.Query(ctx, allMonthRoster, m.Start())
	if err != nil {
		return fmt.Errorf("rosters: %w", err)
	}
	if _, err := pgx.ForEachRow(rows, []any{&account, &e.ServiceSID, &e.Identity, &act, &e.FirstEventID,
		&e.FirstActiveAt, &e.LastActiveAt, &e.Events}, func() error {
		if c := sums[account]; c != nil {
			e.FirstActivity = usage.Activity(act)
			c.Add(e)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("rosters: %w", err)
	}
	for a, r := range reports {
		r.Checksum = sums[a].Sum()
		out[a] = *r
	}
	return nil
}
