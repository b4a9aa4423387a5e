package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tallyhq/tally/internal/usage"
)

// querier is what both a pool and a transaction offer.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// A month is counted from the rollup, never from events, and each of its
// figures from one table, without a join: month_users (one row per active
// user) for the users by first activity, the REST-only ones and the latest
// event; users for the new users, since a user whose first activity ever
// falls in a month is active in it (the fold keeps both tables in one
// transaction). At 1 M users, joining the two (a hash join of the month's
// rows with all of the account's users) took ~2 s and the distinct
// identities, sorted, ~1.5 s of a ~4.6 s job; the three statements below
// take ~1.5 s together, the last two reading the indexes of migration 00014.
const (
	monthFigures = `SELECT service_sid, first_activity, count(*),
       count(*) FILTER (WHERE activities & ~$3::smallint = 0), max(last_received_at)
FROM month_users WHERE account_sid = $1 AND month = $2
GROUP BY service_sid, first_activity
ORDER BY service_sid, first_activity`
	monthNewUsers = `SELECT service_sid, count(*) FROM users WHERE account_sid = $1 AND first_month = $2
GROUP BY service_sid ORDER BY service_sid`
	// Only asked when the month has more than one service: with one, every
	// user is a distinct identity.
	monthIdentities = `SELECT count(DISTINCT identity) FROM month_users WHERE account_sid = $1 AND month = $2`
)

// figures counts a month of an account. q must read one snapshot (a
// repeatable-read transaction, or one that holds the fold lock).
func figures(ctx context.Context, q querier, accountSID string, m usage.Month) (usage.Figures, error) {
	var f usage.Figures
	rows, err := q.Query(ctx, monthFigures, accountSID, m.Start(), usage.RESTOnlyActivities)
	if err != nil {
		return f, fmt.Errorf("figures of %s %s: %w", accountSID, m, err)
	}
	var svc, act string
	var n, restOnly int64
	var through *time.Time
	_, err = pgx.ForEachRow(rows, []any{&svc, &act, &n, &restOnly, &through}, func() error {
		addFigures(&f, svc, act, n, restOnly, through)
		return nil
	})
	if err != nil {
		return f, fmt.Errorf("figures of %s %s: %w", accountSID, m, err)
	}
	rows, err = q.Query(ctx, monthNewUsers, accountSID, m.Start())
	if err != nil {
		return f, fmt.Errorf("new users of %s %s: %w", accountSID, m, err)
	}
	_, err = pgx.ForEachRow(rows, []any{&svc, &n}, func() error { return setNewUsers(&f, svc, n) })
	if err != nil {
		return f, fmt.Errorf("new users of %s %s: %w", accountSID, m, err)
	}
	f.DistinctIdentities = f.ActiveUsers
	if len(f.Services) > 1 {
		if err := q.QueryRow(ctx, monthIdentities, accountSID, m.Start()).Scan(&f.DistinctIdentities); err != nil {
			return f, fmt.Errorf("identities of %s %s: %w", accountSID, m, err)
		}
	}
	return f, nil
}

// addFigures adds a row of monthFigures (services in order) to f.
func addFigures(f *usage.Figures, svc, act string, n, restOnly int64, through *time.Time) {
	if len(f.Services) == 0 || f.Services[len(f.Services)-1].ServiceSID != svc {
		f.Services = append(f.Services, usage.ServiceFigures{ServiceSID: svc, ByFirstActivity: map[usage.Activity]int64{}})
	}
	cur := &f.Services[len(f.Services)-1]
	cur.ActiveUsers += n
	cur.RESTOnlyUsers += restOnly
	cur.ByFirstActivity[usage.Activity(act)] += n
	f.ActiveUsers += n
	if through != nil && (f.EventsThrough == nil || through.After(*f.EventsThrough)) {
		t := through.UTC()
		f.EventsThrough = &t
	}
}

// setNewUsers sets a service's new users from a row of monthNewUsers, once
// its active users are counted.
func setNewUsers(f *usage.Figures, svc string, n int64) error {
	i := slices.IndexFunc(f.Services, func(s usage.ServiceFigures) bool { return s.ServiceSID == svc })
	if i < 0 || n > f.Services[i].ActiveUsers {
		active := int64(0)
		if i >= 0 {
			active = f.Services[i].ActiveUsers
		}
		return fmt.Errorf("%d users of service %s begin in a month where it has %d active: the rollup is inconsistent",
			n, svc, active)
	}
	f.Services[i].NewUsers = n
	return nil
}

const rosterColumns = `service_sid, identity, first_activity, first_event_id, %s, %s, events`

// The provisional roster is the rollup itself; a version's is its frozen copy.
var (
	provisionalRoster = `SELECT ` + fmt.Sprintf(rosterColumns, "first_at", "last_at") + `
FROM month_users WHERE account_sid = $1 AND month = $2 AND (service_sid, identity) > ($3, $4)
ORDER BY service_sid, identity LIMIT $5`
	versionRoster = `SELECT ` + fmt.Sprintf(rosterColumns, "first_active_at", "last_active_at") + `
FROM report_roster r WHERE account_sid = $1 AND month = $2 AND version = $6 AND (service_sid, identity) > ($3, $4)
  AND ($7::int IS NULL OR NOT EXISTS (SELECT 1 FROM report_roster o WHERE o.account_sid = r.account_sid
       AND o.month = r.month AND o.version = $7 AND o.service_sid = r.service_sid AND o.identity = r.identity))
ORDER BY service_sid, identity LIMIT $5`
)

// RosterQuery selects roster entries: of a version (or the provisional
// roster with Version nil), only those not in AddedSince when set, after the
// keyset position (AfterService, AfterIdentity), at most Limit (0: all).
type RosterQuery struct {
	AccountSID    string
	Month         usage.Month
	Version       *int
	AddedSince    *int
	AfterService  string
	AfterIdentity string
	Limit         int
}

// Roster calls fn for each roster entry in (service_sid, identity) byte
// order, streaming: a million-user roster is never held in memory.
func (s *Store) Roster(ctx context.Context, q RosterQuery, fn func(usage.RosterEntry) error) error {
	if q.Version == nil { // the provisional roster is the rollup
		return translate(s.readRollup(ctx, q.AccountSID, func(r rollupReader) error {
			return rosterRows(ctx, r, q, fn)
		}))
	}
	return translate(rosterRows(ctx, s.pool, q, fn))
}

func rosterRows(ctx context.Context, db querier, q RosterQuery, fn func(usage.RosterEntry) error) error {
	limit := any(nil)
	if q.Limit > 0 {
		limit = q.Limit
	}
	var rows pgx.Rows
	var err error
	if q.Version == nil {
		rows, err = db.Query(ctx, provisionalRoster, q.AccountSID, q.Month.Start(), q.AfterService, q.AfterIdentity, limit)
	} else {
		rows, err = db.Query(ctx, versionRoster, q.AccountSID, q.Month.Start(), q.AfterService, q.AfterIdentity, limit, *q.Version, q.AddedSince)
	}
	if err != nil {
		return fmt.Errorf("roster of %s %s: %w", q.AccountSID, q.Month, err)
	}
	var e usage.RosterEntry
	var act string
	_, err = pgx.ForEachRow(rows, []any{&e.ServiceSID, &e.Identity, &act, &e.FirstEventID, &e.FirstActiveAt, &e.LastActiveAt, &e.Events}, func() error {
		e.FirstActivity = usage.Activity(act)
		e.FirstActiveAt, e.LastActiveAt = e.FirstActiveAt.UTC(), e.LastActiveAt.UTC()
		return fn(e)
	})
	if err != nil {
		return fmt.Errorf("roster of %s %s: %w", q.AccountSID, q.Month, err)
	}
	return nil
}

// checksum streams the roster of a report through usage.Checksum.
func checksum(ctx context.Context, db querier, r *usage.Report) error {
	c := usage.NewChecksum(r.AccountSID, r.Month, r.Version, r.Figures)
	err := rosterRows(ctx, db, RosterQuery{AccountSID: r.AccountSID, Month: r.Month, Version: r.Version},
		func(e usage.RosterEntry) error { c.Add(e); return nil })
	if err != nil {
		return err
	}
	r.Checksum = c.Sum()
	return nil
}

// ProvisionalReport computes an account's month now, from the rollup, in
// one snapshot (repeatable read), without writing anything.
func (s *Store) ProvisionalReport(ctx context.Context, accountSID string, m usage.Month) (usage.Report, error) {
	r := usage.Report{AccountSID: accountSID, Month: m, Status: usage.StatusProvisional, GeneratedAt: s.now().UTC()}
	err := s.readRollup(ctx, accountSID, func(q rollupReader) error {
		var err error
		if r.Figures, err = figures(ctx, q, accountSID, m); err != nil {
			return err
		}
		if r.RateCard, err = rateCard(ctx, q.tx, accountSID); err != nil && !errors.Is(err, usage.ErrNotFound) {
			return err
		}
		return checksum(ctx, q, &r)
	})
	if err != nil {
		return usage.Report{}, translate(err)
	}
	return r, nil
}

const versionColumns = `version, supersedes, added_users, generated_at, events_through, active_users,
    distinct_identities, services, rate_card, checksum`

type serviceJSON struct {
	ServiceSID      string                   `json:"service_sid"`
	ActiveUsers     int64                    `json:"active_users"`
	NewUsers        int64                    `json:"new_users"`
	RESTOnlyUsers   int64                    `json:"rest_only_users"`
	ByFirstActivity map[usage.Activity]int64 `json:"by_first_activity"`
}

func scanVersion(row pgx.Row, r *usage.Report) error {
	var version int
	var services []serviceJSON
	err := row.Scan(&version, &r.Supersedes, &r.AddedUsers, &r.GeneratedAt, &r.EventsThrough, &r.ActiveUsers,
		&r.DistinctIdentities, &services, &r.RateCard, &r.Checksum)
	if err != nil {
		return err
	}
	r.Version = &version
	r.Status = usage.StatusFinal
	r.GeneratedAt = r.GeneratedAt.UTC()
	if r.EventsThrough != nil {
		t := r.EventsThrough.UTC()
		r.EventsThrough = &t
	}
	r.Services = make([]usage.ServiceFigures, len(services))
	for i, sj := range services {
		r.Services[i] = usage.ServiceFigures(sj)
	}
	return nil
}

// Version returns a stored version of a month's report; nil means the latest.
func (s *Store) Version(ctx context.Context, accountSID string, m usage.Month, version *int) (usage.Report, error) {
	r := usage.Report{AccountSID: accountSID, Month: m}
	err := scanVersion(s.pool.QueryRow(ctx, `SELECT `+versionColumns+` FROM report_versions
		WHERE account_sid = $1 AND month = $2 AND ($3::int IS NULL OR version = $3)
		ORDER BY version DESC LIMIT 1`, accountSID, m.Start(), version), &r)
	if err != nil {
		return usage.Report{}, translate(fmt.Errorf("report %s %s: %w", accountSID, m, err))
	}
	return r, nil
}

// MonthSummary is one line of an account's list of reports.
type MonthSummary struct {
	Month       usage.Month
	Version     *int
	ActiveUsers int64
}

// Months lists every month of an account that has events or a version,
// newest first, with its latest version or, without one, the provisional
// count from the rollup.
func (s *Store) Months(ctx context.Context, accountSID string) ([]MonthSummary, error) {
	var out []MonthSummary
	err := s.readRollup(ctx, accountSID, func(q rollupReader) error {
		rows, err := q.Query(ctx, `SELECT a.month, v.version,
	    coalesce(v.active_users, (SELECT count(*) FROM month_users m WHERE m.account_sid = a.account_sid AND m.month = a.month))
	FROM (SELECT account_sid, month FROM account_months WHERE account_sid = $1
	      UNION SELECT account_sid, month FROM report_versions WHERE account_sid = $1) a
	LEFT JOIN LATERAL (SELECT version, active_users FROM report_versions r
	      WHERE r.account_sid = a.account_sid AND r.month = a.month ORDER BY version DESC LIMIT 1) v ON true
	ORDER BY a.month DESC`, accountSID)
		if err != nil {
			return err
		}
		var month time.Time
		var ms MonthSummary
		_, err = pgx.ForEachRow(rows, []any{&month, &ms.Version, &ms.ActiveUsers}, func() error {
			ms.Month = usage.MonthOf(month)
			out = append(out, ms)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, translate(fmt.Errorf("months of %s: %w", accountSID, err))
	}
	return out, nil
}

// FinalizeResult says what a run of the job did for one account-month.
type FinalizeResult struct {
	Report usage.Report
	Stored bool // a new version was stored
}

// FinalizeMonth stores version 1 of a month, or version N+1 when users were
// added since version N, and nothing when no user was added. It holds the
// month's row in account_months FOR UPDATE, so concurrent runs (replicas,
// the CLI) store one version, and no body for the month commits meanwhile.
// It locks nothing else: bodies for other months, folds and reads of the
// account go on.
func (s *Store) FinalizeMonth(ctx context.Context, accountSID string, m usage.Month) (FinalizeResult, error) {
	select {
	case s.finalizing <- struct{}{}:
		defer func() { <-s.finalizing }()
	case <-ctx.Done():
		return FinalizeResult{}, fmt.Errorf("finalize %s %s: %w", accountSID, m, translate(ctx.Err()))
	}
	var res FinalizeResult
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		now := s.now().UTC()
		if _, err := tx.Exec(ctx, `INSERT INTO account_months (account_sid, month) VALUES ($1, $2)
			ON CONFLICT DO NOTHING`, accountSID, m.Start()); err != nil {
			return fmt.Errorf("note month: %w", err)
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM account_months WHERE account_sid = $1 AND month = $2
			FOR UPDATE`, accountSID, m.Start()); err != nil {
			return fmt.Errorf("lock month: %w", err)
		}
		// Bodies for the month that committed before the lock was granted
		// may still be pending: fold them, in a transaction of the fold's
		// own, so that the fold's locks are not held while the version is
		// written. This transaction reads committed data statement by
		// statement; what it reads of the month cannot change while it
		// holds the month: only a body for the month adds to it.
		if err := s.fold(ctx, accountSID); err != nil {
			return err
		}
		if s.afterMonthLock != nil {
			s.afterMonthLock()
		}
		prev := usage.Report{AccountSID: accountSID, Month: m}
		err := scanVersion(tx.QueryRow(ctx, `SELECT `+versionColumns+` FROM report_versions
			WHERE account_sid = $1 AND month = $2 ORDER BY version DESC LIMIT 1`, accountSID, m.Start()), &prev)
		havePrev := err == nil
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("latest version: %w", err)
		}
		var added int64
		if havePrev {
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM month_users m WHERE m.account_sid = $1 AND m.month = $2
				AND NOT EXISTS (SELECT 1 FROM report_roster r WHERE r.account_sid = $1 AND r.month = $2
				    AND r.version = $3 AND r.service_sid = m.service_sid AND r.identity = m.identity)`,
				accountSID, m.Start(), *prev.Version).Scan(&added); err != nil {
				return fmt.Errorf("count added users: %w", err)
			}
			if added == 0 {
				res.Report = prev
				_, err := tx.Exec(ctx, `UPDATE account_months SET revision_due = false
					WHERE account_sid = $1 AND month = $2 AND revision_due`, accountSID, m.Start())
				return err
			}
		}
		r := usage.Report{AccountSID: accountSID, Month: m, Status: usage.StatusFinal, GeneratedAt: now}
		version := 1
		if havePrev {
			version = *prev.Version + 1
			r.Supersedes = prev.Version
			r.AddedUsers = &added
		}
		r.Version = &version
		if r.Figures, err = figures(ctx, tx, accountSID, m); err != nil {
			return err
		}
		if r.RateCard, err = rateCard(ctx, tx, accountSID); err != nil && !errors.Is(err, usage.ErrNotFound) {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO report_roster (account_sid, month, version, service_sid, identity,
			    first_activity, first_event_id, first_active_at, last_active_at, events)
			SELECT account_sid, month, $3, service_sid, identity, first_activity, first_event_id, first_at, last_at, events
			FROM month_users WHERE account_sid = $1 AND month = $2`, accountSID, m.Start(), version); err != nil {
			return fmt.Errorf("store roster: %w", err)
		}
		if err := checksum(ctx, tx, &r); err != nil {
			return err
		}
		services := make([]serviceJSON, len(r.Services))
		for i, sf := range r.Services {
			services[i] = serviceJSON(sf)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO report_versions (account_sid, month, version, supersedes, added_users,
			    generated_at, events_through, active_users, distinct_identities, services, rate_card, checksum)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			accountSID, m.Start(), version, r.Supersedes, r.AddedUsers, r.GeneratedAt, r.EventsThrough,
			r.ActiveUsers, r.DistinctIdentities, services, r.RateCard, r.Checksum); err != nil {
			return fmt.Errorf("store version: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO account_months (account_sid, month, final_version) VALUES ($1, $2, $3)
			ON CONFLICT (account_sid, month) DO UPDATE SET final_version = $3, revision_due = false`,
			accountSID, m.Start(), version); err != nil {
			return fmt.Errorf("mark month final: %w", err)
		}
		res = FinalizeResult{Report: r, Stored: true}
		return nil
	})
	if err != nil {
		return FinalizeResult{}, fmt.Errorf("finalize %s %s: %w", accountSID, m, err)
	}
	return res, nil
}

// DueMonth is an account-month the scheduler must run.
type DueMonth struct {
	AccountSID string
	Month      usage.Month
}

// DueMonths lists the account-months to finalize (no version yet, month
// before `before`) and those flagged for a revision by late events.
// Served by the partial index account_months_due.
func (s *Store) DueMonths(ctx context.Context, before usage.Month) ([]DueMonth, error) {
	rows, err := s.pool.Query(ctx, `SELECT account_sid, month FROM account_months
		WHERE (final_version IS NULL AND month < $1) OR revision_due ORDER BY month, account_sid`, before.Start())
	if err != nil {
		return nil, translate(fmt.Errorf("due months: %w", err))
	}
	var out []DueMonth
	var d DueMonth
	var month time.Time
	_, err = pgx.ForEachRow(rows, []any{&d.AccountSID, &month}, func() error {
		d.Month = usage.MonthOf(month)
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, translate(fmt.Errorf("due months: %w", err))
	}
	return out, nil
}

func rateCard(ctx context.Context, q querier, accountSID string) ([]byte, error) {
	var card []byte
	err := q.QueryRow(ctx, `SELECT card FROM rate_cards WHERE account_sid = $1`, accountSID).Scan(&card)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("rate card of %s: %w", accountSID, usage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("rate card of %s: %w", accountSID, err)
	}
	return card, nil
}

// RateCard returns an account's rate card JSON.
func (s *Store) RateCard(ctx context.Context, accountSID string) ([]byte, error) {
	card, err := rateCard(ctx, s.pool, accountSID)
	return card, translate(err)
}

// SetRateCard replaces an account's rate card; versions already stored keep
// the card they were made with.
func (s *Store) SetRateCard(ctx context.Context, accountSID string, card json.RawMessage) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO rate_cards (account_sid, card, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (account_sid) DO UPDATE SET card = EXCLUDED.card, updated_at = EXCLUDED.updated_at`,
		accountSID, card, s.now().UTC())
	if err != nil {
		return translate(fmt.Errorf("set rate card of %s: %w", accountSID, err))
	}
	return nil
}
