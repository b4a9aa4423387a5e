// Package httpapi is tally's HTTP API: every route in one place, Basic auth
// with roles, handlers that decode, validate, call the store and respond, and
// one error handler that turns errors into RFC 9457 problem documents.
package httpapi

import (
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

	accounts sync.Map // account SIDs known to exist
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
	s := &Server{
		store: cfg.Store, box: cfg.Box, log: cfg.Logger, now: cfg.Now,
		keys:    newKeyCache(cfg.Store, cfg.Box, cfg.KeyTTL),
		ready:   cfg.Ready,
		metrics: newMetrics(cfg.Store.Pool()),
		job:     cfg.Job,
		ingest:  newLimiter(orDefault(cfg.IngestLimit, DefaultIngestLimit)),
		tokens:  newLimiter(orDefault(cfg.TokenLimit, DefaultTokenLimit)),
	}
	// One flush in flight per account (the verifications that arrive
	// meanwhile gather into its next group), at most four in all.
	s.authLog = postgres.NewCoalescer(cfg.Store, 4)
	s.authLog.Observe = s.metrics.recorded
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

// routes declares every route of the API.
func (s *Server) routes(e *echo.Echo) {
	e.Use(s.requestLog)

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", s.metrics.handler())
	e.GET("/openapi.yaml", s.openapi)

	v1 := e.Group("/v1", s.authenticate)
	v1.GET("/me", s.me)
	v1.POST("/accounts", s.createAccount)
	v1.GET("/accounts", s.listAccounts)
	v1.POST("/accounts/:account_sid/keys", s.createKey)
	v1.GET("/accounts/:account_sid/keys", s.listKeys)
	v1.DELETE("/accounts/:account_sid/keys/:key_sid", s.revokeKey)
	v1.POST("/accounts/:account_sid/events", s.postEvents, s.ingest.middleware)
	v1.POST("/accounts/:account_sid/tokens", s.mintToken, s.tokens.middleware)
	v1.POST("/accounts/:account_sid/tokens/verify", s.verifyToken, s.tokens.middleware)
	v1.GET("/accounts/:account_sid/reports", s.listReports)
	v1.GET("/accounts/:account_sid/reports/:month", s.getReport)
	v1.GET("/accounts/:account_sid/reports/:month/users", s.getRoster)
	v1.POST("/accounts/:account_sid/reports/:month/run", s.runReport)
	v1.GET("/accounts/:account_sid/rate-card", s.getRateCard)
	v1.PUT("/accounts/:account_sid/rate-card", s.putRateCard)
	v1.GET("/reports/:month", s.platformReport)
	v1.GET("/accounts/:account_sid/identities/stats", s.identityStats)
	v1.GET("/accounts/:account_sid/identities", s.listIdentities)
	v1.GET("/accounts/:account_sid/services/:service_sid/users/:identity", s.userHistory)
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
