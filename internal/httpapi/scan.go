package httpapi

import (
	"strings"
	"unicode/utf8"
)

// The scanner reads the common shape of an event body without reflection:
// objects of the event fields, spelled exactly, whose values are strings
// without escapes, or null. It gives up (ok false) on anything else (an
// escape, a duplicate or unknown member, a number, a nesting, a syntax
// error) and the caller decodes with encoding/json, which handles every
// valid body and names every problem. What it accepts, encoding/json
// decodes to the same events (FuzzScanBatch checks it); it is several times
// faster (BenchmarkDecodeBatch), and decoding was the largest share of the
// server's CPU during ingestion.
//
// It reads a string, so that the fields of every event are substrings of
// one allocation instead of one allocation each.
type scanner struct {
	s string
	i int
}

func (p *scanner) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// byte consumes c after optional whitespace.
func (p *scanner) byte(c byte) bool {
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str reads a string without escapes or control characters, after
// optional whitespace.
func (p *scanner) str() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return p.s[start : p.i-1], true
		case c == '\\' || c < 0x20:
			return "", false
		}
		p.i++
	}
	return "", false
}

// value reads a member's value: a plain string, or null (absent).
func (p *scanner) value() (string, bool) {
	p.ws()
	if strings.HasPrefix(p.s[p.i:], "null") {
		p.i += len("null")
		return "", true
	}
	return p.str()
}

// event reads one event object.
func (p *scanner) event(w *wireEvent) bool {
	if !p.byte('{') {
		return false
	}
	if p.byte('}') {
		return true
	}
	var seen uint16
	for {
		key, ok := p.str()
		if !ok || !p.byte(':') {
			return false
		}
		v, ok := p.value()
		if !ok {
			return false
		}
		var field *string
		var bit uint16
		switch key {
		case "id":
			field, bit = &w.ID, 1<<0
		case "activity":
			field, bit = &w.Activity, 1<<1
		case "source":
			field, bit = &w.Source, 1<<2
		case "service_sid":
			field, bit = &w.ServiceSID, 1<<3
		case "identity":
			field, bit = &w.Identity, 1<<4
		case "occurred_at":
			field, bit = &w.OccurredAt, 1<<5
		case "actor":
			field, bit = &w.Actor, 1<<6
		case "channel_sid":
			field, bit = &w.ChannelSID, 1<<7
		case "endpoint_id":
			field, bit = &w.EndpointID, 1<<8
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		*field = v
		if p.byte('}') {
			return true
		}
		if !p.byte(',') {
			return false
		}
	}
}

// scanBatch reads {"events": [...]} holding 1 to MaxBatch events.
func scanBatch(body string) ([]wireEvent, bool) {
	if !utf8.ValidString(body) {
		return nil, false
	}
	p := &scanner{s: body}
	if !p.byte('{') {
		return nil, false
	}
	if key, ok := p.str(); !ok || key != "events" || !p.byte(':') || !p.byte('[') {
		return nil, false
	}
	events := make([]wireEvent, 0, min(len(body)/128+1, MaxBatch))
	for {
		if len(events) == MaxBatch {
			return nil, false
		}
		events = append(events, wireEvent{})
		if !p.event(&events[len(events)-1]) {
			return nil, false
		}
		if p.byte(']') {
			break
		}
		if !p.byte(',') {
			return nil, false
		}
	}
	if !p.byte('}') {
		return nil, false
	}
	p.ws()
	return events, p.i == len(p.s)
}

// scanEvent reads a line holding one event object.
func scanEvent(line string) (wireEvent, bool) {
	var w wireEvent
	if !utf8.ValidString(line) {
		return w, false
	}
	p := &scanner{s: line}
	if !p.event(&w) {
		return w, false
	}
	p.ws()
	return w, p.i == len(p.s)
}
