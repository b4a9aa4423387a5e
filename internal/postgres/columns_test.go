package postgres

import (
	"bytes"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// TestColumnsEncodeAsSlices holds each column type to what pgx writes for
// the plain slice it stands for, in both formats.
func TestColumnsEncodeAsSlices(t *testing.T) {
	times := []time.Time{
		time.Date(2026, 11, 5, 12, 30, 1, 123456000, time.UTC),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
	}
	strs := []string{"evt-1", "", "ünïcödé", `quote " and \ backslash`, "{braces,comma}", "NULL"}
	cases := []struct {
		name       string
		oid        uint32
		plain, col any
	}{
		{"text", pgtype.TextArrayOID, strs, textColumn(strs)},
		{"text empty", pgtype.TextArrayOID, []string{}, textColumn{}},
		{"text nil", pgtype.TextArrayOID, []string(nil), textColumn(nil)},
		{"timestamptz", pgtype.TimestamptzArrayOID, times, timestamptzColumn(times)},
		{"timestamptz empty", pgtype.TimestamptzArrayOID, []time.Time{}, timestamptzColumn{}},
		{"timestamptz nil", pgtype.TimestamptzArrayOID, []time.Time(nil), timestamptzColumn(nil)},
		{"date", pgtype.DateArrayOID, times, dateColumn(times)},
		{"date empty", pgtype.DateArrayOID, []time.Time{}, dateColumn{}},
		{"date nil", pgtype.DateArrayOID, []time.Time(nil), dateColumn(nil)},
	}
	m := pgtype.NewMap()
	for _, c := range cases {
		for _, format := range []int16{pgtype.BinaryFormatCode, pgtype.TextFormatCode} {
			want, err := m.Encode(c.oid, format, c.plain, nil)
			if err != nil {
				t.Fatalf("%s, format %d: encode the slice: %v", c.name, format, err)
			}
			got, err := m.Encode(c.oid, format, c.col, nil)
			if err != nil {
				t.Fatalf("%s, format %d: encode the column: %v", c.name, format, err)
			}
			if !bytes.Equal(got, want) || (got == nil) != (want == nil) {
				t.Errorf("%s, format %d: column encodes as %q, the slice as %q", c.name, format, got, want)
			}
		}
	}
}
