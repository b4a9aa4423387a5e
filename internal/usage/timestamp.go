package usage

import (
	"errors"
	"time"
)

// ParseTimestamp parses an RFC 3339 timestamp such as an event's
// occurred_at. It is time.Parse with time.RFC3339Nano, less what RFC 3339
// forbids and the time package lets through: an offset beyond ±23:59
// ("+24:00", "+23:60").
func ParseTimestamp(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	// time.Parse has checked the layout, so a numeric offset is the last
	// six bytes: ±hh:mm.
	if n := len(s); s[n-1] != 'Z' && s[n-1] != 'z' {
		hh := int(s[n-5]-'0')*10 + int(s[n-4]-'0')
		mm := int(s[n-2]-'0')*10 + int(s[n-1]-'0')
		if hh > 23 || mm > 59 {
			return time.Time{}, errOffset
		}
	}
	return t, nil
}

var errOffset = errors.New("the time zone offset must be between -23:59 and +23:59")
