package alerts

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tallyhq/tally/internal/postgres"
)

// Metrics are the Prometheus series of alerts, one set per process, shared
// by its Evaluator, its Worker and the API (which fires an alert created
// past its threshold). It is a prometheus.Collector: register it on the
// registry /metrics serves. A nil *Metrics records nothing.
type Metrics struct {
	store      *postgres.Store
	firedTotal prometheus.Counter
	deliveries *prometheus.CounterVec
	attempt    prometheus.Histogram
	latency    prometheus.Histogram
}

var outboxDepth = prometheus.NewDesc("tally_alert_outbox_pending",
	"Webhook deliveries pending in the outbox (every replica's), read from the database at scrape time.", nil, nil)

// NewMetrics returns the series; the outbox depth is read from store at
// each scrape.
func NewMetrics(store *postgres.Store) *Metrics {
	m := &Metrics{
		store: store,
		firedTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tally_alerts_fired_total", Help: "Alerts that reached their threshold (one per alert and month).",
		}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_alert_delivery_attempts_total",
			Help: "Webhook delivery attempts by outcome: delivered, retry (failed, tried again later) or failed (given up).",
		}, []string{"outcome"}),
		attempt: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tally_alert_delivery_attempt_seconds", Help: "Duration of one webhook delivery attempt.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tally_alert_delivery_latency_seconds", Help: "From an alert's firing to its webhook's delivery.",
			Buckets: []float64{.1, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 6 * 3600, 24 * 3600},
		}),
	}
	for _, o := range []string{"delivered", "retry", "failed"} {
		m.deliveries.WithLabelValues(o)
	}
	return m
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.firedTotal.Describe(ch)
	m.deliveries.Describe(ch)
	m.attempt.Describe(ch)
	m.latency.Describe(ch)
	ch <- outboxDepth
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.firedTotal.Collect(ch)
	m.deliveries.Collect(ch)
	m.attempt.Collect(ch)
	m.latency.Collect(ch)
	if m.store == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if n, err := m.store.OutboxDepth(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(outboxDepth, prometheus.GaugeValue, float64(n))
	}
}

func (m *Metrics) fired() {
	if m != nil {
		m.firedTotal.Inc()
	}
}

func (m *Metrics) attempted(outcome string, took time.Duration) {
	if m != nil {
		m.deliveries.WithLabelValues(outcome).Inc()
		m.attempt.Observe(took.Seconds())
	}
}

func (m *Metrics) delivered(since time.Duration) {
	if m != nil {
		m.latency.Observe(max(since, 0).Seconds())
	}
}
