package usage

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of an event's fields (§4).
const (
	MaxEventIDBytes  = 128
	MaxOptionalBytes = 256
	// MaxFutureSkew is how far after the server's clock an event may be dated.
	MaxFutureSkew = 5 * time.Minute
)

// Epoch is the earliest occurred_at accepted: nothing older can be billed.
var Epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Event is one activity of one user, as posted by a platform's backend.
type Event struct {
	ID         string
	Activity   Activity
	Source     Source
	ServiceSID string
	Identity   string
	OccurredAt time.Time
	Actor      string // optional; "" when absent
	ChannelSID string // optional
	EndpointID string // optional
}

// Validate appends to errs one FieldError per rule of §4 that e breaks,
// naming the event by index. now is the server's clock, fixed for the body.
func (e *Event) Validate(index int, now time.Time, errs []FieldError) []FieldError {
	add := func(field, msg string) { errs = append(errs, FieldError{Index: index, Field: field, Message: msg}) }

	switch {
	case e.ID == "":
		add("id", "is required")
	case len(e.ID) > MaxEventIDBytes:
		add("id", "must be at most 128 bytes")
	default:
		if msg := checkText(e.ID); msg != "" {
			add("id", msg)
		}
	}

	activityOK := e.Activity.Valid()
	switch {
	case e.Activity == "":
		add("activity", "is required")
	case !activityOK:
		add("activity", "must be one of create, update, authenticate, send, join, add, invite, remove")
	}
	switch {
	case e.Source == "":
		add("source", "is required")
	case !e.Source.Valid():
		add("source", "must be rest or sdk")
	case activityOK && !e.Activity.Allows(e.Source):
		add("source", "activity "+string(e.Activity)+" cannot come from source "+string(e.Source))
	}

	if msg := CheckServiceSID(e.ServiceSID); msg != "" {
		add("service_sid", msg)
	}
	if msg := CheckIdentity(e.Identity); msg != "" {
		add("identity", msg)
	}

	switch {
	case e.OccurredAt.IsZero():
		add("occurred_at", "is required")
	case e.OccurredAt.Before(Epoch):
		add("occurred_at", "must not be before 2000-01-01T00:00:00Z")
	case e.OccurredAt.After(now.Add(MaxFutureSkew)):
		add("occurred_at", "must not be more than 5 minutes in the future")
	}

	for _, f := range [...]struct{ name, v string }{{"actor", e.Actor}, {"channel_sid", e.ChannelSID}, {"endpoint_id", e.EndpointID}} {
		if len(f.v) > MaxOptionalBytes {
			add(f.name, "must be at most 256 bytes")
		} else if msg := checkText(f.v); msg != "" {
			add(f.name, msg)
		}
	}
	return errs
}

// checkText rejects what PostgreSQL text cannot hold (NUL) and invalid UTF-8.
func checkText(s string) string {
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "must not contain NUL characters"
	}
	return ""
}
