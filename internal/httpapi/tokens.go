package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tallyhq/tally/internal/token"
	"github.com/tallyhq/tally/internal/usage"
)

type mintRequest struct {
	Identity string `json:"identity"`
	// TTL is raw so that a number that is not a whole number of seconds
	// (3600.5) is told apart from one of another type ("3600").
	TTL    json.RawMessage `json:"ttl"`
	Grants struct {
		Chat *token.ChatGrant `json:"chat"`
		Sync *token.SyncGrant `json:"sync"`
	} `json:"grants"`
}

// authorizeTokens admits ingest and admin keys of the account itself: a
// token is signed with the calling key's secret, so a platform key cannot
// mint or verify for another account (403).
func (s *Server) authorizeTokens(c echo.Context, account string) error {
	if err := s.authorize(c, account, usage.RoleIngest, usage.RoleAdmin); err != nil {
		return err
	}
	if principal(c).AccountSID != account {
		return fmt.Errorf("a platform key cannot handle tokens of another account: %w", usage.ErrForbidden)
	}
	return nil
}

func (s *Server) mintToken(c echo.Context) error {
	account := c.Param("account_sid")
	if err := s.authorizeTokens(c, account); err != nil {
		return err
	}
	var req mintRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	ttl, err := parseTTL(req.TTL)
	if err != nil {
		return err
	}
	p := principal(c)
	key, err := s.keys.entry(c.Request().Context(), p.KeySID)
	if err != nil {
		return err
	}
	g := token.Grants{Identity: req.Identity, Chat: req.Grants.Chat, Sync: req.Grants.Sync}
	tok, _, exp, err := token.Mint(account, p.KeySID, key.secret, g, s.now(), ttl)
	if err != nil {
		return err
	}
	s.metrics.tokens.WithLabelValues().Inc()
	return c.JSON(http.StatusCreated, struct {
		Identity  string    `json:"identity"`
		Token     string    `json:"token"`
		TTL       int64     `json:"ttl"`
		ExpiresAt time.Time `json:"expires_at"`
	}{req.Identity, tok, int64(ttl / time.Second), exp})
}

// parseTTL reads the ttl of a mint request: absent or null for the
// default, else a JSON number that is a whole number of seconds within
// Twilio's bounds (a *usage.ValidationError otherwise, 422).
func parseTTL(raw json.RawMessage) (time.Duration, error) {
	s := string(raw)
	if s == "" || s == "null" {
		return token.DefaultTTL, nil
	}
	if s[0] != '-' && (s[0] < '0' || s[0] > '9') {
		return 0, usage.Invalid("ttl", "must be a JSON number: an integer number of seconds from 180 to 86400")
	}
	// raw is a valid JSON number (the decoder checked it), which ParseFloat
	// reads; a float64 holds every integer of the range exactly.
	f, err := strconv.ParseFloat(s, 64)
	if err == nil && f != math.Trunc(f) {
		return 0, usage.Invalid("ttl", "must be an integer number of seconds, from 180 to 86400; %s has a fraction", s)
	}
	if err != nil || f < float64(token.MinTTL/time.Second) || f > float64(token.MaxTTL/time.Second) {
		return 0, usage.Invalid("ttl", "must be from 180 to 86400 seconds")
	}
	return time.Duration(f) * time.Second, nil
}

// lookupKey finds a token's key for verification, through the same cache
// as authentication, so a revoked key stops verifying within the key TTL.
func (s *Server) lookupKey(ctx context.Context, keySID string) (token.SigningKey, error) {
	if !usage.IsKeySID(keySID) {
		return token.SigningKey{}, token.ErrUnknownKey
	}
	e, err := s.keys.entry(ctx, keySID)
	if errors.Is(err, usage.ErrUnauthorized) {
		return token.SigningKey{}, token.ErrUnknownKey
	}
	if err != nil {
		return token.SigningKey{}, err
	}
	return token.SigningKey{AccountSID: e.principal.AccountSID, Secret: e.secret, Revoked: e.revoked}, nil
}

func (s *Server) verifyToken(c echo.Context) error {
	account := c.Param("account_sid")
	if err := s.authorizeTokens(c, account); err != nil {
		return err
	}
	var req struct {
		Token string `json:"token"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Token == "" {
		return usage.Invalid("token", "is required")
	}
	ctx := c.Request().Context()
	now := s.now().UTC()
	cl, err := token.Verify(ctx, req.Token, account, now, s.lookupKey)
	if err != nil {
		var inv *token.Invalid
		if errors.As(err, &inv) {
			s.metrics.verifies.WithLabelValues(string(inv.Reason)).Inc()
			return invalidToken(inv)
		}
		return err
	}
	// One authenticate event per granted service, through the ingest path;
	// a token with neither a chat nor a sync grant records nothing.
	var events []usage.Event
	if g := cl.Grants.Chat; g != nil {
		events = append(events, usage.Event{ID: cl.EventID("chat"), Activity: usage.Authenticate,
			Source: usage.SDK, ServiceSID: g.ServiceSID, Identity: cl.Grants.Identity, OccurredAt: now, EndpointID: g.EndpointID})
	}
	if g := cl.Grants.Sync; g != nil {
		events = append(events, usage.Event{ID: cl.EventID("data_sync"), Activity: usage.Authenticate,
			Source: usage.SDK, ServiceSID: g.ServiceSID, Identity: cl.Grants.Identity, OccurredAt: now, EndpointID: g.EndpointID})
	}
	for i := range events {
		if errs := events[i].Validate(i, now, nil); len(errs) > 0 {
			inv := &token.Invalid{Reason: token.Malformed, Detail: "a grant does not name a valid service: " + errs[0].Field + " " + errs[0].Message}
			s.metrics.verifies.WithLabelValues(string(inv.Reason)).Inc()
			return invalidToken(inv)
		}
	}
	if len(events) > 0 {
		if err := s.authLog.Record(ctx, account, events); err != nil {
			return err
		}
	}
	s.metrics.verifies.WithLabelValues("valid").Inc()
	return c.JSON(http.StatusOK, newVerified(cl))
}

// verified is the answer to a valid token (contract §5).
type verified struct {
	Valid      bool         `json:"valid"`
	Identity   string       `json:"identity"`
	AccountSID string       `json:"account_sid"`
	APIKeySID  string       `json:"api_key_sid"`
	Grants     token.Grants `json:"grants"`
	NotBefore  *time.Time   `json:"not_before"`
	ExpiresAt  time.Time    `json:"expires_at"`
}

func newVerified(cl token.Claims) verified {
	var notBefore *time.Time
	if !cl.NotBefore.IsZero() {
		notBefore = &cl.NotBefore
	}
	return verified{true, cl.Grants.Identity, cl.AccountSID, cl.KeySID, cl.Grants, notBefore, cl.ExpiresAt}
}

// invalidToken is a 401 that a client tells from a bad API key by its type
// and reason (and it carries no WWW-Authenticate challenge).
func invalidToken(inv *token.Invalid) *Problem {
	p := problem(http.StatusUnauthorized, "invalid-token", "Invalid access token", inv.Detail)
	p.Reason = string(inv.Reason)
	return p
}
