package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/internal/usage"
)

// benchRun keeps the ids of every run apart: the benchmark framework runs
// a function several times with growing b.N on the same database.
var benchRun atomic.Int64

// BenchmarkIngest measures the events per second that one client pushes
// through a local tally with BatchSize 1000, beside the same events posted
// by a hand-rolled net/http loop (batches of 1000, one request after the
// other), in the same run:
//
//	go test ./client -run '^$' -bench Ingest -benchtime 200000x
func BenchmarkIngest(b *testing.B) {
	tl := newTally(b)
	k := tl.keys[usage.RoleIngest]
	at := time.Date(2026, 10, 7, 8, 0, 0, 0, time.UTC)

	b.Run("client", func(b *testing.B) {
		run := benchRun.Add(1)
		c, err := client.New(client.Config{BaseURL: tl.srv.URL, KeySID: k.sid, Secret: k.secret, AccountSID: tl.account, BatchSize: 1000})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		b.ResetTimer()
		for i := range b.N {
			if err := c.Track(ctx, client.Event{ID: fmt.Sprintf("c%d-%d", run, i), Activity: "send", Source: "sdk",
				ServiceSID: "IS1", Identity: fmt.Sprintf("user-%d", i%10_000), OccurredAt: at}); err != nil {
				b.Fatal(err)
			}
		}
		if err := c.Close(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if st := c.Stats(); st.Accepted != int64(b.N) {
			b.Fatalf("Stats() = %+v, want %d accepted", st, b.N)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})

	b.Run("net/http", func(b *testing.B) {
		run := benchRun.Add(1)
		type event struct {
			ID         string `json:"id"`
			Activity   string `json:"activity"`
			Source     string `json:"source"`
			ServiceSID string `json:"service_sid"`
			Identity   string `json:"identity"`
			OccurredAt string `json:"occurred_at"`
		}
		hc := &http.Client{}
		url := tl.srv.URL + "/v1/accounts/" + tl.account + "/events"
		var accepted int64
		post := func(events []event) {
			body, err := json.Marshal(map[string][]event{"events": events})
			if err != nil {
				b.Fatal(err)
			}
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			req.SetBasicAuth(k.sid, k.secret)
			req.Header.Set("Content-Type", "application/json")
			resp, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			defer resp.Body.Close()
			var res struct{ Accepted int64 }
			if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.StatusCode != http.StatusOK {
				b.Fatalf("post: %d %v", resp.StatusCode, err)
			}
			io.Copy(io.Discard, resp.Body)
			accepted += res.Accepted
		}
		b.ResetTimer()
		events := make([]event, 0, 1000)
		for i := range b.N {
			events = append(events, event{fmt.Sprintf("h%d-%d", run, i), "send", "sdk", "IS1",
				fmt.Sprintf("user-%d", i%10_000), at.Format(time.RFC3339Nano)})
			if len(events) == cap(events) {
				post(events)
				events = events[:0]
			}
		}
		if len(events) > 0 {
			post(events)
		}
		b.StopTimer()
		hc.CloseIdleConnections()
		if accepted != int64(b.N) {
			b.Fatalf("%d accepted, want %d", accepted, b.N)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
