package alerts

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// DefaultEvaluateEvery is how often the Evaluator compares every alert
// with the month's figures, besides the accounts a fold has just changed
// (Changed): an event acknowledged now is folded within the fold interval
// (1 s) and compared right after, well within the 60 s the contract allows.
const DefaultEvaluateEvery = 10 * time.Second

// MaxEvaluateEvery bounds the pass over every alert, whatever the interval
// asked for (CONTRACT §14: at least every 30 s). That pass is the safety
// net for the folds this process does not hear of: another replica's, and
// those a read does of its own account first.
const MaxEvaluateEvery = 30 * time.Second

// DefaultSettle is how long the Evaluator waits after an account is marked
// changed before it compares: the other parts and accounts of the same fold
// round join that one evaluation, rather than each making its own, and the
// evaluation's own fold of those accounts finds little left to race the
// background fold for.
const DefaultSettle = 200 * time.Millisecond

// Evaluator fires the alerts whose threshold the current UTC month has
// reached. Replicas may evaluate at the same time: an alert fires once per
// month whoever sees it first (the firing's key).
type Evaluator struct {
	Store   *postgres.Store
	Now     func() time.Time // the clock; time.Now when nil
	Metrics *Metrics         // may be nil
	Log     *slog.Logger     // may be nil
	// Settle is the wait between a change and its evaluation; DefaultSettle
	// when zero.
	Settle time.Duration

	mu    sync.Mutex
	dirty map[string]struct{} // accounts folded since Run last looked
	wake  chan struct{}       // one pending signal: Changed never blocks
}

func (e *Evaluator) now() time.Time {
	if e.Now == nil {
		return time.Now().UTC()
	}
	return e.Now().UTC()
}

// signal returns the channel Changed signals Run on.
func (e *Evaluator) signal() chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.wake == nil {
		e.wake = make(chan struct{}, 1)
	}
	return e.wake
}

// Changed marks an account whose figures a fold has just changed, for Run
// to compare its alerts soon. It is postgres.Store.FoldInBackground's
// onFolded: it runs on the fold's goroutines, so it only records the
// account and never waits for an evaluation. Marks coalesce: an account
// marked many times before Run looks is evaluated once.
func (e *Evaluator) Changed(accountSID string) {
	wake := e.signal()
	e.mu.Lock()
	if e.dirty == nil {
		e.dirty = map[string]struct{}{}
	}
	e.dirty[accountSID] = struct{}{}
	e.mu.Unlock()
	select {
	case wake <- struct{}{}:
	default: // a signal is already pending; Run takes every mark at once
	}
}

// takeDirty returns the accounts marked since the last call and forgets them.
func (e *Evaluator) takeDirty() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	accounts := make([]string, 0, len(e.dirty))
	for a := range e.dirty {
		accounts = append(accounts, a)
	}
	clear(e.dirty)
	slices.Sort(accounts)
	return accounts
}

// Run evaluates, until ctx ends, the accounts marked by Changed soon after
// they are marked, and every alert every interval (at most
// MaxEvaluateEvery).
func (e *Evaluator) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(min(cmp.Or(every, DefaultEvaluateEvery), MaxEvaluateEvery))
	defer t.Stop()
	wake := e.signal()
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// The whole pass covers the marked accounts too.
			e.takeDirty()
			_, err = e.Evaluate(ctx)
		case <-wake:
			select {
			case <-ctx.Done():
				return
			case <-time.After(cmp.Or(e.Settle, DefaultSettle)):
			}
			_, err = e.EvaluateAccounts(ctx, e.takeDirty())
		}
		if err != nil && ctx.Err() == nil && e.Log != nil {
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

// EvaluateAccounts is Evaluate for some accounts: those a fold changed.
func (e *Evaluator) EvaluateAccounts(ctx context.Context, accounts []string) (int, error) {
	if len(accounts) == 0 {
		return 0, nil
	}
	m := usage.MonthOf(e.now())
	as, err := e.Store.UnfiredAlertsOf(ctx, accounts, m)
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
