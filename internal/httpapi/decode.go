package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// Body limits of §4.
const (
	MaxJSONBody    = 1 << 20  // 1 MiB
	MaxNDJSONBody  = 64 << 20 // 64 MiB
	MaxBatch       = 1000
	MaxNDJSONLines = 100_000
	// maxLine bounds one NDJSON line. A valid event is far smaller; the
	// bound keeps a hostile line from being buffered whole.
	maxLine = 1 << 20
)

// decodeJSON reads a small JSON request body into v: malformed JSON is 400,
// an unknown field or a wrong type 422, an oversized body 413.
func decodeJSON(c echo.Context, v any) error {
	return decodeFrom(http.MaxBytesReader(c.Response(), c.Request().Body, MaxJSONBody), v)
}

// decodeFrom is decodeJSON on a body already bounded.
func decodeFrom(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	return finishBody(dec, r)
}

// finishBody reads what follows the JSON value: only whitespace may, and the
// body limit still applies to it.
func finishBody(dec *json.Decoder, r io.Reader) error {
	rest := io.MultiReader(dec.Buffered(), r)
	buf := make([]byte, 512)
	for {
		n, err := rest.Read(buf)
		if len(bytes.TrimLeft(buf[:n], " \t\r\n")) > 0 {
			return errMalformed("the body holds more than one JSON value")
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// jsonError classifies an encoding/json error.
func jsonError(err error) error {
	var mbe *http.MaxBytesError
	var be *bodyError
	var verr *usage.ValidationError
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &mbe), errors.As(err, &be):
		return err
	case errors.As(err, &verr): // a field's own UnmarshalJSON judged it (a rate card's unit_price)
		return verr
	case errors.As(err, &ute):
		return usage.Invalid(ute.Field, "must be a JSON %s", jsonKind(ute.Type.Kind().String()))
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errMalformed(err.Error())
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return usage.Invalid(strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "unknown field")
	}
	return errMalformed(err.Error())
}

func jsonKind(k string) string {
	switch k {
	case "slice":
		return "array"
	case "struct", "map":
		return "object"
	case "int", "int64", "float64":
		return "number"
	}
	return k
}

// wireEvent is an event as posted. Fields are raw so that each one can be
// judged on its own and every problem of the event reported at once.
type wireEvent struct {
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

var eventFields = map[string]bool{
	"id": true, "activity": true, "source": true, "service_sid": true, "identity": true,
	"occurred_at": true, "actor": true, "channel_sid": true, "endpoint_id": true,
}

// errNotJSON marks an event that is not valid JSON at all: the body is
// malformed (400), not merely invalid (422).
var errNotJSON = errors.New("not valid JSON")

// decodeEvent decodes and validates one event. It returns errNotJSON (wrapped)
// for malformed JSON, else the event and every rule it breaks.
func decodeEvent(raw []byte, index int, now time.Time, errs []usage.FieldError) (usage.Event, []usage.FieldError, error) {
	w, fast := scanEvent(string(raw))
	if !fast {
		w, fast = decodeWireEvent(raw)
	}
	fast = fast && w.complete()
	var bad map[string]bool // fields whose JSON is already reported
	if !fast {
		var notObject bool
		var err error
		w, errs, bad, notObject, err = diagnoseEvent(raw, index, errs)
		if err != nil || notObject {
			return usage.Event{}, errs, err
		}
	}
	return fromWire(w, index, now, errs, bad)
}

// decodeWireEvent decodes one event with encoding/json, for what the
// scanner gives up on; ok is false if the event needs diagnosing.
func decodeWireEvent(raw []byte) (w wireEvent, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	// Only white space may follow the object: dec.More is false before a
	// stray '}' or ']', which would let `{…}}` through.
	ok = dec.Decode(&w) == nil && len(bytes.TrimSpace(raw[dec.InputOffset():])) == 0 && validJSONText(raw)
	return w, ok
}

// complete reports whether every required field is there.
func (w *wireEvent) complete() bool {
	return w.ID != "" && w.Activity != "" && w.Source != "" && w.ServiceSID != "" && w.Identity != "" && w.OccurredAt != ""
}

// fromWire turns a decoded event into a usage.Event and appends every rule
// it breaks, except for fields in bad, already reported.
func fromWire(w wireEvent, index int, now time.Time, errs []usage.FieldError, bad map[string]bool) (usage.Event, []usage.FieldError, error) {
	before := len(errs)
	e := usage.Event{
		ID: w.ID, Activity: usage.Activity(w.Activity), Source: usage.Source(w.Source),
		ServiceSID: w.ServiceSID, Identity: w.Identity,
		Actor: w.Actor, ChannelSID: w.ChannelSID, EndpointID: w.EndpointID,
	}
	if w.OccurredAt != "" {
		t, err := usage.ParseTimestamp(w.OccurredAt)
		if err != nil {
			errs = append(errs, usage.FieldError{Index: index, Field: "occurred_at",
				Message: "must be an RFC 3339 timestamp such as 2026-10-05T12:00:00Z"})
			if bad == nil {
				bad = map[string]bool{}
			}
			bad["occurred_at"] = true
		}
		e.OccurredAt = t.UTC()
	}
	for _, fe := range e.Validate(index, now, nil) {
		if !bad[fe.Field] {
			errs = append(errs, fe)
		}
	}
	if len(errs) > before {
		return usage.Event{}, errs, nil
	}
	return e, errs, nil
}

// diagnoseEvent is the slow path: it looks at each member on its own to name
// every unknown field, wrong type and invalid UTF-8, and returns the fields it
// reported so that validation does not report them again.
func diagnoseEvent(raw []byte, index int, errs []usage.FieldError) (w wireEvent, _ []usage.FieldError, bad map[string]bool, notObject bool, err error) {
	trimmed := bytes.TrimSpace(raw)
	if !json.Valid(trimmed) {
		return w, errs, nil, false, fmt.Errorf("event %d: %w", index, errNotJSON)
	}
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return w, append(errs, usage.FieldError{Index: index, Field: "", Message: "an event must be a JSON object"}), nil, true, nil
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &members); err != nil {
		return w, errs, nil, false, fmt.Errorf("event %d: %w", index, errNotJSON)
	}
	bad = map[string]bool{}
	add := func(field, msg string) {
		bad[field] = true
		errs = append(errs, usage.FieldError{Index: index, Field: field, Message: msg})
	}
	for _, name := range sortedKeys(members) {
		if !eventFields[name] {
			add(name, "unknown field")
		}
	}
	values := map[string]*string{
		"id": &w.ID, "activity": &w.Activity, "source": &w.Source, "service_sid": &w.ServiceSID,
		"identity": &w.Identity, "occurred_at": &w.OccurredAt, "actor": &w.Actor,
		"channel_sid": &w.ChannelSID, "endpoint_id": &w.EndpointID,
	}
	for _, name := range []string{"id", "activity", "source", "service_sid", "identity", "occurred_at", "actor", "channel_sid", "endpoint_id"} {
		v, ok := members[name]
		if !ok || string(v) == "null" {
			continue
		}
		if len(v) == 0 || v[0] != '"' {
			add(name, "must be a JSON string")
			continue
		}
		if !validJSONText(v) {
			add(name, "must be valid UTF-8")
			continue
		}
		if err := json.Unmarshal(v, values[name]); err != nil {
			add(name, "must be a JSON string")
		}
	}
	return w, errs, bad, false, nil
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ { // tiny maps: insertion sort
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// validJSONText reports whether raw JSON text is valid UTF-8 and holds no
// \u escape of a lone surrogate. encoding/json silently turns both into
// U+FFFD; the contract wants them refused.
func validJSONText(raw []byte) bool {
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
		case r >= 0xDC00 && r <= 0xDFFF: // low surrogate without a high one
			return false
		case r >= 0xD800 && r <= 0xDBFF: // high surrogate: a low one must follow
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

// decodeBatch reads a JSON body {"events": [...]}.
func decodeBatch(body io.Reader, now time.Time) (*postgres.Batch, error) {
	raw, err := io.ReadAll(body) // at most MaxJSONBody, by the caller's MaxBytesReader
	if err != nil {
		return nil, err
	}
	if src, ok := decodeBatchFast(raw, now); ok {
		return src, nil
	}
	var req struct {
		Events *[]json.RawMessage `json:"events"`
	}
	body = bytes.NewReader(raw)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, jsonError(err)
	}
	if err := finishBody(dec, body); err != nil {
		return nil, err
	}
	if req.Events == nil {
		return nil, usage.Invalid("events", "is required")
	}
	raws := *req.Events
	if len(raws) == 0 || len(raws) > MaxBatch {
		return nil, usage.Invalid("events", "must hold 1 to 1000 events, not %d", len(raws))
	}
	var errs []usage.FieldError
	src := &postgres.Batch{Events: make([]usage.Event, 0, len(raws))}
	for i, raw := range raws {
		var e usage.Event
		var err error
		n := len(errs)
		e, errs, err = decodeEvent(raw, i, now, errs)
		if err != nil {
			return nil, errMalformed(err.Error())
		}
		if len(errs) == n {
			src.Events = append(src.Events, e)
		}
	}
	if len(errs) > 0 {
		return nil, &usage.ValidationError{Errors: errs}
	}
	return src, nil
}

// decodeBatchFast decodes a well-formed batch in one pass. It gives up
// (ok false) at the first sign of trouble, so that the slow path can name
// every problem precisely.
func decodeBatchFast(raw []byte, now time.Time) (*postgres.Batch, bool) {
	wires, ok := scanBatch(string(raw))
	if !ok {
		if wires, ok = decodeWireBatch(raw); !ok {
			return nil, false
		}
	}
	src := &postgres.Batch{Events: make([]usage.Event, 0, len(wires))}
	for i := range wires {
		if !wires[i].complete() {
			return nil, false
		}
		e, errs, _ := fromWire(wires[i], i, now, nil, nil)
		if len(errs) > 0 {
			return nil, false
		}
		src.Events = append(src.Events, e)
	}
	return src, true
}

// decodeWireBatch decodes a batch with encoding/json, for what the scanner
// gives up on; ok is false if the batch needs diagnosing.
func decodeWireBatch(raw []byte) ([]wireEvent, bool) {
	if !validJSONText(raw) {
		return nil, false
	}
	var req struct {
		Events []wireEvent `json:"events"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if dec.Decode(&req) != nil || dec.More() || len(req.Events) == 0 || len(req.Events) > MaxBatch {
		return nil, false
	}
	if rest := bytes.TrimSpace(raw[dec.InputOffset():]); len(rest) > 0 {
		return nil, false
	}
	return req.Events, true
}

// ndjsonSource decodes an NDJSON body line by line as PostgreSQL consumes
// it, so a 64 MiB backfill is never held whole in memory.
type ndjsonSource struct {
	r     *bufio.Reader
	now   time.Time
	index int // events seen so far, valid or not
	lines int // physical lines read, blank ones included, for messages
	errs  []usage.FieldError
}

func newNDJSONSource(body io.Reader, now time.Time) *ndjsonSource {
	return &ndjsonSource{r: bufio.NewReaderSize(body, 64<<10), now: now}
}

func (s *ndjsonSource) Next() (usage.Event, error) {
	for {
		line, err := s.readLine()
		if err == io.EOF && len(line) == 0 {
			if s.index == 0 && len(s.errs) == 0 {
				s.errs = append(s.errs, usage.FieldError{Index: -1, Field: "events", Message: "the body holds no event"})
			}
			return usage.Event{}, io.EOF
		}
		if err != nil && err != io.EOF {
			return usage.Event{}, err
		}
		s.lines++
		if len(bytes.TrimSpace(line)) == 0 {
			continue // blank lines are ignored: neither events nor lines of the limit
		}
		if s.index == MaxNDJSONLines {
			return usage.Event{}, errTooLarge(fmt.Sprintf("an NDJSON body holds at most %d lines", MaxNDJSONLines))
		}
		index := s.index
		s.index++
		n := len(s.errs)
		e, errs, derr := decodeEvent(line, index, s.now, s.errs)
		s.errs = errs
		if derr != nil {
			return usage.Event{}, errMalformed(fmt.Sprintf("line %d: %v", s.lines, derr))
		}
		if len(s.errs) == n {
			return e, nil
		}
	}
}

// readLine returns the next line without its newline, refusing lines longer
// than maxLine instead of buffering them.
func (s *ndjsonSource) readLine() ([]byte, error) {
	var buf []byte
	for {
		chunk, err := s.r.ReadSlice('\n')
		if len(buf)+len(chunk) > maxLine {
			return nil, errTooLarge(fmt.Sprintf("an NDJSON line is longer than %d bytes", maxLine))
		}
		if err == bufio.ErrBufferFull {
			buf = append(buf, chunk...)
			continue
		}
		if buf != nil {
			buf = append(buf, chunk...)
		} else {
			buf = chunk
		}
		return bytes.TrimSuffix(bytes.TrimSuffix(buf, []byte("\n")), []byte("\r")), err
	}
}

func (s *ndjsonSource) Err() error {
	if len(s.errs) > 0 {
		return &usage.ValidationError{Errors: s.errs}
	}
	return nil
}
