package alerts_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tallyhq/tally/internal/alerts"
	"github.com/tallyhq/tally/internal/pgtest"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/secrets"
	"github.com/tallyhq/tally/internal/usage"
)

// BenchmarkIngestBesideAlerts measures ingestion into 100 accounts with no
// alert, then with 1 000 alerts spread over them, in one run:
//
//	go test -run '^$' -bench IngestBesideAlerts -benchtime 400x ./internal/alerts/
//
// Each op is a body of 100 events to one account (round robin), every
// user new, so that the figures keep moving. Beside ingestion, as in
// `tally serve`, the rollup is folded every second, the accounts each fold
// changed are evaluated right after it, every alert is evaluated every
// 500 ms too (20 times as often as in production), and the outbox is
// delivered to a local receiver: a tenth of the alerts reaches its
// threshold during the run and fires. `tally bench alerts` measures the
// same over HTTP against a `tally serve` process.
func BenchmarkIngestBesideAlerts(b *testing.B) {
	for _, n := range []int{0, 1000} {
		b.Run(fmt.Sprintf("alerts=%d", n), func(b *testing.B) { benchIngest(b, n) })
	}
}

func benchIngest(b *testing.B, nAlerts int) {
	const accounts, perBody = 100, 100
	pool, _ := pgtest.NewDB(b)
	store := postgres.New(pool, nil)
	box := newBox(b)
	recv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer recv.Close()
	var sids []string
	for i := range accounts {
		a, err := store.CreateAccount(b.Context(), fmt.Sprintf("A%d", i), false)
		if err != nil {
			b.Fatal(err)
		}
		sids = append(sids, a.SID)
	}
	for i := range nAlerts {
		// Thresholds from 10 to 100 000 users: those below the ~b.N users an
		// account reaches fire during the run.
		threshold := decimal.NewFromInt(int64(10 * (1 + i%10) * pow10(i/100%4)))
		a := postgres.Alert{AccountSID: sids[i%accounts], SID: alerts.NewAlertSID(), Metric: postgres.MetricActiveUsers,
			Threshold: threshold, WebhookURL: recv.URL + "/hook"}
		if _, err := store.CreateAlert(b.Context(), a, box.Seal("whsec_x", a.SID)); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(b.Context())
	var wg sync.WaitGroup
	eval := &alerts.Evaluator{Store: store}
	wg.Go(func() { store.FoldInBackground(ctx, time.Second, 2, eval.Changed, nil) })
	wg.Go(func() { eval.Run(ctx, 500*time.Millisecond) })
	worker := &alerts.Worker{Store: store, Box: box, AllowPrivate: true,
		RootCAs: recv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	wg.Go(func() { worker.Run(ctx, 200*time.Millisecond) })

	now := time.Now().UTC()
	b.ResetTimer()
	for i := range b.N {
		events := make([]usage.Event, perBody)
		for j := range events {
			events[j] = usage.Event{ID: fmt.Sprintf("e%d-%d", i, j), Activity: usage.Send, Source: usage.SDK, ServiceSID: "IS1",
				Identity: fmt.Sprintf("u%d-%d", i/accounts, j), OccurredAt: now}
		}
		if _, err := store.RecordEvents(b.Context(), sids[i%accounts], &usage.EventList{Events: events}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*perBody)/b.Elapsed().Seconds(), "events/s")
	cancel()
	wg.Wait()
	if nAlerts > 0 {
		// Once the last body is folded, every alert whose threshold was
		// reached has fired.
		if _, err := store.FoldRollup(b.Context(), ""); err != nil {
			b.Fatal(err)
		}
		if _, err := eval.Evaluate(b.Context()); err != nil {
			b.Fatal(err)
		}
		var fired int
		if err := pool.QueryRow(b.Context(), `SELECT count(*) FROM alert_firings`).Scan(&fired); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(fired), "fired")
	}
}

func newBox(tb testing.TB) *secrets.Box {
	box, err := secrets.NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		tb.Fatal(err)
	}
	return box
}

func pow10(n int) int {
	p := 1
	for range n {
		p *= 10
	}
	return p
}
