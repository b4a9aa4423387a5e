package usage

import (
	"bytes"
	"encoding/json"
	"errors"
	"sort"
	"time"
	"unicode/utf8"
)

// ErrNotJSON marks an event that is not valid JSON at all: a body holding it
// is malformed (400), not merely invalid (422).
var ErrNotJSON = errors.New("not valid JSON")

// EventJSON is an event as posted: every member a string, so that each one
// is judged on its own and every problem of the event reported at once.
type EventJSON struct {
	ID         string `json:"id"`
	Activity   string `json:"activity"`
	Source     string `json:"source"`
	ServiceSID string `json:"service_sid"`
	Identity   string `json:"identity"`
	OccurredAt string `json:"occurred_at"`
	Actor      string `json:"actor"`
	ChannelSID string `json:"channel_sid"`
	EndpointID string `json:"endpoint_id"`
}

// eventMembers are the members of an event, in the order they are reported.
var eventMembers = []string{"id", "activity", "source", "service_sid", "identity", "occurred_at", "actor", "channel_sid", "endpoint_id"}

// DecodeEvent reads one event written as JSON (§4: an element of a batch or
// a line of NDJSON) by the server's rules, so that a sender can drop what
// the server would refuse before sending it: an unknown member, a member
// that is not a string (null is absent), invalid UTF-8 or a lone surrogate
// escape, an occurred_at that is not RFC 3339, and every rule of Validate.
// It returns the event and the problems it appended to errs, or an error
// wrapping ErrNotJSON when raw is not JSON.
func DecodeEvent(raw []byte, index int, now time.Time, errs []FieldError) (Event, []FieldError, error) {
	w, ok := DecodeEventJSON(raw)
	var reported map[string]bool
	if !ok || !w.Complete() {
		var notObject bool
		var err error
		w, errs, reported, notObject, err = DiagnoseEvent(raw, index, errs)
		if err != nil || notObject {
			return Event{}, errs, err
		}
	}
	e, errs := w.Event(index, now, errs, reported)
	return e, errs, nil
}

// DecodeEventJSON decodes one event with encoding/json; ok is false when
// it needs diagnosing (DiagnoseEvent): not JSON, not one object followed by
// white space alone, an unknown member, a member that is not a string,
// invalid UTF-8 or a lone surrogate escape.
func DecodeEventJSON(raw []byte) (w EventJSON, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	// Only white space may follow the object: dec.More is false before a
	// stray '}' or ']', which would let `{…}}` through.
	ok = dec.Decode(&w) == nil && len(bytes.TrimSpace(raw[dec.InputOffset():])) == 0 && ValidJSONText(raw)
	return w, ok
}

// Complete reports whether every required member is there.
func (w *EventJSON) Complete() bool {
	return w.ID != "" && w.Activity != "" && w.Source != "" && w.ServiceSID != "" && w.Identity != "" && w.OccurredAt != ""
}

// Event turns a decoded event into an Event and appends to errs every rule
// it breaks, except for the members in reported, already reported; the
// Event is the zero Event when it breaks one.
func (w *EventJSON) Event(index int, now time.Time, errs []FieldError, reported map[string]bool) (Event, []FieldError) {
	before := len(errs)
	e := Event{
		ID: w.ID, Activity: Activity(w.Activity), Source: Source(w.Source),
		ServiceSID: w.ServiceSID, Identity: w.Identity,
		Actor: w.Actor, ChannelSID: w.ChannelSID, EndpointID: w.EndpointID,
	}
	if w.OccurredAt != "" {
		t, err := ParseTimestamp(w.OccurredAt)
		if err != nil {
			errs = append(errs, FieldError{Index: index, Field: "occurred_at",
				Message: "must be an RFC 3339 timestamp such as 2026-10-05T12:00:00Z"})
			if reported == nil {
				reported = map[string]bool{}
			}
			reported["occurred_at"] = true
		}
		e.OccurredAt = t.UTC()
	}
	for _, fe := range e.Validate(index, now, nil) {
		if !reported[fe.Field] {
			errs = append(errs, fe)
		}
	}
	if len(errs) > before {
		return Event{}, errs
	}
	return e, errs
}

// DiagnoseEvent looks at each member on its own to name every unknown
// member, wrong type and invalid string, and returns the members it
// reported so that validation does not report them again. notObject says
// raw is JSON but not an object (reported); err wraps ErrNotJSON when raw
// is not JSON.
func DiagnoseEvent(raw []byte, index int, errs []FieldError) (w EventJSON, _ []FieldError, reported map[string]bool, notObject bool, err error) {
	trimmed := bytes.TrimSpace(raw)
	if !json.Valid(trimmed) {
		return w, errs, nil, false, ErrNotJSON
	}
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return w, append(errs, FieldError{Index: index, Field: "", Message: "an event must be a JSON object"}), nil, true, nil
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &members); err != nil {
		return w, errs, nil, false, ErrNotJSON
	}
	reported = map[string]bool{}
	add := func(field, msg string) {
		reported[field] = true
		errs = append(errs, FieldError{Index: index, Field: field, Message: msg})
	}
	names := make([]string, 0, len(members))
	for name := range members {
		names = append(names, name)
	}
	sort.Strings(names)
	known := map[string]*string{
		"id": &w.ID, "activity": &w.Activity, "source": &w.Source, "service_sid": &w.ServiceSID,
		"identity": &w.Identity, "occurred_at": &w.OccurredAt, "actor": &w.Actor,
		"channel_sid": &w.ChannelSID, "endpoint_id": &w.EndpointID,
	}
	for _, name := range names {
		if known[name] == nil {
			add(name, "unknown field")
		}
	}
	for _, name := range eventMembers {
		v, ok := members[name]
		if !ok || string(v) == "null" {
			continue
		}
		if len(v) == 0 || v[0] != '"' {
			add(name, "must be a JSON string")
			continue
		}
		if !ValidJSONText(v) {
			add(name, "must be valid UTF-8")
			continue
		}
		if err := json.Unmarshal(v, known[name]); err != nil {
			add(name, "must be a JSON string")
		}
	}
	return w, errs, reported, false, nil
}

// ValidJSONText reports whether raw JSON text is valid UTF-8 and holds no
// \u escape of a lone surrogate. encoding/json silently turns both into
// U+FFFD; the contract wants them refused.
func ValidJSONText(raw []byte) bool {
	if !utf8.Valid(raw) {
		return false
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++
		if i >= len(raw) || raw[i] != 'u' {
			continue // \" \\ \n …; a backslash only appears inside strings
		}
		r, ok := hex4(raw, i+1)
		if !ok {
			return false
		}
		i += 4
		switch {
		case r >= 0xDC00 && r <= 0xDFFF: // a low surrogate without a high one
			return false
		case r >= 0xD800 && r <= 0xDBFF: // a high surrogate: a low one must follow
			if i+2 >= len(raw) || raw[i+1] != '\\' || raw[i+2] != 'u' {
				return false
			}
			lo, ok := hex4(raw, i+3)
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return false
			}
			i += 6
		}
	}
	return true
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c-'a') + 10
		case c >= 'A' && c <= 'F':
			r |= rune(c-'A') + 10
		default:
			return 0, false
		}
	}
	return r, true
}
