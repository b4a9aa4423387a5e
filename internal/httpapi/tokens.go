package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tallyhq/tally/internal/token"
	"github.com/tallyhq/tally/internal/usage"
)

type mintRequest struct {
	Identity string `json:"identity"`
	TTL      *int64 `json:"ttl"`
	Grants   struct {
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
	ttl := token.DefaultTTL
	if req.TTL != nil {
		if *req.TTL < int64(token.MinTTL/time.Second) || *req.TTL > int64(token.MaxTTL/time.Second) {
			return usage.Invalid("ttl", "must be from 180 to 86400 seconds")
		}
		ttl = time.Duration(*req.TTL) * time.Second
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

// lookupKey finds a token's key for verification, through the same cache
// as authentication, so a revoked key stops verifying within the key TTL.
func (s *Server) lookupKey(ctx context.Context, keySID string) (token.Key, error) {
	if !usage.IsKeySID(keySID) {
		return token.Key{}, token.ErrUnknownKey
	}
	e, err := s.keys.entry(ctx, keySID)
	if errors.Is(err, usage.ErrUnauthorized) {
		return token.Key{}, token.ErrUnknownKey
	}
	if err != nil {
		return token.Key{}, err
	}
	return token.Key{AccountSID: e.principal.AccountSID, Secret: e.secret, Revoked: e.revoked}, nil
}

func (s *Server) verifyToken(c echo.Context) error {
	account := c.Param("account_sid")
	if err := s.authorizeTokens(c, account); err != nil {
		return err
	}
	tok, err := readVerifyBody(c)
	if err != nil {
		return err
	}
	if tok == "" {
		return usage.Invalid("token", "is required")
	}
	ctx := c.Request().Context()
	now := s.now().UTC()
	cl, err := token.Verify(ctx, tok, account, now, s.lookupKey)
	if err != nil {
		var inv *token.Invalid
		if errors.As(err, &inv) {
			s.metrics.verifies.WithLabelValues(string(inv.Reason)).Inc()
			return invalidToken(inv)
		}
		return err
	}
	// One authenticate event per granted service, through the ingest path.
	var events []usage.Event
	if g := cl.Grants.Chat; g != nil {
		events = append(events, usage.Event{ID: token.EventID(tok, "chat"), Activity: usage.Authenticate,
			Source: usage.SDK, ServiceSID: g.ServiceSID, Identity: cl.Grants.Identity, OccurredAt: now, EndpointID: g.EndpointID})
	}
	if g := cl.Grants.Sync; g != nil {
		events = append(events, usage.Event{ID: token.EventID(tok, "data_sync"), Activity: usage.Authenticate,
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
	// Written by hand when every string is plain (nearly always), and by
	// encoding/json otherwise or when ?pretty asks echo to indent: the
	// reflection was a sixth of a verification's handler.
	if c.Request().URL.RawQuery == "" {
		if b, ok := appendVerified(make([]byte, 0, 512), cl); ok {
			return c.JSONBlob(http.StatusOK, b)
		}
	}
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

// appendVerified appends what encoding/json's Encoder writes for
// newVerified(cl), newline included, or reports false when a string needs
// escaping, which it leaves to encoding/json (TestAppendVerified holds the
// two to the same bytes).
func appendVerified(b []byte, cl token.Claims) ([]byte, bool) {
	w := plainWriter{b: b, ok: true}
	g := cl.Grants
	w.raw(`{"valid":true,"identity":`)
	w.str(g.Identity)
	w.raw(`,"account_sid":`)
	w.str(cl.AccountSID)
	w.raw(`,"api_key_sid":`)
	w.str(cl.KeySID)
	w.raw(`,"grants":{"identity":`)
	w.str(g.Identity)
	if ch := g.Chat; ch != nil {
		w.raw(`,"chat":{"service_sid":`)
		w.str(ch.ServiceSID)
		w.optional(`,"endpoint_id":`, ch.EndpointID)
		w.optional(`,"deployment_role_sid":`, ch.DeploymentRoleSID)
		w.optional(`,"push_credential_sid":`, ch.PushCredentialSID)
		w.raw(`}`)
	}
	if sy := g.Sync; sy != nil {
		w.raw(`,"data_sync":{"service_sid":`)
		w.str(sy.ServiceSID)
		w.optional(`,"endpoint_id":`, sy.EndpointID)
		w.raw(`}`)
	}
	w.raw(`},"not_before":`)
	if cl.NotBefore.IsZero() {
		w.raw(`null`)
	} else {
		w.time(cl.NotBefore)
	}
	w.raw(`,"expires_at":`)
	w.time(cl.ExpiresAt)
	w.raw("}\n")
	return w.b, w.ok
}

// plainWriter appends JSON whose strings need no escaping; ok turns false
// at the first string that does.
type plainWriter struct {
	b  []byte
	ok bool
}

func (w *plainWriter) raw(s string) { w.b = append(w.b, s...) }

// str appends s quoted. Plain is printable ASCII other than the quote, the
// backslash and the characters encoding/json escapes for HTML (<, >, &).
func (w *plainWriter) str(s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			w.ok = false
			return
		}
	}
	w.b = append(append(append(w.b, '"'), s...), '"')
}

// optional appends key and s unless s is empty (omitempty).
func (w *plainWriter) optional(key, s string) {
	if s != "" {
		w.raw(key)
		w.str(s)
	}
}

// time appends t as time.Time's MarshalJSON does (RFC 3339 with the
// fraction it has; a token's times are within years 1970 to 9999).
func (w *plainWriter) time(t time.Time) {
	w.b = append(t.AppendFormat(append(w.b, '"'), time.RFC3339Nano), '"')
}

// readVerifyBody reads the body of a verification, {"token": "…"}, by
// decodeJSON's rules. A token is printable ASCII without quotes or
// backslashes, so the body a client sends is nearly always exactly
// {"token":"…"}, and that form is read by hand: encoding/json, scanning
// the token's characters twice, took a tenth of a verification. Anything
// else goes through encoding/json.
func readVerifyBody(c echo.Context) (string, error) {
	b, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, MaxJSONBody))
	if err != nil {
		return "", jsonError(err)
	}
	if tok, ok := plainToken(b); ok {
		return tok, nil
	}
	var req struct {
		Token string `json:"token"`
	}
	if err := decodeFrom(bytes.NewReader(b), &req); err != nil {
		return "", err
	}
	return req.Token, nil
}

// plainToken reads a body of the form {"token":"…"}, with JSON whitespace
// around it, whose string holds no byte that JSON would escape or decode
// (control characters, quotes, backslashes, non-ASCII); it reports false
// for any other body.
func plainToken(b []byte) (string, bool) {
	rest, ok := bytes.CutPrefix(bytes.Trim(b, " \t\r\n"), []byte(`{"token":"`))
	if !ok {
		return "", false
	}
	tok, ok := bytes.CutSuffix(rest, []byte(`"}`))
	if !ok {
		return "", false
	}
	for _, ch := range tok {
		if ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\' {
			return "", false
		}
	}
	return string(tok), true
}

// invalidToken is a 401 that a client tells from a bad API key by its type
// and reason (and it carries no WWW-Authenticate challenge).
func invalidToken(inv *token.Invalid) *Problem {
	p := problem(http.StatusUnauthorized, "invalid-token", "Invalid access token", inv.Detail)
	p.Reason = string(inv.Reason)
	return p
}
