package httpapi_test

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/alerts"
	"github.com/tallyhq/tally/internal/httpapi"
	"github.com/tallyhq/tally/internal/usage"
)

// exposition is a /metrics page read back: each family's TYPE, and each
// sample line ("name{labels}") with its value.
type exposition struct {
	types   map[string]string
	samples map[string]float64
}

func readExposition(t *testing.T, body []byte) exposition {
	t.Helper()
	x := exposition{types: map[string]string{}, samples: map[string]float64{}}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			x.types[name] = typ
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		x.samples[line[:i]] = v
	}
	return x
}

// series returns the samples of family name (its _bucket, _sum and _count
// too for a histogram) by their label set.
func (x exposition) series(name string) map[string]float64 {
	out := map[string]float64{}
	for s, v := range x.samples {
		base, _, _ := strings.Cut(s, "{")
		if base == name || strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(base, "_bucket"), "_sum"), "_count") == name {
			out[s] = v
		}
	}
	return out
}

// TestAlertMetricsAfterDeliveries: after webhooks are fired and sent, one
// answered 500 then 204 (a retry, then delivered) and one always 500 past
// the retry window (a retry, then failed), every alert series of
// docs/alerts.md is on /metrics with its type, its labels and the counts
// those attempts make: fired 2; attempts by outcome retry 2, delivered 1,
// failed 1 and no other label; the attempt duration (no label) counted 4
// times, the latency from firing to delivery once; the outbox empty.
func TestAlertMetricsAfterDeliveries(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	calls := map[string]int{}
	recv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.URL.Path]++
		n := calls[r.URL.Path]
		mu.Unlock()
		if r.URL.Path == "/ok" && n > 1 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer recv.Close()
	metrics := alerts.NewMetrics(e.store)
	srv := e.newServerWith(httpapi.Config{Alerts: httpapi.AlertsConfig{AllowPrivate: true, Metrics: metrics}})
	admin := e.keys[e.acme][usage.RoleAdmin]
	r := e.do(srv, e.keys[e.acme][usage.RoleIngest], "POST", "/v1/accounts/"+e.acme+"/events", "application/json", strings.NewReader(batch(
		eventJSON("m1", "alice", "2026-11-23T11:00:00Z"))))
	if r.status != 200 {
		t.Fatalf("events: %d %s", r.status, r.body)
	}
	for _, path := range []string{"/ok", "/bad"} {
		// Created past its threshold: fires at once, through the API's metrics.
		r = e.do(srv, admin, "POST", "/v1/accounts/"+e.acme+"/alerts", "application/json",
			strings.NewReader(`{"metric":"active_users","threshold":1,"webhook_url":"`+recv.URL+path+`"}`))
		if r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
	}
	scrape := func() exposition {
		r := e.do(srv, cred{}, "GET", "/metrics", "", nil)
		if r.status != 200 {
			t.Fatalf("/metrics: %d", r.status)
		}
		return readExposition(t, r.body)
	}
	if got := scrape().samples["tally_alert_outbox_pending"]; got != 2 {
		t.Errorf("tally_alert_outbox_pending before sending = %v, want 2", got)
	}

	w := &alerts.Worker{Store: e.store, Box: e.box, Now: func() time.Time { return e.now }, AllowPrivate: true, Metrics: metrics,
		RootCAs: recv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, Timeout: 2 * time.Second, RetryFor: 30 * time.Second}
	if n, err := w.RunOnce(t.Context()); err != nil || n != 2 {
		t.Fatalf("first RunOnce: %d, %v", n, err)
	}
	e.now = e.now.Add(time.Minute) // past every retry's wait, and past /bad's window
	if n, err := w.RunOnce(t.Context()); err != nil || n != 2 {
		t.Fatalf("second RunOnce: %d, %v", n, err)
	}

	x := scrape()
	wantTypes := map[string]string{
		"tally_alerts_fired_total":             "counter",
		"tally_alert_delivery_attempts_total":  "counter",
		"tally_alert_delivery_attempt_seconds": "histogram",
		"tally_alert_delivery_latency_seconds": "histogram",
		"tally_alert_outbox_pending":           "gauge",
	}
	for name, typ := range wantTypes {
		if x.types[name] != typ {
			t.Errorf("%s: TYPE %q, want %q", name, x.types[name], typ)
		}
	}
	want := map[string]map[string]float64{
		"tally_alerts_fired_total": {"tally_alerts_fired_total": 2},
		"tally_alert_delivery_attempts_total": {
			`tally_alert_delivery_attempts_total{outcome="delivered"}`: 1,
			`tally_alert_delivery_attempts_total{outcome="retry"}`:     2,
			`tally_alert_delivery_attempts_total{outcome="failed"}`:    1,
		},
		"tally_alert_outbox_pending": {"tally_alert_outbox_pending": 0},
	}
	for name, series := range want {
		got := x.series(name)
		if len(got) != len(series) {
			t.Errorf("%s: series %v, want %v", name, got, series)
		}
		for s, v := range series {
			if g, ok := got[s]; !ok || g != v {
				t.Errorf("%s = %v (present %v), want %v", s, g, ok, v)
			}
		}
	}
	for name, count := range map[string]float64{"tally_alert_delivery_attempt_seconds": 4, "tally_alert_delivery_latency_seconds": 1} {
		got := x.series(name)
		if got[name+"_count"] != count {
			t.Errorf("%s_count = %v, want %v", name, got[name+"_count"], count)
		}
		if _, ok := got[name+"_sum"]; !ok {
			t.Errorf("%s has no _sum", name)
		}
		if got[name+`_bucket{le="+Inf"}`] != count {
			t.Errorf(`%s_bucket{le="+Inf"} = %v, want %v`, name, got[name+`_bucket{le="+Inf"}`], count)
		}
		for s := range got {
			// No label but the buckets' le: one series per process.
			if labels, ok := strings.CutPrefix(s, name+"_bucket{"); ok {
				if !strings.HasPrefix(labels, `le="`) || strings.Contains(labels, ",") {
					t.Errorf("%s: labels beyond le", s)
				}
			} else if strings.Contains(s, "{") {
				t.Errorf("%s: labelled", s)
			}
		}
	}
	if t.Failed() {
		for s, v := range x.samples {
			if strings.Contains(s, "alert") {
				t.Logf("%s %v", s, v)
			}
		}
	}
}
