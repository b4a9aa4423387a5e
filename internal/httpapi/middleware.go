package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tallyhq/tally/internal/usage"
)

const (
	principalKey = "tally.principal"
	requestIDKey = "tally.request_id"
	// HeaderRequestID carries the request id back to the client, so a
	// support question can be matched with the log line.
	HeaderRequestID = "X-Request-Id"
)

func requestID(c echo.Context) string {
	id, _ := c.Get(requestIDKey).(string)
	return id
}

// requestLog gives every request an id and writes one structured line when
// it ends. It logs the route, never headers or bodies: credentials and
// tokens travel in those.
func (s *Server) requestLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		id := c.Request().Header.Get(HeaderRequestID)
		if id == "" || len(id) > 64 {
			var b [8]byte
			rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Set(requestIDKey, id)
		c.Response().Header().Set(HeaderRequestID, id)

		err := next(c)
		aborted := false
		switch {
		case err != nil && c.Response().Committed:
			s.afterCommit(c, err)
			aborted = true
		case err != nil:
			c.Error(err) // writes the problem document so the status is known
		}
		p := principal(c)
		s.metrics.observe(c, time.Since(start))
		s.log.LogAttrs(c.Request().Context(), slog.LevelInfo, "request",
			slog.String("request_id", id),
			slog.String("method", c.Request().Method),
			slog.String("route", c.Path()),
			slog.String("path", c.Request().URL.EscapedPath()),
			slog.Int("status", c.Response().Status),
			slog.Int64("bytes_out", c.Response().Size),
			slog.Float64("latency_ms", float64(time.Since(start).Microseconds())/1000),
			slog.String("account_sid", c.Param("account_sid")),
			slog.String("key_sid", p.KeySID),
		)
		if aborted {
			// net/http closes the connection without ending the answer
			// (no last chunk), so the client cannot take it for complete.
			panic(http.ErrAbortHandler)
		}
		return nil
	}
}

// authenticate checks HTTP Basic credentials (key SID, secret) on every /v1
// request.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		sid, secret, ok := c.Request().BasicAuth()
		if !ok {
			return fmt.Errorf("no basic credentials: %w", usage.ErrUnauthorized)
		}
		p, err := s.keys.Authenticate(c.Request().Context(), sid, secret)
		if err != nil {
			return err
		}
		c.Set(principalKey, p)
		return next(c)
	}
}

// authorize checks that the request's key may act on accountSID with one of
// roles. A key of another account gets not found whatever its role, so an
// account cannot learn that another exists; platform keys may name any
// existing account.
func (s *Server) authorize(c echo.Context, accountSID string, roles ...usage.Role) error {
	p := principal(c)
	if p.AccountSID != accountSID {
		if !p.Platform || !usage.IsAccountSID(accountSID) {
			return fmt.Errorf("account %s: %w", accountSID, usage.ErrNotFound)
		}
		// Accounts are never deleted, so one that was seen stays known.
		if _, known := s.accounts.Load(accountSID); !known {
			if _, err := s.store.Account(c.Request().Context(), accountSID); err != nil {
				return err
			}
			s.accounts.Store(accountSID, struct{}{})
		}
	}
	for _, r := range roles {
		if p.Role == r {
			return nil
		}
	}
	return fmt.Errorf("role %s on %s: %w", p.Role, c.Path(), usage.ErrForbidden)
}

// authorizePlatform checks for a platform key of one of roles.
func (s *Server) authorizePlatform(c echo.Context, roles ...usage.Role) error {
	p := principal(c)
	if !p.Platform {
		return fmt.Errorf("platform route %s: %w", c.Path(), usage.ErrForbidden)
	}
	return s.authorize(c, p.AccountSID, roles...)
}
