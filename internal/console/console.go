// Package console is tally's web console (CONTRACT §12): server-rendered
// pages under /console for finance and admins, served by the same binary
// as the API. Templates, style and the little script it has are embedded;
// pages work without JavaScript.
//
// A visitor signs in with an API key; the session is kept in the database
// (only a hash of its token) and checked with its key on every request, so
// a session may do exactly what its key may do on the API, and no more once
// the key is revoked.
package console

import (
	"embed"
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/secrets"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the console is mounted.
const Prefix = "/console"

// Config is what the console is built from: the API's store and secret box
// (keys are checked, created and revoked exactly as the API does).
type Config struct {
	Store  *postgres.Store
	Box    *secrets.Box
	Logger *slog.Logger
	Now    func() time.Time
	// SessionTTL bounds a session; default and maximum 12 hours (§12).
	SessionTTL time.Duration
	// KeySignIns and AddressSignIns limit failed sign-in attempts per key
	// SID and per client address; zero values take the defaults.
	KeySignIns, AddressSignIns Limit
}

// Handler serves the console.
type Handler struct {
	store      *postgres.Store
	box        *secrets.Box
	log        *slog.Logger
	now        func() time.Time
	sessionTTL time.Duration
	pages      *pages
	byKey      *attempts
	byAddress  *attempts
}

// Register mounts the console under /console on e, the echo instance of
// the API, so one binary and one listener serve both.
func Register(e *echo.Echo, cfg Config) {
	h := New(cfg)
	h.routes(e)
}

// New builds a console handler; Register is what the server calls.
func New(cfg Config) *Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SessionTTL <= 0 || cfg.SessionTTL > MaxSessionTTL {
		cfg.SessionTTL = MaxSessionTTL
	}
	return &Handler{
		store: cfg.Store, box: cfg.Box, log: cfg.Logger, now: cfg.Now, sessionTTL: cfg.SessionTTL,
		pages:     mustParsePages(),
		byKey:     newAttempts(orDefault(cfg.KeySignIns, DefaultKeySignIns)),
		byAddress: newAttempts(orDefault(cfg.AddressSignIns, DefaultAddressSignIns)),
	}
}

// routes declares every route of the console.
func (h *Handler) routes(e *echo.Echo) {
	// Pre runs before routing, so even the router's own answers under
	// /console (405) carry the security headers.
	e.Pre(securityHeaders)

	g := e.Group(Prefix, h.renderErrors, refuseCrossSite, h.csrf())
	g.GET("/static/*", h.static)
	g.GET("/login", h.loginForm)
	g.POST("/login", h.login)
	g.POST("/logout", h.logout)

	s := g.Group("", h.requireSession)
	s.GET("", h.home)
	s.GET("/", h.home)
	s.GET("/accounts", h.accounts)
	s.GET("/accounts/:account_sid", h.accountMonth)
	s.GET("/accounts/:account_sid/reports/:month", h.reportVersions)
	s.GET("/accounts/:account_sid/reports/:month/export", h.export)
	s.GET("/accounts/:account_sid/identities", h.identities)
	s.GET("/accounts/:account_sid/keys", h.keys)
	s.POST("/accounts/:account_sid/keys", h.createKey)
	s.POST("/accounts/:account_sid/keys/:key_sid/revoke", h.revokeKey)
}
