package usage

import (
	"errors"
	"fmt"
	"strings"
)

// Error kinds. Callers wrap them with context and check them with errors.Is;
// the HTTP layer maps each kind to one status code, in one place.
var (
	ErrNotFound     = errors.New("not found")
	ErrInvalid      = errors.New("invalid")
	ErrConflict     = errors.New("conflict")
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
	ErrUnavailable  = errors.New("unavailable")
)

// FieldError names one invalid field of one event (or of a request body when
// Index is negative).
type FieldError struct {
	Index   int    `json:"index"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every problem found in a request, so that a client
// can fix all of them at once instead of one per round trip.
type ValidationError struct {
	Errors []FieldError
}

// Error implements error.
func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d invalid field(s)", len(e.Errors))
	for i, fe := range e.Errors {
		if i == 3 {
			b.WriteString(", …")
			break
		}
		if fe.Index >= 0 {
			fmt.Fprintf(&b, "; event %d: %s: %s", fe.Index, fe.Field, fe.Message)
		} else {
			fmt.Fprintf(&b, "; %s: %s", fe.Field, fe.Message)
		}
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) true for validation errors.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Invalid returns a validation error for one request field.
func Invalid(field, format string, args ...any) error {
	return &ValidationError{Errors: []FieldError{{Index: -1, Field: field, Message: fmt.Sprintf(format, args...)}}}
}
