package console

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/tallyhq/tally/internal/usage"
)

// ContentSecurityPolicy is sent with every console response: nothing but
// the console's own files, no inline script or style, no framing.
const ContentSecurityPolicy = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"

// securityHeaders marks every response under /console: the policy above,
// no sniffing, no caching (pages show figures and, once, secrets).
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := c.Request().URL.Path
		if p == Prefix || strings.HasPrefix(p, Prefix+"/") {
			h := c.Response().Header()
			h.Set("Content-Security-Policy", ContentSecurityPolicy)
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("X-Frame-Options", "DENY")
			h.Set("Referrer-Policy", "same-origin")
			if !strings.HasPrefix(p, Prefix+"/static/") {
				h.Set("Cache-Control", "no-store")
			}
		}
		return next(c)
	}
}

// csrfField is the form field (and context key) of the CSRF token.
const csrfField = "csrf"

// csrf is echo's CSRF middleware (double-submit cookie compared in constant
// time), twice: the token cookie is Secure when the request came over
// HTTPS, and echo takes that flag once per middleware.
func (h *Handler) csrf() echo.MiddlewareFunc {
	mk := func(secure bool) echo.MiddlewareFunc {
		return middleware.CSRFWithConfig(middleware.CSRFConfig{
			TokenLookup:    "form:" + csrfField,
			ContextKey:     csrfField,
			CookieName:     "tally_csrf",
			CookiePath:     Prefix,
			CookieMaxAge:   int(MaxSessionTTL / time.Second),
			CookieHTTPOnly: true,
			CookieSameSite: http.SameSiteStrictMode,
			CookieSecure:   secure,
			// A missing token is as refused as a wrong one: 403 (§12).
			ErrorHandler: func(err error, c echo.Context) error {
				return echo.NewHTTPError(http.StatusForbidden, "This form has expired or did not come from the console. Go back, reload the page and try again.")
			},
		})
	}
	plain, secure := mk(false), mk(true)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		p, s := plain(next), secure(next)
		return func(c echo.Context) error {
			if isHTTPS(c) {
				return s(c)
			}
			return p(c)
		}
	}
}

// refuseCrossSite answers a state-changing request that a browser says
// came from another site with 403, and hides Sec-Fetch-Site from echo's
// CSRF middleware: in echo v4.16 that middleware lets a POST marked
// same-origin through without any token, and §12 wants the token on every
// POST.
func refuseCrossSite(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		site := r.Header.Get(echo.HeaderSecFetchSite)
		r.Header.Del(echo.HeaderSecFetchSite)
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if site != "" && site != "same-origin" && site != "none" {
				return echo.NewHTTPError(http.StatusForbidden, "Requests from other sites are refused.")
			}
		}
		return next(c)
	}
}

// isHTTPS tells whether the request came over HTTPS, directly or through a
// proxy that says so (X-Forwarded-Proto): then cookies are Secure.
func isHTTPS(c echo.Context) bool { return c.Scheme() == "https" }

// renderErrors turns the errors of console handlers into HTML pages with
// the right status: the API's error handler would answer with a problem
// document. Only server faults are logged.
func (h *Handler) renderErrors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		if err == nil || c.Response().Committed {
			if err != nil {
				h.log.ErrorContext(c.Request().Context(), "console response cut short", "path", c.Path(), "err", err)
			}
			return nil
		}
		status, msg := http.StatusInternalServerError, "Something went wrong on our side. Try again in a moment."
		var he *echo.HTTPError
		switch {
		case errors.As(err, &he):
			status = he.Code
			msg = http.StatusText(he.Code)
			if m, ok := he.Message.(string); ok {
				msg = m
			}
			if status == http.StatusNotFound {
				msg = "There is no such page."
			}
		case errors.Is(err, usage.ErrNotFound):
			status, msg = http.StatusNotFound, "There is no such page."
		case errors.Is(err, usage.ErrForbidden):
			status, msg = http.StatusForbidden, "Your key's role may not see this page."
		case errors.Is(err, usage.ErrInvalid):
			status, msg = http.StatusUnprocessableEntity, invalidMessage(err)
		case errors.Is(err, usage.ErrUnavailable):
			status, msg = http.StatusServiceUnavailable, "The database cannot be reached right now. Try again in a few seconds."
			c.Response().Header().Set("Retry-After", "5")
		}
		if status >= 500 {
			h.log.ErrorContext(c.Request().Context(), "console", "path", c.Path(), "status", status, "err", err)
		}
		return h.render(c, status, "error", errorPage{Status: status, Title: http.StatusText(status), Message: msg})
	}
}

func invalidMessage(err error) string {
	var verr *usage.ValidationError
	if errors.As(err, &verr) && len(verr.Errors) > 0 {
		fe := verr.Errors[0]
		return "The " + fe.Field + " " + fe.Message + "."
	}
	return strings.TrimSuffix(err.Error(), ": "+usage.ErrInvalid.Error())
}

type errorPage struct {
	Status  int
	Title   string
	Message string
}

// static serves the embedded style and script.
func (h *Handler) static(c echo.Context) error {
	name := c.Param("*")
	b, err := staticFS.ReadFile("static/" + name)
	if err != nil || strings.Contains(name, "..") {
		return fmt.Errorf("static %q: %w", name, usage.ErrNotFound)
	}
	ctype := "application/octet-stream"
	switch {
	case strings.HasSuffix(name, ".css"):
		ctype = "text/css; charset=utf-8"
	case strings.HasSuffix(name, ".js"):
		ctype = "text/javascript; charset=utf-8"
	case strings.HasSuffix(name, ".svg"):
		ctype = "image/svg+xml"
	}
	c.Response().Header().Set("Cache-Control", "public, max-age=3600")
	return c.Blob(http.StatusOK, ctype, b)
}
