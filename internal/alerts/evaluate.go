package alerts

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// DefaultEvaluateEvery is how often the Evaluator compares the alerts with
// the month's figures: an event acknowledged now is folded within the fold
// interval (1 s) and seen by the next evaluation, well within the 60 s the
// contract allows.
const DefaultEvaluateEvery = 10 * time.Second

// Evaluator fires the alerts whose threshold the current UTC month has
// reached. Replicas may evaluate at the same time: an alert fires once per
// month whoever sees it first (the firing's key).
type Evaluator struct {
	Store   *postgres.Store
	Now     func() time.Time // the clock; time.Now when nil
	Metrics *Metrics         // may be nil
	Log     *slog.Logger     // may be nil
}

func (e *Evaluator) now() time.Time {
	if e.Now == nil {
		return time.Now().UTC()
	}
	return e.Now().UTC()
}

// Run evaluates every interval until ctx ends.
func (e *Evaluator) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(cmp.Or(every, DefaultEvaluateEvery))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := e.Evaluate(ctx); err != nil && ctx.Err() == nil && e.Log != nil {
			e.Log.ErrorContext(ctx, "evaluate alerts", "err", err)
		}
	}
}

// Evaluate compares every alert that has not fired this month with its
// account's figures and fires those reached; it returns how many fired.
func (e *Evaluator) Evaluate(ctx context.Context) (int, error) {
	m := usage.MonthOf(e.now())
	as, err := e.Store.UnfiredAlerts(ctx, m)
	if err != nil {
		return 0, err
	}
	return e.evaluate(ctx, m, as)
}

// EvaluateAccount is Evaluate for one account: for an alert just created,
// which fires at once when the month is already past its threshold.
func (e *Evaluator) EvaluateAccount(ctx context.Context, accountSID string) (int, error) {
	m := usage.MonthOf(e.now())
	as, err := e.Store.UnfiredAccountAlerts(ctx, accountSID, m)
	if err != nil {
		return 0, err
	}
	return e.evaluate(ctx, m, as)
}

func (e *Evaluator) evaluate(ctx context.Context, m usage.Month, as []postgres.Alert) (int, error) {
	if len(as) == 0 {
		return 0, nil
	}
	var accounts []string
	seen := map[string]bool{}
	for _, a := range as {
		if !seen[a.AccountSID] {
			seen[a.AccountSID] = true
			accounts = append(accounts, a.AccountSID)
		}
	}
	figures, err := e.Store.MonthAlertFigures(ctx, accounts, m)
	if err != nil {
		return 0, err
	}
	fired := 0
	var errs []error
	for _, a := range as {
		f := figures[a.AccountSID]
		v, ok, err := Value(a.Metric, f)
		if err != nil {
			errs = append(errs, fmt.Errorf("alert %s: %w", a.SID, err))
			continue
		}
		if !ok || v.LessThan(a.Threshold) {
			continue
		}
		did, err := e.fire(ctx, a, m, v, f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if did {
			fired++
		}
	}
	return fired, errors.Join(errs...)
}

// fire records the firing of a in month m at value v, with its webhook.
func (e *Evaluator) fire(ctx context.Context, a postgres.Alert, m usage.Month, v decimal.Decimal, f postgres.AlertFigures) (bool, error) {
	at := e.now().Truncate(time.Millisecond)
	value := JSONValue(a.Metric, v)
	if a.Metric == postgres.MetricAmount {
		value = amountValue(v, f.RateCard)
	}
	id := NewDeliveryID()
	body, err := json.Marshal(Body{ID: id, Type: EventType, AlertSID: a.SID, AccountSID: a.AccountSID, Month: m.String(),
		Metric: a.Metric, Threshold: JSONValue(a.Metric, a.Threshold), Value: value, ReachedAt: at})
	if err != nil {
		return false, fmt.Errorf("alert %s: body: %w", a.SID, err)
	}
	did, err := e.Store.FireAlert(ctx, postgres.Firing{AccountSID: a.AccountSID, AlertSID: a.SID, Month: m,
		Value: v, ReachedAt: at, DeliveryID: id, Body: body})
	if err != nil {
		return false, err
	}
	if did {
		e.Metrics.fired()
		if e.Log != nil {
			e.Log.InfoContext(ctx, "alert fired", "account_sid", a.AccountSID, "alert_sid", a.SID, "month", m.String(),
				"metric", a.Metric, "delivery", id)
		}
	}
	return did, nil
}
