package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/tallyhq/tally/internal/usage"
)

// Usage alerts (CONTRACT §14): the alerts of an account, the months they
// fired in and the outbox of their webhooks (migration 00018). Every
// statement about one account filters by it, so that on Citus it runs on
// the one worker holding the account; only the evaluator's and the
// delivery worker's scans span accounts, and they take no lock.

// The metrics an alert watches.
const (
	MetricActiveUsers = "active_users"
	MetricAmount      = "amount"
)

// The states of a delivery.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Alert is a threshold on an account's current month, without its secret.
type Alert struct {
	AccountSID   string
	SID          string
	FriendlyName string
	Metric       string
	Threshold    decimal.Decimal
	WebhookURL   string
	CreatedAt    time.Time
}

// AlertDelivery is one webhook of the outbox: one alert firing in a month.
type AlertDelivery struct {
	ID             string
	AccountSID     string
	AlertSID       string
	Month          usage.Month
	Status         string
	Attempts       int
	CreatedAt      time.Time
	NextAttemptAt  *time.Time
	LastStatusCode *int
	LastError      *string
	DeliveredAt    *time.Time
}

const alertColumns = `account_sid, alert_sid, friendly_name, metric, threshold::text, webhook_url, created_at`

func scanAlert(row pgx.Row) (Alert, error) {
	var a Alert
	var threshold string
	if err := row.Scan(&a.AccountSID, &a.SID, &a.FriendlyName, &a.Metric, &threshold, &a.WebhookURL, &a.CreatedAt); err != nil {
		return Alert{}, err
	}
	d, err := decimal.NewFromString(threshold)
	if err != nil {
		return Alert{}, fmt.Errorf("threshold %q: %w", threshold, err)
	}
	a.Threshold, a.CreatedAt = d, a.CreatedAt.UTC()
	return a, nil
}

func collectAlerts(rows pgx.Rows, err error) ([]Alert, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Alert, error) { return scanAlert(r) })
}

// MaxAlertsPerAccount is the most alerts one account may have. Each alert
// is looked at by every evaluation of its account and may queue a webhook a
// month; a cap keeps one account (or a runaway script of its admin) from
// making evaluation and the outbox slow for all.
const MaxAlertsPerAccount = 100

// ErrTooManyAlerts is CreateAlert's answer when the account already has
// MaxAlertsPerAccount alerts. It is an invalid request (usage.ErrInvalid).
var ErrTooManyAlerts = fmt.Errorf("the account already has %d alerts, the most it may have: %w", MaxAlertsPerAccount, usage.ErrInvalid)

// CreateAlert stores a new alert, its signing secret already sealed by the
// caller, unless the account already has MaxAlertsPerAccount alerts
// (ErrTooManyAlerts). a.CreatedAt is set by the store's clock.
func (s *Store) CreateAlert(ctx context.Context, a Alert, sealed []byte) (Alert, error) {
	a.CreatedAt = s.now().UTC()
	// Read committed, not repeatable read: the count must be taken after
	// the lock is granted, on a snapshot of its own.
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		// Creates of one account queue on its row, so the count below sees
		// every alert committed before this insert commits: two creates at
		// once cannot both pass the cap. A row lock, not an advisory lock,
		// because on Citus every node sees it. NO KEY UPDATE does not block
		// the foreign-key checks (KEY SHARE) of the account's other writes.
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM accounts WHERE account_sid = $1 FOR NO KEY UPDATE`, a.AccountSID).Scan(&one); err != nil {
			return fmt.Errorf("lock account: %w", err)
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM alerts WHERE account_sid = $1`, a.AccountSID).Scan(&n); err != nil {
			return fmt.Errorf("count alerts: %w", err)
		}
		if n >= MaxAlertsPerAccount {
			return ErrTooManyAlerts
		}
		_, err := tx.Exec(ctx, `INSERT INTO alerts (account_sid, alert_sid, friendly_name, metric, threshold, webhook_url, secret_sealed, created_at)
			VALUES ($1, $2, $3, $4, $5::numeric, $6, $7, $8)`,
			a.AccountSID, a.SID, a.FriendlyName, a.Metric, asGiven(a.Threshold), a.WebhookURL, sealed, a.CreatedAt)
		return err
	})
	if err != nil {
		return Alert{}, translate(fmt.Errorf("create alert for %s: %w", a.AccountSID, err))
	}
	return a, nil
}

// Alerts lists the alerts of an account, oldest first.
func (s *Store) Alerts(ctx context.Context, accountSID string) ([]Alert, error) {
	as, err := collectAlerts(s.pool.Query(ctx, `SELECT `+alertColumns+` FROM alerts WHERE account_sid = $1
		ORDER BY created_at, alert_sid`, accountSID))
	if err != nil {
		return nil, translate(fmt.Errorf("alerts of %s: %w", accountSID, err))
	}
	return as, nil
}

// Alert returns one alert of an account.
func (s *Store) Alert(ctx context.Context, accountSID, alertSID string) (Alert, error) {
	a, err := scanAlert(s.pool.QueryRow(ctx, `SELECT `+alertColumns+` FROM alerts WHERE account_sid = $1 AND alert_sid = $2`,
		accountSID, alertSID))
	if err != nil {
		return Alert{}, translate(fmt.Errorf("alert %s of %s: %w", alertSID, accountSID, err))
	}
	return a, nil
}

// DeleteAlert deletes an alert with its firings and its deliveries, pending
// ones included: nothing is sent for it any more.
func (s *Store) DeleteAlert(ctx context.Context, accountSID, alertSID string) error {
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM alerts WHERE account_sid = $1 AND alert_sid = $2`, accountSID, alertSID)
		if err != nil {
			return fmt.Errorf("delete alert %s: %w", alertSID, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("delete alert %s of %s: %w", alertSID, accountSID, usage.ErrNotFound)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM alert_firings WHERE account_sid = $1 AND alert_sid = $2`, accountSID, alertSID); err != nil {
			return fmt.Errorf("delete firings of %s: %w", alertSID, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM alert_deliveries WHERE account_sid = $1 AND alert_sid = $2`, accountSID, alertSID); err != nil {
			return fmt.Errorf("delete deliveries of %s: %w", alertSID, err)
		}
		return nil
	})
	return translate(err)
}

const deliveryColumns = `id, account_sid, alert_sid, month, status, attempts, created_at, next_attempt_at,
    last_status_code, last_error, delivered_at`

func scanDelivery(row pgx.Row) (AlertDelivery, error) {
	var d AlertDelivery
	var month time.Time
	err := row.Scan(&d.ID, &d.AccountSID, &d.AlertSID, &month, &d.Status, &d.Attempts, &d.CreatedAt, &d.NextAttemptAt,
		&d.LastStatusCode, &d.LastError, &d.DeliveredAt)
	if err != nil {
		return AlertDelivery{}, err
	}
	d.Month = usage.MonthOf(month)
	d.CreatedAt = d.CreatedAt.UTC()
	for _, t := range []**time.Time{&d.NextAttemptAt, &d.DeliveredAt} {
		if *t != nil {
			u := (**t).UTC()
			*t = &u
		}
	}
	return d, nil
}

// AlertDeliveries lists the deliveries of an alert, newest first. An alert
// that does not exist is not found.
func (s *Store) AlertDeliveries(ctx context.Context, accountSID, alertSID string) ([]AlertDelivery, error) {
	var out []AlertDelivery
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM alerts WHERE account_sid = $1 AND alert_sid = $2`, accountSID, alertSID).Scan(&one); err != nil {
			return fmt.Errorf("alert %s of %s: %w", alertSID, accountSID, err)
		}
		rows, err := tx.Query(ctx, `SELECT `+deliveryColumns+` FROM alert_deliveries
			WHERE account_sid = $1 AND alert_sid = $2 ORDER BY created_at DESC, id`, accountSID, alertSID)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (AlertDelivery, error) { return scanDelivery(r) })
		return err
	})
	if err != nil {
		return nil, translate(fmt.Errorf("deliveries of %s: %w", alertSID, err))
	}
	return out, nil
}

// AlertStatus is an alert with its newest delivery: nil until it fires.
type AlertStatus struct {
	Alert
	Last *AlertDelivery
}

// AlertsWithLastDelivery lists an account's alerts, oldest first, each with
// its newest delivery (the first of AlertDeliveries), read in one snapshot:
// what the console's account page shows.
func (s *Store) AlertsWithLastDelivery(ctx context.Context, accountSID string) ([]AlertStatus, error) {
	var out []AlertStatus
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		as, err := collectAlerts(tx.Query(ctx, `SELECT `+alertColumns+` FROM alerts WHERE account_sid = $1
			ORDER BY created_at, alert_sid`, accountSID))
		if err != nil {
			return fmt.Errorf("alerts: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT DISTINCT ON (alert_sid) `+deliveryColumns+` FROM alert_deliveries
			WHERE account_sid = $1 ORDER BY alert_sid, created_at DESC, id`, accountSID)
		if err != nil {
			return fmt.Errorf("last deliveries: %w", err)
		}
		last, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AlertDelivery, error) { return scanDelivery(r) })
		if err != nil {
			return fmt.Errorf("last deliveries: %w", err)
		}
		byAlert := make(map[string]*AlertDelivery, len(last))
		for i := range last {
			byAlert[last[i].AlertSID] = &last[i]
		}
		out = make([]AlertStatus, len(as))
		for i, a := range as {
			out[i] = AlertStatus{Alert: a, Last: byAlert[a.SID]}
		}
		return nil
	})
	if err != nil {
		return nil, translate(fmt.Errorf("alerts with their last delivery of %s: %w", accountSID, err))
	}
	return out, nil
}

// UnfiredAlerts lists the alerts that have not fired in month m, of every
// account: those the evaluator must look at. An alert that fired this
// month costs nothing more until the next one.
func (s *Store) UnfiredAlerts(ctx context.Context, m usage.Month) ([]Alert, error) {
	as, err := collectAlerts(s.pool.Query(ctx, `SELECT `+alertColumns+` FROM alerts a
		WHERE NOT EXISTS (SELECT 1 FROM alert_firings f
		                  WHERE f.account_sid = a.account_sid AND f.alert_sid = a.alert_sid AND f.month = $1)
		ORDER BY account_sid, created_at, alert_sid`, m.Start()))
	if err != nil {
		return nil, translate(fmt.Errorf("unfired alerts of %s: %w", m, err))
	}
	return as, nil
}

// UnfiredAccountAlerts is UnfiredAlerts for one account.
func (s *Store) UnfiredAccountAlerts(ctx context.Context, accountSID string, m usage.Month) ([]Alert, error) {
	as, err := collectAlerts(s.pool.Query(ctx, `SELECT `+alertColumns+` FROM alerts a
		WHERE account_sid = $1 AND NOT EXISTS (SELECT 1 FROM alert_firings f
		                  WHERE f.account_sid = $1 AND f.alert_sid = a.alert_sid AND f.month = $2)
		ORDER BY created_at, alert_sid`, accountSID, m.Start()))
	if err != nil {
		return nil, translate(fmt.Errorf("unfired alerts of %s %s: %w", accountSID, m, err))
	}
	return as, nil
}

// UnfiredAlertsOf is UnfiredAlerts for some accounts: those whose figures
// a fold has just changed, which is what the evaluator compares between
// its passes over every alert.
func (s *Store) UnfiredAlertsOf(ctx context.Context, accounts []string, m usage.Month) ([]Alert, error) {
	as, err := collectAlerts(s.pool.Query(ctx, `SELECT `+alertColumns+` FROM alerts a
		WHERE account_sid = ANY($1) AND NOT EXISTS (SELECT 1 FROM alert_firings f
		                  WHERE f.account_sid = a.account_sid AND f.alert_sid = a.alert_sid AND f.month = $2)
		ORDER BY account_sid, created_at, alert_sid`, accounts, m.Start()))
	if err != nil {
		return nil, translate(fmt.Errorf("unfired alerts of %d accounts in %s: %w", len(accounts), m, err))
	}
	return as, nil
}

// AlertFigures is what an alert compares with its threshold: an account's
// active users in a month as its report counts them, and the rate card its
// report prices them with (nil without one).
type AlertFigures struct {
	ActiveUsers int64
	RateCard    []byte
}

// MonthAlertFigures returns the figures of month m of each of the accounts,
// folding their pending events first. They are the report's: its latest
// stored version's when the month has one, else the rollup's count of the
// month's users (the provisional report's active_users, a sum of the same
// rows) and the account's rate card, read in one snapshot. Unlike the
// whole report (MonthReports) this reads no roster and computes no
// checksum, which the evaluator, running every few seconds, does not need.
func (s *Store) MonthAlertFigures(ctx context.Context, accounts []string, m usage.Month) (map[string]AlertFigures, error) {
	for _, a := range accounts {
		if err := s.fold(ctx, a); err != nil {
			return nil, err
		}
	}
	out := make(map[string]AlertFigures, len(accounts))
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		clear(out)
		final := map[string]bool{}
		var account string
		var f AlertFigures
		rows, err := tx.Query(ctx, `SELECT DISTINCT ON (account_sid) account_sid, active_users, rate_card FROM report_versions
			WHERE month = $1 AND account_sid = ANY($2) ORDER BY account_sid, version DESC`, m.Start(), accounts)
		if err != nil {
			return fmt.Errorf("versions: %w", err)
		}
		if _, err := pgx.ForEachRow(rows, []any{&account, &f.ActiveUsers, &f.RateCard}, func() error {
			out[account], final[account] = AlertFigures{ActiveUsers: f.ActiveUsers, RateCard: clone(f.RateCard)}, true
			return nil
		}); err != nil {
			return fmt.Errorf("versions: %w", err)
		}
		var n int64
		rows, err = tx.Query(ctx, `SELECT account_sid, count(*) FROM month_users
			WHERE month = $1 AND account_sid = ANY($2) GROUP BY account_sid`, m.Start(), accounts)
		if err != nil {
			return fmt.Errorf("active users: %w", err)
		}
		if _, err := pgx.ForEachRow(rows, []any{&account, &n}, func() error {
			if !final[account] {
				out[account] = AlertFigures{ActiveUsers: n}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("active users: %w", err)
		}
		var card []byte
		rows, err = tx.Query(ctx, `SELECT account_sid, card FROM rate_cards WHERE account_sid = ANY($1)`, accounts)
		if err != nil {
			return fmt.Errorf("rate cards: %w", err)
		}
		if _, err := pgx.ForEachRow(rows, []any{&account, &card}, func() error {
			if !final[account] {
				f := out[account]
				f.RateCard = clone(card)
				out[account] = f
			}
			return nil
		}); err != nil {
			return fmt.Errorf("rate cards: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, translate(fmt.Errorf("alert figures of %s: %w", m, err))
	}
	return out, nil
}

// Firing is an alert reaching its threshold in a month, with the webhook
// that says so.
type Firing struct {
	AccountSID string
	AlertSID   string
	Month      usage.Month
	Value      decimal.Decimal
	ReachedAt  time.Time
	// DeliveryID and Body are the webhook's: the body is sent as it is on
	// every attempt.
	DeliveryID string
	Body       []byte
}

// FireAlert records that an alert reached its threshold in a month and
// queues its webhook, in one transaction, and reports whether it did: false
// when the alert already fired that month or was deleted meanwhile.
func (s *Store) FireAlert(ctx context.Context, f Firing) (bool, error) {
	fired := false
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO alert_firings (account_sid, alert_sid, month, value, reached_at)
			SELECT account_sid, alert_sid, $3, $4::numeric, $5 FROM alerts WHERE account_sid = $1 AND alert_sid = $2
			ON CONFLICT DO NOTHING`, f.AccountSID, f.AlertSID, f.Month.Start(), asGiven(f.Value), f.ReachedAt)
		if err != nil {
			return fmt.Errorf("firing: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `INSERT INTO alert_deliveries (account_sid, id, alert_sid, month, body, status, created_at, next_attempt_at)
			VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6)`,
			f.AccountSID, f.DeliveryID, f.AlertSID, f.Month.Start(), string(f.Body), f.ReachedAt); err != nil {
			return fmt.Errorf("delivery: %w", err)
		}
		fired = true
		return nil
	})
	if err != nil {
		return false, translate(fmt.Errorf("fire alert %s for %s: %w", f.AlertSID, f.Month, err))
	}
	return fired, nil
}

// DueDeliveryAccounts lists up to limit accounts with deliveries due at
// now. It locks nothing: ClaimDeliveries decides who sends what.
func (s *Store) DueDeliveryAccounts(ctx context.Context, now time.Time, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT account_sid FROM alert_deliveries
		WHERE status = 'pending' AND next_attempt_at <= $1 GROUP BY account_sid ORDER BY min(next_attempt_at) LIMIT $2`, now, limit)
	if err != nil {
		return nil, translate(fmt.Errorf("accounts with due deliveries: %w", err))
	}
	as, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, translate(fmt.Errorf("accounts with due deliveries: %w", err))
	}
	return as, nil
}

// ClaimedDelivery is a delivery a worker may send now, as attempt Attempts.
type ClaimedDelivery struct {
	AlertDelivery
	Body       []byte
	WebhookURL string
	Sealed     []byte // the alert's signing secret, sealed
}

// ClaimDeliveries claims up to limit deliveries of an account due at now:
// each claimed row counts one more attempt and is not due again before
// now+lease, so no other worker sends it meanwhile; rows another worker is
// claiming are skipped, not waited for (FOR UPDATE SKIP LOCKED). A worker
// that dies before recording the outcome leaves the delivery due again
// after the lease.
func (s *Store) ClaimDeliveries(ctx context.Context, accountSID string, now time.Time, lease time.Duration, limit int) ([]ClaimedDelivery, error) {
	var out []ClaimedDelivery
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id FROM alert_deliveries
			WHERE account_sid = $1 AND status = 'pending' AND next_attempt_at <= $2
			ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED`, accountSID, now, limit)
		if err != nil {
			return fmt.Errorf("due: %w", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(ids) == 0 {
			return err
		}
		rows, err = tx.Query(ctx, `UPDATE alert_deliveries d SET attempts = attempts + 1, next_attempt_at = $3
			WHERE account_sid = $1 AND id = ANY($2)
			RETURNING `+deliveryColumns+`, body`, accountSID, ids, now.Add(lease))
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ClaimedDelivery, error) {
			var c ClaimedDelivery
			var month time.Time
			var body string
			err := r.Scan(&c.ID, &c.AccountSID, &c.AlertSID, &month, &c.Status, &c.Attempts, &c.CreatedAt, &c.NextAttemptAt,
				&c.LastStatusCode, &c.LastError, &c.DeliveredAt, &body)
			c.Month, c.Body, c.CreatedAt = usage.MonthOf(month), []byte(body), c.CreatedAt.UTC()
			return c, err
		})
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		sealed := map[string][2]any{}
		rows, err = tx.Query(ctx, `SELECT alert_sid, webhook_url, secret_sealed FROM alerts WHERE account_sid = $1 AND alert_sid = ANY($2)`,
			accountSID, alertSIDs(out))
		if err != nil {
			return fmt.Errorf("alerts: %w", err)
		}
		var sid, url string
		var secret []byte
		if _, err := pgx.ForEachRow(rows, []any{&sid, &url, &secret}, func() error {
			sealed[sid] = [2]any{url, append([]byte(nil), secret...)}
			return nil
		}); err != nil {
			return fmt.Errorf("alerts: %w", err)
		}
		for i := range out {
			a, ok := sealed[out[i].AlertSID]
			if !ok {
				return fmt.Errorf("delivery %s: alert %s: %w", out[i].ID, out[i].AlertSID, usage.ErrNotFound)
			}
			out[i].WebhookURL, out[i].Sealed = a[0].(string), a[1].([]byte)
		}
		return nil
	})
	if err != nil {
		return nil, translate(fmt.Errorf("claim deliveries of %s: %w", accountSID, err))
	}
	return out, nil
}

// asGiven renders d with the decimals it carries ("2.00" stays "2.00").
func asGiven(d decimal.Decimal) string { return d.StringFixed(max(-d.Exponent(), 0)) }

// clone copies a scanned byte slice (pgx reuses its buffer), keeping nil.
func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

func alertSIDs(ds []ClaimedDelivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.AlertSID
	}
	return out
}

// AttemptOutcome is what an attempt to send a delivery came to.
type AttemptOutcome struct {
	Status      string     // pending (to retry), delivered or failed
	StatusCode  *int       // the receiver's answer, nil without one
	Error       string     // why the attempt failed, "" when delivered
	NextAttempt *time.Time // when pending
	At          time.Time  // when the attempt ended
}

// RecordAttempt records the outcome of attempt number attempt of a
// delivery, and reports whether it did: false when the delivery is no
// longer at that attempt (its lease ran out and another worker claimed
// it), or is gone.
func (s *Store) RecordAttempt(ctx context.Context, accountSID, id string, attempt int, o AttemptOutcome) (bool, error) {
	var delivered *time.Time
	var lastErr *string
	if o.Status == DeliveryDelivered {
		delivered = &o.At
	}
	if o.Error != "" {
		lastErr = &o.Error
	}
	tag, err := s.pool.Exec(ctx, `UPDATE alert_deliveries SET status = $4, last_status_code = $5, last_error = $6,
		next_attempt_at = $7, delivered_at = $8
		WHERE account_sid = $1 AND id = $2 AND attempts = $3 AND status = 'pending'`,
		accountSID, id, attempt, o.Status, o.StatusCode, lastErr, o.NextAttempt, delivered)
	if err != nil {
		return false, translate(fmt.Errorf("record attempt %d of %s: %w", attempt, id, err))
	}
	return tag.RowsAffected() == 1, nil
}

// OutboxDepth counts the deliveries still pending, of every account.
func (s *Store) OutboxDepth(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM alert_deliveries WHERE status = 'pending'`).Scan(&n); err != nil {
		return 0, translate(fmt.Errorf("outbox depth: %w", err))
	}
	return n, nil
}

// RewrapAlertSecrets re-seals every stored alert signing secret with rewrap
// (under a new master key), in one transaction, and returns how many it
// rewrapped. The context of an alert's secret is its SID.
func (s *Store) RewrapAlertSecrets(ctx context.Context, rewrap func(alertSID string, sealed []byte) ([]byte, error)) (int, error) {
	n := 0
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `SELECT account_sid, alert_sid, secret_sealed FROM alerts ORDER BY account_sid, alert_sid`)
		type row struct {
			Account, SID string
			Sealed       []byte
		}
		all, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
		if err != nil {
			return fmt.Errorf("read alert secrets: %w", err)
		}
		for _, r := range all {
			sealed, err := rewrap(r.SID, r.Sealed)
			if err != nil {
				return fmt.Errorf("rewrap %s: %w", r.SID, err)
			}
			tag, err := tx.Exec(ctx, `UPDATE alerts SET secret_sealed = $3 WHERE account_sid = $1 AND alert_sid = $2 AND secret_sealed = $4`,
				r.Account, r.SID, sealed, r.Sealed)
			if err != nil {
				return fmt.Errorf("store %s: %w", r.SID, err)
			}
			if tag.RowsAffected() == 1 {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, translate(err)
	}
	return n, nil
}
