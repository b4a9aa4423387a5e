package httpapi

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// metrics are the Prometheus series of one API instance, on a registry of
// its own (no global state: tests build many instances). Labels never carry
// identities, keys or tokens.
type metrics struct {
	registry  *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	events    *prometheus.CounterVec
	tokens    *prometheus.CounterVec
	verifies  *prometheus.CounterVec
	reportRun *prometheus.CounterVec
	reportDur prometheus.Histogram
}

func newMetrics(store *postgres.Store) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tally_http_request_duration_seconds", Help: "HTTP request latency by route and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method", "status"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_events_total", Help: "Events posted, by result: accepted, duplicate, late (accepted for a finalized month).",
		}, []string{"result"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_tokens_minted_total", Help: "Access tokens minted.",
		}, []string{}),
		verifies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_tokens_verified_total", Help: "Access token verifications by outcome (valid or the refusal reason).",
		}, []string{"outcome"}),
		reportRun: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_report_runs_total", Help: "Monthly report job runs by outcome.",
		}, []string{"outcome"}),
		reportDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tally_report_run_duration_seconds", Help: "Duration of monthly report job runs.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 12),
		}),
	}
	// Series that exist from the start, at zero, so dashboards and alerts
	// see them before the first event.
	for _, r := range []string{"accepted", "duplicate", "late"} {
		m.events.WithLabelValues(r)
	}
	m.tokens.WithLabelValues()
	m.verifies.WithLabelValues("valid")
	m.registry.MustRegister(m.requests, m.latency, m.events, m.tokens, m.verifies, m.reportRun, m.reportDur,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if store != nil {
		m.registry.MustRegister(poolCollector{store.Pool()}, backlogCollector{store})
	}
	return m
}

func (m *metrics) recorded(res usage.IngestResult) {
	m.events.WithLabelValues("accepted").Add(float64(res.Accepted))
	m.events.WithLabelValues("duplicate").Add(float64(res.Duplicates))
	m.events.WithLabelValues("late").Add(float64(res.Late))
}

func (m *metrics) observe(c echo.Context, elapsed time.Duration) {
	route := c.Path()
	if route == "" {
		route = "unmatched"
	}
	status := strconv.Itoa(c.Response().Status)
	m.requests.WithLabelValues(route, c.Request().Method, status).Inc()
	m.latency.WithLabelValues(route, c.Request().Method, status).Observe(elapsed.Seconds())
}

func (m *metrics) handler() echo.HandlerFunc {
	return echo.WrapHandler(promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
}

// poolCollector reports the database pool's gauges at scrape time.
type poolCollector struct{ pool *pgxpool.Pool }

var (
	poolAcquired = prometheus.NewDesc("tally_db_pool_acquired_connections", "Connections in use.", nil, nil)
	poolIdle     = prometheus.NewDesc("tally_db_pool_idle_connections", "Idle connections.", nil, nil)
	poolTotal    = prometheus.NewDesc("tally_db_pool_connections", "Open connections.", nil, nil)
	poolMax      = prometheus.NewDesc("tally_db_pool_max_connections", "The pool's bound.", nil, nil)
	poolWaits    = prometheus.NewDesc("tally_db_pool_empty_acquires_total", "Acquires that had to wait for a connection.", nil, nil)
)

func (poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolAcquired
	ch <- poolIdle
	ch <- poolTotal
	ch <- poolMax
	ch <- poolWaits
}

func (p poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := p.pool.Stat()
	ch <- prometheus.MustNewConstMetric(poolAcquired, prometheus.GaugeValue, float64(s.AcquiredConns()))
	ch <- prometheus.MustNewConstMetric(poolIdle, prometheus.GaugeValue, float64(s.IdleConns()))
	ch <- prometheus.MustNewConstMetric(poolTotal, prometheus.GaugeValue, float64(s.TotalConns()))
	ch <- prometheus.MustNewConstMetric(poolMax, prometheus.GaugeValue, float64(s.MaxConns()))
	ch <- prometheus.MustNewConstMetric(poolWaits, prometheus.CounterValue, float64(s.EmptyAcquireCount()))
}

// backlogCollector reports the events accepted but not yet folded into the
// rollup, read from the database at scrape time: what reads merge in, and
// what a fold that does not keep up leaves to grow.
type backlogCollector struct{ store *postgres.Store }

var (
	backlogEvents = prometheus.NewDesc("tally_rollup_pending_events",
		"Accepted events of every account not yet folded into the rollup.", nil, nil)
	backlogAge = prometheus.NewDesc("tally_rollup_pending_oldest_seconds",
		"How long ago the oldest event not yet folded was received (0 with none).", nil, nil)
)

func (backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- backlogEvents
	ch <- backlogAge
}

func (b backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, age, err := b.store.Backlog(ctx)
	if err != nil {
		return // a scrape without the series says the database did not answer
	}
	ch <- prometheus.MustNewConstMetric(backlogEvents, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(backlogAge, prometheus.GaugeValue, age.Seconds())
}
