package httpapi

import (
	"unicode/utf8"

	"github.com/tallyhq/tally/internal/jsonscan"
)

// The scanner reads the common shape of an event body (see jsonscan):
// objects of the event fields, spelled exactly, whose values are strings
// without escapes, or null. It gives up (ok false) on anything else (an
// escape, a duplicate or unknown member, a number, a nesting, a syntax
// error) and the caller decodes with encoding/json. What it accepts,
// encoding/json decodes to the same events (FuzzScanBatch checks it); it is
// several times faster (BenchmarkDecodeBatch), and decoding was the largest
// share of the server's CPU during ingestion.

// readEvent reads one event object.
func readEvent(p *jsonscan.Scanner, w *wireEvent) bool {
	var seen uint16
	return p.Object(func(key string) bool {
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
		if p.Null() {
			return true
		}
		v, ok := p.Str()
		*field = v
		return ok
	})
}

// scanBatch reads {"events": [...]} holding 1 to MaxBatch events.
func scanBatch(body string) ([]wireEvent, bool) {
	if !utf8.ValidString(body) {
		return nil, false
	}
	p := jsonscan.New(body)
	if !p.Byte('{') {
		return nil, false
	}
	if key, ok := p.Str(); !ok || key != "events" || !p.Byte(':') || !p.Byte('[') {
		return nil, false
	}
	events := make([]wireEvent, 0, min(len(body)/128+1, MaxBatch))
	for {
		if len(events) == MaxBatch {
			return nil, false
		}
		events = append(events, wireEvent{})
		if !readEvent(p, &events[len(events)-1]) {
			return nil, false
		}
		if p.Byte(']') {
			break
		}
		if !p.Byte(',') {
			return nil, false
		}
	}
	if !p.Byte('}') {
		return nil, false
	}
	return events, p.End()
}

// scanEvent reads a line holding one event object.
func scanEvent(line string) (wireEvent, bool) {
	var w wireEvent
	if !utf8.ValidString(line) {
		return w, false
	}
	p := jsonscan.New(line)
	if !readEvent(p, &w) {
		return w, false
	}
	return w, p.End()
}
