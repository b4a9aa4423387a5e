package bench

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tallyhq/tally/internal/alerts"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/secrets"
)

// InMonth returns the workload with every event moved into the current
// UTC month, at or before now: the month usage alerts compare, so that the
// figures the alerts watch move while the bench ingests.
func (w Workload) InMonth(now time.Time) Workload {
	now = now.UTC()
	start := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	span := now.Sub(start)
	out := Workload{Events: append(w.Events[:0:0], w.Events...)}
	for i := range out.Events {
		at := start
		if span > 0 {
			at = start.Add(time.Duration(out.Events[i].OccurredAt.UnixNano() % int64(span)))
		}
		out.Events[i].OccurredAt = at
	}
	return out
}

// UsersPerAccount is how many distinct identities each of accounts
// accounts receives when the workload is sent in bodies of batch events,
// round robin over them as Post sends: each account's active users once
// every body is folded.
func (w Workload) UsersPerAccount(batch, accounts int) []int {
	seen := make([]map[string]bool, accounts)
	for i := range seen {
		seen[i] = map[string]bool{}
	}
	for i, e := range w.Events {
		seen[(i/batch)%accounts][e.Identity] = true
	}
	out := make([]int, accounts)
	for i, s := range seen {
		out[i] = len(s)
	}
	return out
}

// Receiver is a local HTTPS webhook receiver that answers 204 and counts
// what it receives. CAFile holds its certificate: a server given
// SSL_CERT_FILE=CAFile (Go's system roots on Linux) trusts it, since tally
// has no setting of its own for a custom CA.
type Receiver struct {
	URL      string
	CAFile   string
	received atomic.Int64
	srv      *httptest.Server
}

// StartReceiver starts a Receiver, its certificate written under dir.
func StartReceiver(dir string) (*Receiver, error) {
	r := &Receiver{}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		r.received.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	r.srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	r.srv.StartTLS()
	r.URL = r.srv.URL
	r.CAFile = filepath.Join(dir, "receiver-ca.pem")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.srv.Close()
		return nil, err
	}
	cert := r.srv.Certificate()
	if err := os.WriteFile(r.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
		r.srv.Close()
		return nil, err
	}
	return r, nil
}

// Received is how many webhooks have arrived.
func (r *Receiver) Received() int64 { return r.received.Load() }

// Close stops the receiver.
func (r *Receiver) Close() { r.srv.Close() }

// ClearAlerts removes every alert with its firings and webhooks, so that
// a run's alerts fire again in the same month.
func (e *Env) ClearAlerts(ctx context.Context) error {
	_, err := e.Pool.Exec(ctx, `TRUNCATE alerts, alert_firings, alert_deliveries`)
	return err
}

// CreateAlerts creates n active_users alerts spread over accounts round
// robin, to webhookURL. Alert j of an account has the threshold
// ⌈users·(j+1)/k⌉ of that account's final users (k: its number of alerts),
// so that its alerts fire one after another while it ingests, the last as
// its last body is folded.
func (e *Env) CreateAlerts(ctx context.Context, box *secrets.Box, accounts []Account, users []int, n int, webhookURL string) error {
	store := postgres.New(e.Pool, nil)
	per := make([]int, len(accounts))
	for i := range n {
		per[i%len(accounts)]++
	}
	for i := range n {
		k := i % len(accounts)
		j := i / len(accounts)
		threshold := max(1, (users[k]*(j+1)+per[k]-1)/per[k])
		a := postgres.Alert{AccountSID: accounts[k].SID, SID: alerts.NewAlertSID(), Metric: postgres.MetricActiveUsers,
			Threshold: decimal.NewFromInt(int64(threshold)), WebhookURL: webhookURL + "/hook",
			FriendlyName: fmt.Sprintf("bench %d", j)}
		if _, err := store.CreateAlert(ctx, a, box.Seal(alerts.NewSigningSecret(), a.SID)); err != nil {
			return fmt.Errorf("alert %d: %w", i, err)
		}
	}
	return nil
}

// AlertCounts is how many alerts have fired and how many of their webhooks
// are delivered.
func (e *Env) AlertCounts(ctx context.Context) (fired, delivered int64, err error) {
	err = e.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM alert_firings),
		(SELECT count(*) FROM alert_deliveries WHERE status = 'delivered')`).Scan(&fired, &delivered)
	return fired, delivered, err
}
