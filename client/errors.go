package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrClosed is returned by Track, Flush and the other calls made after
// Close: a closed client sends nothing more.
var ErrClosed = errors.New("tally client: closed")

// Error is an answer of the API other than success: the RFC 9457 problem
// document it carried. Track returns one too, with Status 422, for an event
// that the server would refuse, without sending it.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Type is the problem type URI, e.g. https://tally.dev/problems/validation;
	// a refused access token's type ends in /invalid-token.
	Type string
	// Title and Detail say what went wrong, for people.
	Title  string
	Detail string
	// Errors names every invalid field of a refused request, per event.
	Errors []FieldError
	// Reason is why an access token was refused (§5): malformed, expired,
	// bad_signature, …; empty otherwise.
	Reason string

	retryAfter time.Duration // the answer's Retry-After
}

// FieldError names one invalid field of one event (or of the request when
// Index is negative).
type FieldError struct {
	// Index is the event's position in the body the server was sent.
	Index   int    `json:"index"`
	Field   string `json:"field"`
	Message string `json:"message"`
	// EventID is the id of the event at Index, filled in by the client so
	// that a refusal can be matched with what was tracked.
	EventID string `json:"-"`
}

// UnmarshalJSON reads an absent index as -1: the server leaves it out of
// an error that is about the request, not one event.
func (fe *FieldError) UnmarshalJSON(b []byte) error {
	var w struct {
		Index   *int   `json:"index"`
		Field   string `json:"field"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*fe = FieldError{Index: -1, Field: w.Field, Message: w.Message}
	if w.Index != nil {
		fe.Index = *w.Index
	}
	return nil
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tally: %d %s", e.Status, e.Title)
	if e.Reason != "" {
		fmt.Fprintf(&b, " (%s)", e.Reason)
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, ": %s", e.Detail)
	}
	return b.String()
}

// problem is the wire form of an Error.
type problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail"`
	Errors []FieldError `json:"errors"`
	Reason string       `json:"reason"`
}
