package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tallyhq/tally/internal/usage"
)

// identityStats counts a month's identities in one pass over the month's
// rollup rows, never events, and without joining users: a new identity is
// one whose first month is this one (monthNewUsers, from users), and every
// other active identity is returning, as an active identity's first month
// is never later than the month (the fold writes both tables in one
// transaction). EXPLAIN with 1 M users in one account-month: joining the
// two tables to tell new from returning (parallel seq scans and a hash
// join) took 1.8–2.0 s.
//
// The figures are grouped by the reserved-character mask (few distinct
// values: most identities hold none or only @) and summed in Go, so that
// the count per reserved character costs no second pass.
//
// identityStatsOf is the figures of the rows it is followed by, which
// liveIdentityStats shares.
const (
	identityStatsOf = `SELECT reserved, count(*),
    count(*) FILTER (WHERE events = 1),
    count(*) FILTER (WHERE activities & ~$4::smallint = 0),
    count(*) FILTER (WHERE cardinality(endpoints) >= 3),
    count(*) FILTER (WHERE identity_flags & $5::smallint <> 0),
    count(*) FILTER (WHERE identity_flags & $6::smallint <> 0),
    coalesce(sum(events), 0),
    count(*) FILTER (WHERE activities = $7::smallint),
    count(*) FILTER (WHERE activities = $8::smallint)
FROM `
	identityStats = identityStatsOf + `month_users
WHERE account_sid = $1 AND month = $2 AND ($3::text IS NULL OR service_sid = $3)
GROUP BY reserved`
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

// lookalikeCount counts the identities in groups of two or more that share
// a lookalike key within a service. Every member of such a group has its
// key set: an identity whose key is another identity always (migration
// 00017), and the identity that is the key once a twin is active (the fold
// marks it, pendingLookalike; migration 00020). So the groups are the rows
// of the partial index month_users_lookalike, grouped: an index-only scan
// of the identities not their own key, nothing over the others. With 1 M
// users, 100 000 of them not their own key: ~0.05 s; probing the primary
// key for the identity that is each key, before the mark, took 1.3 s.
const lookalikeCount = `SELECT coalesce(sum(n), 0) FROM (
    SELECT count(*) AS n FROM month_users
    WHERE account_sid = $1 AND month = $2 AND ($3::text IS NULL OR service_sid = $3) AND lookalike IS NOT NULL
    GROUP BY service_sid, lookalike
    HAVING count(*) >= 2) AS g`

// billedUsers counts the month's users over all services, for the
// avoidable amount of one service's figures (an index-only range).
const billedUsers = `SELECT count(*) FROM month_users WHERE account_sid = $1 AND month = $2`

// monthRateCard is the card the month's report is priced with: its latest
// version's if one is stored (NULL if that version had none), else the
// account's card.
const monthRateCard = `SELECT card FROM (
    SELECT 1 AS o, rate_card AS card FROM (SELECT rate_card FROM report_versions
        WHERE account_sid = $1 AND month = $2 ORDER BY version DESC LIMIT 1) AS v
    UNION ALL
    SELECT 2, card FROM rate_cards WHERE account_sid = $1) AS c
ORDER BY o LIMIT 1`

// IdentityStats computes the admin statistics of a month, optionally for
// one service, in one snapshot.
func (s *Store) IdentityStats(ctx context.Context, accountSID string, m usage.Month, serviceSID *string) (usage.IdentityStats, error) {
	var st usage.IdentityStats
	err := s.readRollup(ctx, accountSID, func(tx rollupReader) error {
		rows, _ := queryLiveOr(ctx, tx, identityStats, liveIdentityStats, accountSID, m.Start(), serviceSID,
			usage.RESTOnlyActivities, usage.FlagReserved, usage.FlagRandomLike, usage.Authenticate.Bit(), usage.Update.Bit())
		var g usage.IdentityStats
		var mask int32
		st.ReservedCharacters = map[string]int64{}
		_, err := pgx.ForEachRow(rows, []any{&mask, &g.ActiveIdentities, &g.OneTimeIdentities, &g.RESTOnlyIdentities,
			&g.MultiEndpointIdentities, &g.ReservedCharacterIdentities, &g.RandomLikeIdentities, &g.Events,
			&g.AuthenticateOnlyIdentities, &g.UpdateOnlyIdentities}, func() error {
			st.ActiveIdentities += g.ActiveIdentities
			st.OneTimeIdentities += g.OneTimeIdentities
			st.RESTOnlyIdentities += g.RESTOnlyIdentities
			st.MultiEndpointIdentities += g.MultiEndpointIdentities
			st.ReservedCharacterIdentities += g.ReservedCharacterIdentities
			st.RandomLikeIdentities += g.RandomLikeIdentities
			st.Events += g.Events
			st.AuthenticateOnlyIdentities += g.AuthenticateOnlyIdentities
			st.UpdateOnlyIdentities += g.UpdateOnlyIdentities
			usage.CountReserved(st.ReservedCharacters, mask, g.ActiveIdentities)
			return nil
		})
		if err != nil {
			return fmt.Errorf("identity stats: %w", err)
		}
		st.BilledUsers = st.ActiveIdentities
		if serviceSID != nil {
			if err := tx.QueryRow(ctx, billedUsers, accountSID, m.Start()).Scan(&st.BilledUsers); err != nil {
				return fmt.Errorf("billed users: %w", err)
			}
		}
		if err := tx.QueryRow(ctx, monthRateCard, accountSID, m.Start()).Scan(&st.RateCard); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("rate card: %w", err)
		}
		rows, _ = queryLiveOr(ctx, tx, monthNewUsers, liveNewUsers, accountSID, m.Start(), serviceSID) // pgx reports a failed query through rows
		var n int64
		_, err = pgx.ForEachRow(rows, []any{nil, &n}, func() error { st.NewIdentities += n; return nil })
		if err != nil {
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
		rows, _ = queryLiveOr(ctx, tx, topIdentities, liveTopIdentities, accountSID, m.Start(), serviceSID)
		st.TopIdentities, err = pgx.CollectRows(rows, pgx.RowToStructByPos[usage.IdentityEvents])
		if err != nil {
			return fmt.Errorf("top identities: %w", err)
		}
		if err := queryRowLiveOr(ctx, tx, lookalikeCount, liveLookalikeCount, accountSID, m.Start(), serviceSID).Scan(&st.LookalikeIdentities); err != nil {
			return fmt.Errorf("lookalike identities: %w", err)
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
	// Flag keeps only the identities one statistic counts (IdentityFlags
	// lists them); "" keeps all.
	Flag string
}

// identityFlags are the predicates of the listing's flag= (§7), each the
// condition of the statistic of the same name, on a month_users row m of
// the month ($1, $2).
var identityFlags = map[string]string{
	"one_time":           `m.events = 1`,
	"rest_only":          fmt.Sprintf(`m.activities & ~%d::smallint = 0`, usage.RESTOnlyActivities),
	"authenticate_only":  fmt.Sprintf(`m.activities = %d`, usage.Authenticate.Bit()),
	"update_only":        fmt.Sprintf(`m.activities = %d`, usage.Update.Bit()),
	"multi_endpoint":     `cardinality(m.endpoints) >= 3`,
	"reserved_character": fmt.Sprintf(`m.identity_flags & %d::smallint <> 0`, usage.FlagReserved),
	"random_like":        fmt.Sprintf(`m.identity_flags & %d::smallint <> 0`, usage.FlagRandomLike),
	// In a group of two or more (see lookalikeCount): every member has
	// its key set, so another row with the same key. Inside CASE the
	// EXISTS stays a probe of the partial index for each row the page
	// walks; a bare AND EXISTS became a semi join of the whole month,
	// sorted, 1.2 s for a first page of 1 M users.
	"lookalike": `CASE WHEN m.lookalike IS NOT NULL THEN
        EXISTS (SELECT 1 FROM month_users o WHERE o.account_sid = $1 AND o.month = $2 AND o.service_sid = m.service_sid
                AND o.lookalike = m.lookalike AND o.identity <> m.identity) ELSE false END`,
}

// IdentityFlags lists the flags of the identity listing.
func IdentityFlags() []string {
	return []string{"one_time", "rest_only", "authenticate_only", "update_only", "multi_endpoint",
		"reserved_character", "random_like", "lookalike"}
}

// listIdentitiesFlagged is listIdentities for each flag.
var listIdentitiesFlagged = func() map[string]string {
	out := map[string]string{"": fmt.Sprintf(listIdentities, "true")}
	for f, cond := range identityFlags {
		out[f] = fmt.Sprintf(listIdentities, cond)
	}
	return out
}()

// listIdentities walks month_users_pkey from the keyset position: no
// OFFSET, so a page costs the same wherever it is.
// A flag filters the rows walked (%s): a page of a rare flag may walk far.
const listIdentities = `SELECT service_sid, identity, events, first_at, last_at, activities, sources, endpoints
FROM month_users m
WHERE account_sid = $1 AND month = $2 AND ($3::text IS NULL OR service_sid = $3)
  AND (service_sid, identity) > ($4, $5)
  AND ($6 = '' OR identity LIKE $7)
  AND (%s)
ORDER BY service_sid, identity LIMIT $8`

// Identities returns a page of a month's identities.
func (s *Store) Identities(ctx context.Context, q IdentityQuery) ([]usage.IdentityMonth, error) {
	stmt, ok := listIdentitiesFlagged[q.Flag]
	if !ok {
		return nil, usage.Invalid("flag", "must be one of %s, not %q", strings.Join(IdentityFlags(), ", "), q.Flag)
	}
	var out []usage.IdentityMonth
	err := s.readRollup(ctx, q.AccountSID, func(r rollupReader) error {
		rows, err := r.Query(ctx, stmt, q.AccountSID, q.Month.Start(), q.ServiceSID,
			q.AfterService, q.AfterIdentity, q.Prefix, likePrefix(q.Prefix), q.Limit)
		if err != nil {
			return err
		}
		out, err = collectIdentityMonths(rows, q.Month, false)
		return err
	})
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
	h := usage.UserHistory{ServiceSID: serviceSID, Identity: identity}
	err := s.readRollup(ctx, accountSID, func(tx rollupReader) error {
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

// LookalikeQuery selects a page of a month's lookalike groups, after a
// keyset position in their order (size descending, service, key).
type LookalikeQuery struct {
	AccountSID string
	Month      usage.Month
	ServiceSID *string
	// After is the last group of the previous page; nil for the first.
	After *LookalikeGroupPosition
	Limit int
}

// LookalikeGroupPosition is a group's place in the order of the listing.
type LookalikeGroupPosition struct {
	Size       int64
	ServiceSID string
	Key        string
}

// lookalikeGroups finds every group of two or more identities of a
// service sharing a lookalike key as lookalikeCount counts them, from the
// partial index alone (every member has its key set), and gathers the
// identities and events of the page's groups only. Each page finds the
// groups again: the work grows with the identities that are not their own
// key, not with the month's users. EXPLAIN with 1 M users, 100 000 of them
// not their own key: an index-only scan of the partial index, grouped, and
// a top-N sort; gathering every group's identities and events first read
// the month's rows (a parallel seq scan and a sort spilling to disk), 3.3 s
// a page.
const lookalikeGroups = `SELECT service_sid, key,
       ARRAY(SELECT i.identity FROM month_users i
             WHERE i.account_sid = $1 AND i.month = $2 AND i.service_sid = c.service_sid AND i.lookalike = c.key
             ORDER BY i.identity) AS identities,
       (SELECT sum(i.events) FROM month_users i
        WHERE i.account_sid = $1 AND i.month = $2 AND i.service_sid = c.service_sid AND i.lookalike = c.key)::bigint AS events
FROM (SELECT service_sid, lookalike AS key, count(*) AS n FROM month_users
      WHERE account_sid = $1 AND month = $2 AND ($3::text IS NULL OR service_sid = $3) AND lookalike IS NOT NULL
      GROUP BY service_sid, lookalike
      HAVING count(*) >= 2) AS c
WHERE $4::bigint IS NULL OR n < $4 OR (n = $4 AND (service_sid, key) > ($5, $6))
ORDER BY n DESC, service_sid, key
LIMIT $7`

// LookalikeGroups returns a page of a month's lookalike groups, largest
// first, then by service and key (byte order).
func (s *Store) LookalikeGroups(ctx context.Context, q LookalikeQuery) ([]usage.LookalikeGroup, error) {
	var size *int64
	var afterService, afterKey string
	if q.After != nil {
		size, afterService, afterKey = &q.After.Size, q.After.ServiceSID, q.After.Key
	}
	var out []usage.LookalikeGroup
	err := s.readRollup(ctx, q.AccountSID, func(r rollupReader) error {
		rows, err := r.Query(ctx, lookalikeGroups, q.AccountSID, q.Month.Start(), q.ServiceSID, size, afterService, afterKey, q.Limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowToStructByPos[usage.LookalikeGroup])
		return err
	})
	if err != nil {
		return nil, translate(fmt.Errorf("lookalikes of %s %s: %w", q.AccountSID, q.Month, err))
	}
	return out, nil
}
