package usage

import "io"

// EventSource yields the events of one request body in order. The HTTP
// decoders implement it for JSON and NDJSON bodies, so that a store records
// a body without knowing its format; an NDJSON body is read while it is
// recorded, never held whole in memory.
type EventSource interface {
	// Next returns the next valid event, or io.EOF after the last one. An
	// invalid event is remembered by the source and skipped.
	Next() (Event, error)
	// Err reports, after Next returned io.EOF, why the body must be refused
	// as a whole (a *ValidationError), or nil.
	Err() error
}

// EventList is an EventSource whose events are all in memory and valid: a
// JSON batch, the events of token verifications. A store may record it
// differently from a stream, since it knows every event before it starts.
type EventList struct {
	Events []Event
	next   int
}

// Next implements EventSource.
func (l *EventList) Next() (Event, error) {
	if l.next >= len(l.Events) {
		return Event{}, io.EOF
	}
	l.next++
	return l.Events[l.next-1], nil
}

// Err implements EventSource: an EventList holds only valid events.
func (l *EventList) Err() error { return nil }

// IngestResult counts what recording one body did. Every event of the body
// is in exactly one of Accepted and Duplicates; Late counts the accepted
// events whose month already had a final version, each of which makes the
// month due for a revision.
type IngestResult struct {
	Accepted   int64
	Duplicates int64
	Late       int64
}
