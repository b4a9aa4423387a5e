package usage

import (
	"encoding/json"
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

// MarshalJSON leaves index out of an error that is about no one event: a
// client reads "index" as the position of an event in the body.
func (fe FieldError) MarshalJSON() ([]byte, error) {
	if fe.Index >= 0 {
		type plain FieldError // without the method
		return json.Marshal(plain(fe))
	}
	return json.Marshal(struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	}{fe.Field, fe.Message})
}

// UnmarshalJSON reads an absent index as -1, the inverse of MarshalJSON.
func (fe *FieldError) UnmarshalJSON(b []byte) error {
	type plain FieldError
	p := plain{Index: -1}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*fe = FieldError(p)
	return nil
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
