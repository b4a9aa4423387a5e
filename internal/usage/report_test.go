package usage

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"
)

// TestChecksumEncoding holds the checksum to the canonical encoding its doc
// comment (and the OpenAPI document) gives an auditor, written out by hand.
func TestChecksumEncoding(t *testing.T) {
	through := time.Date(2026, 11, 3, 10, 0, 0, 500_000_000, time.UTC)
	version := 2
	f := Figures{ActiveUsers: 3, DistinctIdentities: 2, EventsThrough: &through, Services: []ServiceFigures{
		{ServiceSID: "ISb", ActiveUsers: 1, NewUsers: 0, RESTOnlyUsers: 1, ByFirstActivity: map[Activity]int64{Create: 1}},
		{ServiceSID: "ISa", ActiveUsers: 2, NewUsers: 1, ByFirstActivity: map[Activity]int64{Send: 1, Authenticate: 1, Remove: 0}},
	}}
	c := NewChecksum("AC01", Month{Year: 2026, Month: time.October}, &version, f)
	c.Add(RosterEntry{ServiceSID: "ISa", Identity: "alice@example.com", FirstActivity: Authenticate, FirstEventID: "e\t1",
		FirstActiveAt: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), LastActiveAt: time.Date(2026, 10, 31, 23, 59, 59, 999_999_000, time.UTC), Events: 12})
	c.Add(RosterEntry{ServiceSID: "ISa", Identity: "bob", FirstActivity: Send, FirstEventID: "e2",
		FirstActiveAt: time.Date(2026, 10, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)), LastActiveAt: time.Date(2026, 10, 2, 3, 4, 5, 120_000_000, time.UTC), Events: 1})
	c.Add(RosterEntry{ServiceSID: "ISb", Identity: "alice@example.com", FirstActivity: Create, FirstEventID: "é",
		FirstActiveAt: time.Date(2026, 10, 9, 0, 0, 0, 0, time.UTC), LastActiveAt: time.Date(2026, 10, 9, 0, 0, 0, 0, time.UTC), Events: 1})
	want := "tally-report-v1\n" +
		"R\t4:AC01\t7:2026-10\t1:2\t22:2026-11-03T10:00:00.5Z\t1:3\t1:2\n" +
		"S\t3:ISa\t1:2\t1:1\t1:0\t21:authenticate=1,send=1\n" +
		"S\t3:ISb\t1:1\t1:0\t1:1\t8:create=1\n" +
		"U\t3:ISa\t17:alice@example.com\t12:authenticate\t3:e\t1\t20:2026-10-01T00:00:00Z\t27:2026-10-31T23:59:59.999999Z\t2:12\n" +
		"U\t3:ISa\t3:bob\t4:send\t2:e2\t20:2026-10-02T02:04:05Z\t23:2026-10-02T03:04:05.12Z\t1:1\n" +
		"U\t3:ISb\t17:alice@example.com\t6:create\t2:é\t20:2026-10-09T00:00:00Z\t20:2026-10-09T00:00:00Z\t1:1\n"
	sum := sha256.Sum256([]byte(want))
	if got := c.Sum(); got != hex.EncodeToString(sum[:]) {
		t.Fatalf("checksum %s, want the SHA-256 of\n%s", got, want)
	}
}

// BenchmarkChecksumAdd is the job's cost per roster entry in Go.
func BenchmarkChecksumAdd(b *testing.B) {
	c := NewChecksum("AC01", Month{Year: 2026, Month: time.October}, nil, Figures{})
	e := RosterEntry{ServiceSID: "IS00000000000000000000000000000001", Identity: "user-123456@example.com",
		FirstActivity: Send, FirstEventID: "evt-7f3a9c", FirstActiveAt: time.Date(2026, 10, 1, 0, 0, 0, 123_000, time.UTC),
		LastActiveAt: time.Date(2026, 10, 31, 0, 0, 0, 0, time.UTC), Events: 20}
	b.ReportAllocs()
	for b.Loop() {
		c.Add(e)
	}
}
