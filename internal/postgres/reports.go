package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
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
//
// monthFiguresOf is the figures of the rows it is followed by, which
// liveMonthFigures shares.
const (
	monthFiguresOf = `SELECT service_sid, first_activity, count(*),
       count(*) FILTER (WHERE activities & ~$3::smallint = 0), max(last_received_at)
FROM `
	monthFigures = monthFiguresOf + `month_users WHERE account_sid = $1 AND month = $2
GROUP BY service_sid, first_activity
ORDER BY service_sid, first_activity`
	monthNewUsers = `SELECT service_sid, count(*) FROM users WHERE account_sid = $1 AND first_month = $2
  AND ($3::text IS NULL OR service_sid = $3)
GROUP BY service_sid ORDER BY service_sid`
	// Only asked when the month has more than one service: with one, every
	// user is a distinct identity.
	monthIdentities = `SELECT count(DISTINCT identity) FROM month_users WHERE account_sid = $1 AND month = $2`
)

// figures counts a month of an account. q must read one snapshot (a
// repeatable-read transaction, or one that holds the fold lock).
func figures(ctx context.Context, q querier, accountSID string, m usage.Month) (usage.Figures, error) {
	var f usage.Figures
	rows, err := queryLiveOr(ctx, q, monthFigures, liveMonthFigures, accountSID, m.Start(), usage.RESTOnlyActivities)
	if err != nil {
		return f, fmt.Errorf("figures of %s %s: %w", accountSID, m, err)
	}
	type row struct {
		svc, act    string
		n, restOnly int64
		through     *time.Time
	}
	var groups []row
	var g row
	_, err = pgx.ForEachRow(rows, []any{&g.svc, &g.act, &g.n, &g.restOnly, &g.through}, func() error {
		groups = append(groups, g)
		return nil
	})
	if err != nil {
		return f, fmt.Errorf("figures of %s %s: %w", accountSID, m, err)
	}
	// liveMonthFigures leaves its few groups unordered: ordered, the
	// planner sorted the month's merged rows to group them.
	slices.SortFunc(groups, func(a, b row) int { return cmp.Or(strings.Compare(a.svc, b.svc), strings.Compare(a.act, b.act)) })
	for _, g := range groups {
		addFigures(&f, g.svc, g.act, g.n, g.restOnly, g.through)
	}
	var svc string
	var n int64
	rows, err = queryLiveOr(ctx, q, monthNewUsers, liveNewUsers, accountSID, m.Start(), nil)
	if err != nil {
		return f, fmt.Errorf("new users of %s %s: %w", accountSID, m, err)
	}
	_, err = pgx.ForEachRow(rows, []any{&svc, &n}, func() error { return setNewUsers(&f, svc, n) })
	if err != nil {
		return f, fmt.Errorf("new users of %s %s: %w", accountSID, m, err)
	}
	f.DistinctIdentities = f.ActiveUsers
	if len(f.Services) > 1 {
		if err := queryRowLiveOr(ctx, q, monthIdentities, liveMonthIdentities, accountSID, m.Start()).Scan(&f.DistinctIdentities); err != nil {
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

// pendingRoster is the provisional roster's pending part: the account's
// pending user-months of the month after the keyset position, grouped as a
// fold groups them, in roster order.
var pendingRoster = `SELECT service_sid, identity, first_activity, first_event_id, first_at, last_at, events
FROM (` + pendingMonthUsersWhere(` AND month = $2 AND (service_sid, identity) > ($3, $4)`, pendingColumns{firstEvent: true}) + `) AS p
ORDER BY service_sid, identity LIMIT $5`

// rosterRows calls fn for each entry of the roster q selects. With events
// pending, the provisional roster is not read behind liveRollup: merged
// there, the month's rows lose the order the primary key gives them and
// are sorted again (30 000 rows: 60 of a report's 110 ms with 2 500 events
// pending). The pending user-months are read first, grouped and in order
// (no more of them than events pending), then merged here with the month's
// rows as they stream in key order, as a fold would merge them.
func rosterRows(ctx context.Context, db querier, q RosterQuery, fn func(usage.RosterEntry) error) error {
	limit := any(nil)
	if q.Limit > 0 {
		limit = q.Limit
	}
	if q.Version != nil {
		rows, err := db.Query(ctx, versionRoster, q.AccountSID, q.Month.Start(), q.AfterService, q.AfterIdentity, limit, *q.Version, q.AddedSince)
		return scanRoster(q, rows, err, fn)
	}
	r, ok := db.(rollupReader)
	if !ok {
		return fmt.Errorf("the provisional roster is read in a snapshot of the rollup")
	}
	// The first Limit entries of the merge are among the first Limit of
	// each side.
	var pending []usage.RosterEntry
	if r.live {
		rows, err := r.tx.Query(ctx, pendingRoster, q.AccountSID, q.Month.Start(), q.AfterService, q.AfterIdentity, limit)
		err = scanRoster(q, rows, err, func(e usage.RosterEntry) error { pending = append(pending, e); return nil })
		if err != nil {
			return err
		}
	}
	if _, err := r.tx.Exec(ctx, rosterSettings); err != nil {
		return fmt.Errorf("set roster settings: %w", err)
	}
	n := 0
	emit := func(e usage.RosterEntry) error {
		if q.Limit > 0 && n == q.Limit {
			return nil
		}
		n++
		return fn(e)
	}
	rows, err := r.tx.Query(ctx, provisionalRoster, q.AccountSID, q.Month.Start(), q.AfterService, q.AfterIdentity, limit)
	err = scanRoster(q, rows, err, func(e usage.RosterEntry) error {
		for len(pending) > 0 && rosterBefore(pending[0], e) {
			if err := emit(pending[0]); err != nil {
				return err
			}
			pending = pending[1:]
		}
		if len(pending) > 0 && pending[0].ServiceSID == e.ServiceSID && pending[0].Identity == e.Identity {
			e = mergeRosterEntry(e, pending[0])
			pending = pending[1:]
		}
		return emit(e)
	})
	if err != nil {
		return err
	}
	for _, p := range pending {
		if err := emit(p); err != nil {
			return err
		}
	}
	return nil
}

// rosterSettings make the month's rows of the provisional roster come
// from the primary key in its order, never sorted: for a whole month the
// planner took a sequential scan and a sort, about twice as slow with the
// rows cached (30 000 rows, rows in random order: PostgreSQL 37 -> 24 ms,
// Citus 72 -> 46 ms, medians of 7). Set for the rest of the read, which
// the roster ends.
var rosterSettings = settingsSQL([][2]string{{"citus.propagate_set_commands", "'local'"}, {"enable_sort", "off"}})

// rosterBefore reports whether a comes before b in roster order: bytes of
// service_sid, then of identity (their collation is "C").
func rosterBefore(a, b usage.RosterEntry) bool {
	if a.ServiceSID != b.ServiceSID {
		return a.ServiceSID < b.ServiceSID
	}
	return a.Identity < b.Identity
}

// mergeRosterEntry merges a user-month's pending events p into its rollup
// row m as foldMonthUsers does: the first activity is the earliest event's,
// by time, then event id.
func mergeRosterEntry(m, p usage.RosterEntry) usage.RosterEntry {
	if p.FirstActiveAt.Before(m.FirstActiveAt) || p.FirstActiveAt.Equal(m.FirstActiveAt) && p.FirstEventID < m.FirstEventID {
		m.FirstActivity, m.FirstEventID, m.FirstActiveAt = p.FirstActivity, p.FirstEventID, p.FirstActiveAt
	}
	if p.LastActiveAt.After(m.LastActiveAt) {
		m.LastActiveAt = p.LastActiveAt
	}
	m.Events += p.Events
	return m
}

// scanRoster calls fn for each row of a roster statement.
func scanRoster(q RosterQuery, rows pgx.Rows, err error, fn func(usage.RosterEntry) error) error {
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

// A MonthHold is an account-month held for finalization (HoldMonth): its
// account_months row locked FOR UPDATE and its account folded, in a
// read-committed transaction. What a hold reads of the month cannot change
// while it is held, since only a body for the month adds to it and such a
// body waits for the row. Its methods are the store's part of
// finalization; which version to store, if any, is the caller's
// (billing.Finalize).
type MonthHold struct {
	tx         pgx.Tx
	accountSID string
	month      usage.Month
	now        time.Time // the transaction's "now": a stored version's generated_at
}

// HoldMonth runs fn while it holds an account-month for finalization, and
// commits what fn stored when fn returns nil. Holding the month's row FOR
// UPDATE for fn's whole decision is what makes concurrent finalizations
// (replicas, the CLI) store one version, and what keeps a body for the
// month from committing meanwhile: it waits, then counts its events as late
// and flags the month for a revision. Nothing else is locked: bodies for
// other months, folds and reads of the account go on.
func (s *Store) HoldMonth(ctx context.Context, accountSID string, m usage.Month, fn func(*MonthHold) error) error {
	select {
	case s.finalizing <- struct{}{}:
		defer func() { <-s.finalizing }()
	case <-ctx.Done():
		return translate(fmt.Errorf("hold month: %w", ctx.Err()))
	}
	// Read committed: each statement reads what is committed when it
	// starts, so the fold below, committed in a transaction of its own
	// after the lock was granted, is seen by every read fn makes.
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		h := &MonthHold{tx: tx, accountSID: accountSID, month: m, now: s.now().UTC()}
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
		// written.
		if err := s.fold(ctx, accountSID); err != nil {
			return err
		}
		if s.afterMonthLock != nil {
			s.afterMonthLock()
		}
		return fn(h)
	})
	if err != nil {
		return translate(fmt.Errorf("hold month: %w", err))
	}
	return nil
}

// Latest returns the month's latest stored version, or an error wrapping
// usage.ErrNotFound when it has none.
func (h *MonthHold) Latest(ctx context.Context) (usage.Report, error) {
	r := usage.Report{AccountSID: h.accountSID, Month: h.month}
	err := scanVersion(h.tx.QueryRow(ctx, `SELECT `+versionColumns+` FROM report_versions
		WHERE account_sid = $1 AND month = $2 ORDER BY version DESC LIMIT 1`, h.accountSID, h.month.Start()), &r)
	if errors.Is(err, pgx.ErrNoRows) {
		return usage.Report{}, fmt.Errorf("latest version: %w", usage.ErrNotFound)
	}
	if err != nil {
		return usage.Report{}, fmt.Errorf("latest version: %w", err)
	}
	return r, nil
}

// UsersAddedSince counts the month's users, as the rollup has them now,
// who are not in the roster of the given version.
func (h *MonthHold) UsersAddedSince(ctx context.Context, version int) (int64, error) {
	var added int64
	if err := h.tx.QueryRow(ctx, `SELECT count(*) FROM month_users m WHERE m.account_sid = $1 AND m.month = $2
		AND NOT EXISTS (SELECT 1 FROM report_roster r WHERE r.account_sid = $1 AND r.month = $2
		    AND r.version = $3 AND r.service_sid = m.service_sid AND r.identity = m.identity)`,
		h.accountSID, h.month.Start(), version).Scan(&added); err != nil {
		return 0, fmt.Errorf("count users added since version %d: %w", version, err)
	}
	return added, nil
}

// NewVersion is what the caller of MonthHold.StoreVersion decides about a
// version; the store adds the month's figures, rate card, roster and
// checksum.
type NewVersion struct {
	Version    int
	Supersedes *int   // the version it revises; nil for version 1
	AddedUsers *int64 // the users not in the superseded version; nil for version 1
}

// StoreVersion freezes the month as it is now into version v: figures, the
// account's rate card, the roster and its checksum. It marks the month
// final at v, which clears its revision flag. Versions are write-once: a
// version number already stored is a conflict.
func (h *MonthHold) StoreVersion(ctx context.Context, v NewVersion) (usage.Report, error) {
	r := usage.Report{AccountSID: h.accountSID, Month: h.month, Status: usage.StatusFinal, GeneratedAt: h.now,
		Version: &v.Version, Supersedes: v.Supersedes, AddedUsers: v.AddedUsers}
	var err error
	if r.Figures, err = figures(ctx, h.tx, h.accountSID, h.month); err != nil {
		return usage.Report{}, err
	}
	if r.RateCard, err = rateCard(ctx, h.tx, h.accountSID); err != nil && !errors.Is(err, usage.ErrNotFound) {
		return usage.Report{}, err
	}
	if _, err := h.tx.Exec(ctx, `INSERT INTO report_roster (account_sid, month, version, service_sid, identity,
		    first_activity, first_event_id, first_active_at, last_active_at, events)
		SELECT account_sid, month, $3, service_sid, identity, first_activity, first_event_id, first_at, last_at, events
		FROM month_users WHERE account_sid = $1 AND month = $2`, h.accountSID, h.month.Start(), v.Version); err != nil {
		return usage.Report{}, fmt.Errorf("store roster of version %d: %w", v.Version, err)
	}
	if err := checksum(ctx, h.tx, &r); err != nil {
		return usage.Report{}, err
	}
	services := make([]serviceJSON, len(r.Services))
	for i, sf := range r.Services {
		services[i] = serviceJSON(sf)
	}
	if _, err := h.tx.Exec(ctx, `INSERT INTO report_versions (account_sid, month, version, supersedes, added_users,
		    generated_at, events_through, active_users, distinct_identities, services, rate_card, checksum)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		h.accountSID, h.month.Start(), v.Version, r.Supersedes, r.AddedUsers, r.GeneratedAt, r.EventsThrough,
		r.ActiveUsers, r.DistinctIdentities, services, r.RateCard, r.Checksum); err != nil {
		return usage.Report{}, fmt.Errorf("store version %d: %w", v.Version, err)
	}
	if _, err := h.tx.Exec(ctx, `INSERT INTO account_months (account_sid, month, final_version) VALUES ($1, $2, $3)
		ON CONFLICT (account_sid, month) DO UPDATE SET final_version = $3, revision_due = false`,
		h.accountSID, h.month.Start(), v.Version); err != nil {
		return usage.Report{}, fmt.Errorf("mark month final at version %d: %w", v.Version, err)
	}
	return r, nil
}

// ClearRevisionDue clears the month's revision flag without storing a
// version: for when the late events that set it added no user.
func (h *MonthHold) ClearRevisionDue(ctx context.Context) error {
	if _, err := h.tx.Exec(ctx, `UPDATE account_months SET revision_due = false
		WHERE account_sid = $1 AND month = $2 AND revision_due`, h.accountSID, h.month.Start()); err != nil {
		return fmt.Errorf("clear revision flag: %w", err)
	}
	return nil
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
