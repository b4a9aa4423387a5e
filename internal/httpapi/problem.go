package httpapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/tallyhq/tally/internal/usage"
)

// problemBase prefixes every problem type URI (RFC 9457).
const problemBase = "https://tally.dev/problems/"

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type   string             `json:"type"`
	Title  string             `json:"title"`
	Status int                `json:"status"`
	Detail string             `json:"detail,omitempty"`
	Errors []usage.FieldError `json:"errors,omitempty"`
	Reason string             `json:"reason,omitempty"`

	retryAfter int // seconds; sent as the Retry-After header when > 0
}

// Error implements error so handlers can return a Problem directly.
func (p *Problem) Error() string { return p.Title + ": " + p.Detail }

func problem(status int, kind, title, detail string) *Problem {
	return &Problem{Type: problemBase + kind, Title: title, Status: status, Detail: detail}
}

func errMalformed(detail string) *Problem {
	return problem(http.StatusBadRequest, "malformed", "Malformed request body", detail)
}

func errTooLarge(detail string) *Problem {
	return problem(http.StatusRequestEntityTooLarge, "too-large", "Request body too large", detail)
}

func errUnsupportedMedia(detail string) *Problem {
	return problem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported content type", detail)
}

// statusClientClosed is logged and counted (never sent: nobody listens)
// for a request whose client went away before its answer, as nginx does, so
// that a client's disconnection is not counted as a server fault.
const statusClientClosed = 499

// Details of the problems whose cause needs no more words.
const (
	detailNotFound         = "no such resource, or not one this API key may see"
	detailMethodNotAllowed = "this path does not take this method; the Allow header lists those it takes"
)

// errBusy is a request refused because this replica has no room for it now
// (the database is fine): 503 with Retry-After.
func errBusy(detail string) *Problem {
	p := problem(http.StatusServiceUnavailable, "busy", "Busy", detail)
	p.retryAfter = 1
	return p
}

// toProblem maps any error a handler returns to one problem document. It is
// the only place where error kinds become status codes.
func toProblem(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	// Before the store's kinds: a body that failed in the middle of a COPY
	// comes back wrapped, and its timeout would look like an unreachable
	// database.
	var be *bodyError
	if errors.As(err, &be) {
		if be.timeout() {
			return problem(http.StatusRequestTimeout, "request-timeout", "Request Timeout",
				"the request body did not arrive in time")
		}
		return errMalformed("the request body could not be read: " + be.err.Error())
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		title := http.StatusText(he.Code)
		detail := ""
		if m, ok := he.Message.(string); ok && m != title {
			detail = m
		}
		kind := "http-" + strconv.Itoa(he.Code)
		switch he.Code {
		case http.StatusNotFound:
			kind, detail = "not-found", cmp.Or(detail, detailNotFound)
		case http.StatusMethodNotAllowed:
			kind, detail = "method-not-allowed", cmp.Or(detail, detailMethodNotAllowed)
		}
		return problem(he.Code, kind, title, detail)
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errTooLarge("the body exceeds " + strconv.FormatInt(mbe.Limit, 10) + " bytes")
	}
	var verr *usage.ValidationError
	switch {
	case errors.As(err, &verr):
		p := problem(http.StatusUnprocessableEntity, "validation", "Validation failed", verr.Error())
		p.Errors = verr.Errors
		return p
	case errors.Is(err, usage.ErrInvalid):
		return problem(http.StatusUnprocessableEntity, "validation", "Validation failed", err.Error())
	case errors.Is(err, usage.ErrUnauthorized):
		return problem(http.StatusUnauthorized, "unauthorized", "Unauthorized", "missing, wrong or revoked API key credentials")
	case errors.Is(err, usage.ErrForbidden):
		return problem(http.StatusForbidden, "forbidden", "Forbidden", "this API key's role may not do this")
	case errors.Is(err, usage.ErrNotFound):
		return problem(http.StatusNotFound, "not-found", "Not Found", detailNotFound)
	case errors.Is(err, usage.ErrConflict):
		return problem(http.StatusConflict, "conflict", "Conflict", "the resource already exists or changed meanwhile")
	case errors.Is(err, usage.ErrUnavailable):
		p := problem(http.StatusServiceUnavailable, "unavailable", "Service Unavailable", "the database is unavailable; retry later")
		p.retryAfter = 5
		return p
	}
	return problem(http.StatusInternalServerError, "internal", "Internal Server Error", "")
}

// handleError is echo's HTTPErrorHandler: one problem document per error,
// and a log line only for server faults (the request log has the rest).
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	p := toProblem(err)
	if p.Status >= 500 && clientGone(c) {
		// Whatever failed, it failed because the client left: not a fault,
		// and no answer can reach it. The request log line says 499.
		c.Response().WriteHeader(statusClientClosed)
		return
	}
	if p.Status >= 500 {
		s.log.ErrorContext(c.Request().Context(), "request failed",
			"request_id", requestID(c), "method", c.Request().Method, "route", c.Path(), "err", err)
	}
	h := c.Response().Header()
	if p.Status == http.StatusUnauthorized && p.Reason == "" {
		h.Set("WWW-Authenticate", `Basic realm="tally"`)
	}
	if p.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.retryAfter))
	}
	h.Set(echo.HeaderContentType, "application/problem+json")
	c.Response().WriteHeader(p.Status)
	if c.Request().Method == http.MethodHead {
		return
	}
	_ = json.NewEncoder(c.Response()).Encode(p)
}

// clientGone reports whether the client closed the connection: the server
// cancels a request's context then (and only when the handler returned,
// which has not happened yet here).
func clientGone(c echo.Context) bool {
	return errors.Is(c.Request().Context().Err(), context.Canceled)
}
