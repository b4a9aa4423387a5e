package usage

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"sort"
	"strconv"
	"time"
)

// Report statuses (§6).
const (
	StatusProvisional = "provisional"
	StatusFinal       = "final"
)

// ServiceFigures are one service's figures in a monthly report.
type ServiceFigures struct {
	ServiceSID    string
	ActiveUsers   int64
	NewUsers      int64 // first activity ever in this month
	RESTOnlyUsers int64 // only create/update this month: billed without an SDK
	// ByFirstActivity counts users by their first activity of the month; it
	// sums to ActiveUsers.
	ByFirstActivity map[Activity]int64
}

// Figures are what a monthly report counts, before versioning and pricing.
type Figures struct {
	ActiveUsers        int64 // users (service, identity), summed over services
	DistinctIdentities int64 // identities, whatever their service
	Services           []ServiceFigures
	EventsThrough      *time.Time // latest received_at included; nil with no events
}

// Report is a monthly report of one account: a stored final version, or
// provisional figures computed now (Version nil).
type Report struct {
	AccountSID  string
	Month       Month
	Version     *int
	Status      string
	Supersedes  *int
	AddedUsers  *int64
	GeneratedAt time.Time
	Checksum    string
	Figures
	// RateCard is the rate card in force for this report as stored JSON, or
	// nil when the account has none.
	RateCard []byte
}

// RosterEntry is one active user of a month: the row that explains why the
// user is billed.
type RosterEntry struct {
	ServiceSID    string
	Identity      string
	FirstActivity Activity
	FirstEventID  string // the event that made the user active this month
	FirstActiveAt time.Time
	LastActiveAt  time.Time
	Events        int64
}

// Checksum computes a report's checksum: the lowercase hex SHA-256 of a
// canonical encoding that an auditor can rebuild from the report's JSON and
// its roster CSV or JSON.
//
// The encoding is a sequence of lines, each ending in "\n", whose fields are
// separated by "\t"; every string field is written as its length in bytes,
// ":", and its bytes (a netstring without the trailing comma), so no
// character in an identity or event id can be confused with a separator.
// Numbers are base-10, times RFC 3339 in UTC with nanoseconds
// (2006-01-02T15:04:05.999999999Z, trailing zeros dropped), absent values
// empty:
//
//	tally-report-v1
//	R <account_sid> <month YYYY-MM> <version or empty> <events_through> <active_users> <distinct_identities>
//	S <service_sid> <active_users> <new_users> <rest_only_users> <activity>=<n>,… (activities in the
//	  contract's order create, update, authenticate, send, join, add, invite, remove; zero counts left out)
//	U <service_sid> <identity> <first_activity> <first_event_id> <first_active_at> <last_active_at> <events>
//
// with one S line per service in byte order of service_sid, then one U line
// per roster entry in byte order of (service_sid, identity). Billing is left
// out: it is derived from active_users and the stored rate card.
type Checksum struct {
	h       hash.Hash
	buf     []byte
	scratch []byte // a field being formatted, before its length is known
}

// NewChecksum starts the checksum of a report with its figures. Services are
// sorted in place.
func NewChecksum(accountSID string, m Month, version *int, f Figures) *Checksum {
	c := &Checksum{h: sha256.New()}
	c.buf = append(c.buf, "tally-report-v1\n"...)
	v := ""
	if version != nil {
		v = strconv.Itoa(*version)
	}
	through := ""
	if f.EventsThrough != nil {
		through = f.EventsThrough.UTC().Format(time.RFC3339Nano)
	}
	c.line("R", accountSID, m.String(), v, through, strconv.FormatInt(f.ActiveUsers, 10), strconv.FormatInt(f.DistinctIdentities, 10))
	sort.Slice(f.Services, func(i, j int) bool { return f.Services[i].ServiceSID < f.Services[j].ServiceSID })
	for _, s := range f.Services {
		var acts []byte
		for _, a := range Activities {
			if n := s.ByFirstActivity[a]; n > 0 {
				if len(acts) > 0 {
					acts = append(acts, ',')
				}
				acts = append(acts, a...)
				acts = append(acts, '=')
				acts = strconv.AppendInt(acts, n, 10)
			}
		}
		c.line("S", s.ServiceSID, strconv.FormatInt(s.ActiveUsers, 10), strconv.FormatInt(s.NewUsers, 10),
			strconv.FormatInt(s.RESTOnlyUsers, 10), string(acts))
	}
	return c
}

// Add adds the next roster entry; entries must come in roster order. It
// encodes straight into the buffer, without a string per time or count: a
// million-user roster passes through here once per report
// (BenchmarkChecksumAdd: 705 → 555 ns, 2 → 0 allocations).
func (c *Checksum) Add(e RosterEntry) {
	c.buf = append(c.buf, 'U')
	c.field(e.ServiceSID)
	c.field(e.Identity)
	c.field(string(e.FirstActivity))
	c.field(e.FirstEventID)
	c.scratch = e.FirstActiveAt.UTC().AppendFormat(c.scratch[:0], time.RFC3339Nano)
	c.buf = appendField(c.buf, c.scratch)
	c.scratch = e.LastActiveAt.UTC().AppendFormat(c.scratch[:0], time.RFC3339Nano)
	c.buf = appendField(c.buf, c.scratch)
	c.scratch = strconv.AppendInt(c.scratch[:0], e.Events, 10)
	c.buf = appendField(c.buf, c.scratch)
	c.end()
}

// Sum returns the lowercase hex checksum.
func (c *Checksum) Sum() string {
	c.flush()
	return hex.EncodeToString(c.h.Sum(nil))
}

func (c *Checksum) line(kind string, fields ...string) {
	c.buf = append(c.buf, kind...)
	for _, f := range fields {
		c.field(f)
	}
	c.end()
}

// field appends one string field: a tab, its length, ":", its bytes.
func (c *Checksum) field(f string) { c.buf = appendField(c.buf, f) }

func appendField[S string | []byte](buf []byte, f S) []byte {
	buf = append(buf, '\t')
	buf = strconv.AppendInt(buf, int64(len(f)), 10)
	buf = append(buf, ':')
	return append(buf, f...)
}

// end ends a line, and hands the buffer to the hash once it is large.
func (c *Checksum) end() {
	c.buf = append(c.buf, '\n')
	if len(c.buf) > 32<<10 {
		c.flush()
	}
}

func (c *Checksum) flush() {
	_, _ = io.Writer(c.h).Write(c.buf)
	c.buf = c.buf[:0]
}
