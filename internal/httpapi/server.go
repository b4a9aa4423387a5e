// Package httpapi is tally's HTTP API: every route in one place, Basic auth
// with roles, handlers that decode, validate, call the store and respond, and
// one error handler that turns errors into RFC 9457 problem documents.
package httpapi

import (
	"cmp"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tallyhq/tally/internal/billing"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/secrets"
	"github.com/tallyhq/tally/internal/usage"
)

// Config is what the API is built from.
type Config struct {
	Store  *postgres.Store
	Box    *secrets.Box
	Logger *slog.Logger
	Now    func() time.Time
	// KeyTTL is how long a verified key is trusted before it is checked
	// again; it bounds how long a revoked key keeps working. Default 2s.
	KeyTTL time.Duration
	// Job runs the monthly report job for POST …/run; its clock and grace
	// period are the scheduler's.
	Job *billing.Job
	// IngestLimit and TokenLimit are per-key rates of the events and token
	// routes; zero values take the defaults.
	IngestLimit, TokenLimit Limit
	// Ready reports whether the database is reachable and migrated.
	Ready func(*http.Request) error
	// BodyIdle is the longest wait for the next bytes of a request body,
	// BodyTimeout the longest for a whole JSON body, StreamTimeout for a
	// whole NDJSON body; zero values take the defaults.
	BodyIdle, BodyTimeout, StreamTimeout time.Duration
	// StreamConns is how many NDJSON bodies may stream into PostgreSQL at
	// once, each holding a connection while its client sends: the rest of
	// the pool stays free for reads, JSON batches, tokens and health.
	// Default a quarter of the pool, at least 1.
	StreamConns int
	// Alerts configures the usage alerts (§14).
	Alerts AlertsConfig
}

// Server holds what handlers share.
type Server struct {
	store   *postgres.Store
	box     *secrets.Box
	log     *slog.Logger
	now     func() time.Time
	keys    *keyCache
	ready   func(*http.Request) error
	metrics *metrics
	job     *billing.Job
	ingest  *limiter
	tokens  *limiter
	authLog *postgres.Coalescer // the authenticate events of verifications, group-committed

	bodyIdle, bodyTimeout, streamTimeout time.Duration
	streams                              *streamSlots

	accounts sync.Map // account SIDs known to exist
	alerts   alertState
}

// New builds the echo instance that serves the whole API.
func New(cfg Config) *echo.Echo {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.KeyTTL <= 0 {
		cfg.KeyTTL = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	pool := cfg.Store.Pool()
	if cfg.StreamConns <= 0 {
		cfg.StreamConns = max(1, int(pool.Config().MaxConns)/4)
	}
	s := &Server{
		store: cfg.Store, box: cfg.Box, log: cfg.Logger, now: cfg.Now,
		bodyIdle:      cmp.Or(cfg.BodyIdle, DefaultBodyIdle),
		bodyTimeout:   cmp.Or(cfg.BodyTimeout, DefaultBodyTimeout),
		streamTimeout: cmp.Or(cfg.StreamTimeout, DefaultStreamTimeout),
		streams:       newStreamSlots(cfg.StreamConns),
		keys:          newKeyCache(cfg.Store, cfg.Box, cfg.KeyTTL),
		ready:         cfg.Ready,
		metrics:       newMetrics(cfg.Store),
		job:           cfg.Job,
		ingest:        newLimiter(orDefault(cfg.IngestLimit, DefaultIngestLimit)),
		tokens:        newLimiter(orDefault(cfg.TokenLimit, DefaultTokenLimit)),
	}
	// One flush in flight per account (the verifications that arrive
	// meanwhile gather into its next group), at most four in all.
	s.authLog = postgres.NewCoalescer(cfg.Store, 4)
	s.authLog.Observe = s.metrics.recorded
	s.setupAlerts(cfg.Alerts)
	if s.job == nil {
		s.job = &billing.Job{Store: cfg.Store, Now: cfg.Now}
	}
	if s.job.Observe == nil {
		s.job.Observe = func(outcome string, d time.Duration) {
			s.metrics.reportRun.WithLabelValues(outcome).Inc()
			s.metrics.reportDur.Observe(d.Seconds())
		}
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	s.routes(e)
	return e
}

// routes declares every route of the API. Authentication is middleware of
// each /v1 route rather than of a group: a group's middleware makes echo
// route every path under it, and a wrong method on an existing path would
// then be 404 instead of 405 with Allow.
func (s *Server) routes(e *echo.Echo) {
	e.Use(s.requestLog, s.bodyDeadlines)

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", s.metrics.handler())
	e.GET("/openapi.yaml", s.openapi)
	e.GET("/docs", s.docs)

	v1 := func(method, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) {
		e.Add(method, "/v1"+path, h, append([]echo.MiddlewareFunc{s.authenticate}, m...)...)
	}
	v1(http.MethodGet, "/me", s.me)
	v1(http.MethodPost, "/accounts", s.createAccount)
	v1(http.MethodGet, "/accounts", s.listAccounts)
	v1(http.MethodPost, "/accounts/:account_sid/keys", s.createKey)
	v1(http.MethodGet, "/accounts/:account_sid/keys", s.listKeys)
	v1(http.MethodDelete, "/accounts/:account_sid/keys/:key_sid", s.revokeKey)
	v1(http.MethodPost, "/accounts/:account_sid/events", s.postEvents, s.ingest.middleware)
	v1(http.MethodPost, "/accounts/:account_sid/tokens", s.mintToken, s.tokens.middleware)
	v1(http.MethodPost, "/accounts/:account_sid/tokens/verify", s.verifyToken, s.tokens.middleware)
	v1(http.MethodGet, "/accounts/:account_sid/reports", s.listReports)
	v1(http.MethodGet, "/accounts/:account_sid/reports/:month", s.getReport)
	v1(http.MethodGet, "/accounts/:account_sid/reports/:month/users", s.getRoster)
	v1(http.MethodPost, "/accounts/:account_sid/reports/:month/run", s.runReport)
	v1(http.MethodGet, "/accounts/:account_sid/rate-card", s.getRateCard)
	v1(http.MethodPut, "/accounts/:account_sid/rate-card", s.putRateCard)
	v1(http.MethodGet, "/reports/:month", s.platformReport)
	v1(http.MethodGet, "/accounts/:account_sid/identities/stats", s.identityStats)
	v1(http.MethodGet, "/accounts/:account_sid/identities", s.listIdentities)
	v1(http.MethodGet, "/accounts/:account_sid/identities/lookalikes", s.lookalikes)
	v1(http.MethodGet, "/accounts/:account_sid/services/:service_sid/users/:identity", s.userHistory)
	s.alertRoutes(v1)
}

func orDefault(l, def Limit) Limit {
	if l.Rate <= 0 || l.Burst <= 0 {
		return def
	}
	return l
}

// principal returns who the request acts as (set by authenticate).
func principal(c echo.Context) usage.Principal {
	p, _ := c.Get(principalKey).(usage.Principal)
	return p
}
