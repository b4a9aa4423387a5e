package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tallyhq/tally/internal/usage"
)

// identityStats counts a month's identities in one pass over the month's
// rollup rows, never events, and without joining users: a new identity is
// one whose first month is this one (identityNew, from users), and every
// other active identity is returning, as an active identity's first month
// is never later than the month (the fold writes both tables in one
// transaction). EXPLAIN with 1 M users in one account-month: joining the
// two tables to tell new from returning (parallel seq scans and a hash
// join) took 1.8–2.0 s.
const (
	identityStats = `SELECT count(*),
    count(*) FILTER (WHERE events = 1),
    count(*) FILTER (WHERE activities & ~$4::smallint = 0),
    count(*) FILTER (WHERE cardinality(endpoints) >= 3),
    count(*) FILTER (WHERE identity_flags & $5::smallint <> 0),
    count(*) FILTER (WHERE identity_flags & $6::smallint <> 0),
    coalesce(sum(events), 0)
FROM month_users
WHERE account_sid = $1 AND month = $2 AND ($3::text IS NULL OR service_sid = $3)`
	// The range (account_sid, first_month[, service_sid]) of
	// users_first_month (migration 00014).
	identityNew = `SELECT count(*) FROM users
WHERE account_sid = $1 AND first_month = $2 AND ($3::text IS NULL OR service_sid = $3)`
)

// churned counts last month's identities absent this month. EXPLAIN: a
// nested-loop anti join of index-only scans of month_users_pkey (the
// previous month's range, probed by (account_sid, month, service_sid,
// identity) in this month).
const churned = `SELECT count(*) FROM month_users p
WHERE p.account_sid = $1 AND p.month = $2 AND ($4::text IS NULL OR p.service_sid = $4)
  AND NOT EXISTS (SELECT 1 FROM month_users m WHERE m.account_sid = $1 AND m.month = $3
                  AND m.service_sid = p.service_sid AND m.identity = p.identity)`

// topIdentities: a top-N heap sort of the month's rows (EXPLAIN with 1 M
// users: Gather Merge over a parallel seq scan; the PK range on a small
// month).
const topIdentities = `SELECT service_sid, identity, events FROM month_users
WHERE account_sid = $1 AND month = $2 AND ($3::text IS NULL OR service_sid = $3)
ORDER BY events DESC, service_sid, identity LIMIT 10`

// IdentityStats computes the admin statistics of a month, optionally for
// one service, in one snapshot.
func (s *Store) IdentityStats(ctx context.Context, accountSID string, m usage.Month, serviceSID *string) (usage.IdentityStats, error) {
	if err := s.fold(ctx, accountSID); err != nil {
		return usage.IdentityStats{}, err
	}
	var st usage.IdentityStats
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, identityStats, accountSID, m.Start(), serviceSID,
			usage.RESTOnlyActivities, usage.FlagReserved, usage.FlagRandomLike).Scan(
			&st.ActiveIdentities, &st.OneTimeIdentities, &st.RESTOnlyIdentities, &st.MultiEndpointIdentities,
			&st.ReservedCharacterIdentities, &st.RandomLikeIdentities, &st.Events)
		if err != nil {
			return fmt.Errorf("identity stats: %w", err)
		}
		if err := tx.QueryRow(ctx, identityNew, accountSID, m.Start(), serviceSID).Scan(&st.NewIdentities); err != nil {
			return fmt.Errorf("new identities: %w", err)
		}
		if st.NewIdentities > st.ActiveIdentities {
			return fmt.Errorf("%d identities begin in a month with %d active: the rollup is inconsistent",
				st.NewIdentities, st.ActiveIdentities)
		}
		st.ReturningIdentities = st.ActiveIdentities - st.NewIdentities
		if err := tx.QueryRow(ctx, churned, accountSID, m.Prev().Start(), m.Start(), serviceSID).Scan(&st.ChurnedIdentities); err != nil {
			return fmt.Errorf("churned identities: %w", err)
		}
		rows, _ := tx.Query(ctx, topIdentities, accountSID, m.Start(), serviceSID)
		st.TopIdentities, err = pgx.CollectRows(rows, pgx.RowToStructByPos[usage.IdentityEvents])
		if err != nil {
			return fmt.Errorf("top identities: %w", err)
		}
		return nil
	})
	if err != nil {
		return usage.IdentityStats{}, translate(fmt.Errorf("stats of %s %s: %w", accountSID, m, err))
	}
	return st, nil
}

// IdentityQuery selects a page of a month's identities in (service_sid,
// identity) byte order, after a keyset position.
type IdentityQuery struct {
	AccountSID    string
	Month         usage.Month
	ServiceSID    *string
	Prefix        string
	AfterService  string
	AfterIdentity string
	Limit         int
}

// listIdentities walks month_users_pkey from the keyset position: no
// OFFSET, so a page costs the same wherever it is.
const listIdentities = `SELECT service_sid, identity, events, first_at, last_at, activities, sources, endpoints
FROM month_users
WHERE account_sid = $1 AND month = $2 AND ($3::text IS NULL OR service_sid = $3)
  AND (service_sid, identity) > ($4, $5)
  AND ($6 = '' OR identity LIKE $7)
ORDER BY service_sid, identity LIMIT $8`

// Identities returns a page of a month's identities.
func (s *Store) Identities(ctx context.Context, q IdentityQuery) ([]usage.IdentityMonth, error) {
	if err := s.fold(ctx, q.AccountSID); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, listIdentities, q.AccountSID, q.Month.Start(), q.ServiceSID,
		q.AfterService, q.AfterIdentity, q.Prefix, likePrefix(q.Prefix), q.Limit)
	if err != nil {
		return nil, translate(fmt.Errorf("identities of %s %s: %w", q.AccountSID, q.Month, err))
	}
	out, err := collectIdentityMonths(rows, q.Month, false)
	if err != nil {
		return nil, translate(fmt.Errorf("identities of %s %s: %w", q.AccountSID, q.Month, err))
	}
	return out, nil
}

func collectIdentityMonths(rows pgx.Rows, month usage.Month, withMonth bool) ([]usage.IdentityMonth, error) {
	var out []usage.IdentityMonth
	var im usage.IdentityMonth
	var acts, srcs int16
	var monthStart time.Time
	dest := []any{&im.ServiceSID, &im.Identity, &im.Events, &im.FirstActiveAt, &im.LastActiveAt, &acts, &srcs, &im.Endpoints}
	if withMonth {
		dest = append(dest, &monthStart)
	}
	_, err := pgx.ForEachRow(rows, dest, func() error {
		row := im
		row.Month = month
		if withMonth {
			row.Month = usage.MonthOf(monthStart)
		}
		row.FirstActiveAt, row.LastActiveAt = row.FirstActiveAt.UTC(), row.LastActiveAt.UTC()
		row.Activities, row.Sources = usage.ActivitiesOf(acts), usage.SourcesOf(srcs)
		if row.Endpoints == nil {
			row.Endpoints = []string{}
		}
		out = append(out, row)
		im.Endpoints = nil
		return nil
	})
	return out, err
}

// likePrefix escapes a prefix for LIKE: with the C collation the pattern
// 'abc%' is a range scan of the index.
func likePrefix(p string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(p) + "%"
}

// UserHistory returns one user's first and last activity ever and its
// figures for every month with events, oldest first. EXPLAIN:
// month_users_pkey probed per month of the account (the months are few).
func (s *Store) UserHistory(ctx context.Context, accountSID, serviceSID, identity string) (usage.UserHistory, error) {
	if err := s.fold(ctx, accountSID); err != nil {
		return usage.UserHistory{}, err
	}
	h := usage.UserHistory{ServiceSID: serviceSID, Identity: identity}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT service_sid, identity, events, first_at, last_at, activities, sources, endpoints, month
			FROM month_users m WHERE account_sid = $1 AND service_sid = $2 AND identity = $3
			AND month IN (SELECT month FROM account_months WHERE account_sid = $1)
			ORDER BY month`, accountSID, serviceSID, identity)
		if err != nil {
			return fmt.Errorf("user months: %w", err)
		}
		h.Months, err = collectIdentityMonths(rows, usage.Month{}, true)
		if err != nil {
			return err
		}
		if len(h.Months) == 0 {
			return fmt.Errorf("user: %w", pgx.ErrNoRows)
		}
		// Months are in order: the first activity ever is the earliest
		// month's, the last the latest month's.
		h.FirstActiveAt, h.LastActiveAt = h.Months[0].FirstActiveAt, h.Months[len(h.Months)-1].LastActiveAt
		return nil
	})
	if err != nil {
		return usage.UserHistory{}, translate(fmt.Errorf("history of %s/%s in %s: %w", serviceSID, identity, accountSID, err))
	}
	return h, nil
}
