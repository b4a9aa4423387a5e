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
		{"text", pgtype.TextArrayOID, strs, columnOf(strs, func(s string) textElem { return textElem(s) })},
		{"text empty", pgtype.TextArrayOID, []string{}, column[textElem]{}},
		{"text nil", pgtype.TextArrayOID, []string(nil), column[textElem](nil)},
		{"timestamptz", pgtype.TimestamptzArrayOID, times, columnOf(times, func(t time.Time) timestamptzElem { return timestamptzElem(t) })},
		{"timestamptz empty", pgtype.TimestamptzArrayOID, []time.Time{}, column[timestamptzElem]{}},
		{"timestamptz nil", pgtype.TimestamptzArrayOID, []time.Time(nil), column[timestamptzElem](nil)},
		{"date", pgtype.DateArrayOID, times, columnOf(times, func(t time.Time) dateElem { return dateElem(t) })},
		{"date empty", pgtype.DateArrayOID, []time.Time{}, column[dateElem]{}},
		{"date nil", pgtype.DateArrayOID, []time.Time(nil), column[dateElem](nil)},
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

// columnOf converts a plain slice to a column, nil to nil.
func columnOf[T, E any](xs []T, conv func(T) E) column[E] {
	if xs == nil {
		return nil
	}
	c := make(column[E], len(xs))
	for i, x := range xs {
		c[i] = conv(x)
	}
	return c
}
