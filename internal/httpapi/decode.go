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

	"github.com/labstack/echo/v4"

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

// wireEvent is an event as posted; usage owns its rules, so that the Go
// client judges an event as the server does.
type wireEvent = usage.EventJSON

// decodeEvent decodes and validates one event. It returns usage.ErrNotJSON
// (wrapped) for malformed JSON, else the event and every rule it breaks.
// The scanner reads the common shape; what it gives up on goes through
// encoding/json, and what that refuses is diagnosed member by member.
func decodeEvent(raw []byte, index int, now time.Time, errs []usage.FieldError) (usage.Event, []usage.FieldError, error) {
	w, fast := scanEvent(string(raw))
	if !fast {
		w, fast = usage.DecodeEventJSON(raw)
	}
	fast = fast && w.Complete()
	var bad map[string]bool // fields whose JSON is already reported
	if !fast {
		var notObject bool
		var err error
		w, errs, bad, notObject, err = usage.DiagnoseEvent(raw, index, errs)
		if err != nil {
			return usage.Event{}, errs, fmt.Errorf("event %d: %w", index, err)
		}
		if notObject {
			return usage.Event{}, errs, nil
		}
	}
	e, errs := w.Event(index, now, errs, bad)
	return e, errs, nil
}

// decodeBatch reads a JSON body {"events": [...]}.
func decodeBatch(body io.Reader, now time.Time) (*usage.EventList, error) {
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
	src := &usage.EventList{Events: make([]usage.Event, 0, len(raws))}
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
func decodeBatchFast(raw []byte, now time.Time) (*usage.EventList, bool) {
	wires, ok := scanBatch(string(raw))
	if !ok {
		if wires, ok = decodeWireBatch(raw); !ok {
			return nil, false
		}
	}
	src := &usage.EventList{Events: make([]usage.Event, 0, len(wires))}
	for i := range wires {
		if !wires[i].Complete() {
			return nil, false
		}
		e, errs := wires[i].Event(i, now, nil, nil)
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
	if !usage.ValidJSONText(raw) {
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
