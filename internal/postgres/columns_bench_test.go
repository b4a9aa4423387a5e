package postgres

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

func BenchmarkEncodeColumn(b *testing.B) {
	const n = 1000
	strs := make([]string, n)
	times := make([]time.Time, n)
	for i := range strs {
		strs[i] = fmt.Sprintf("evt-%08d-aaaaaaaaaaaaaaaaaaaa", i)
		times[i] = time.Date(2026, 11, 5, 12, 0, i, 0, time.UTC)
	}
	cases := []struct {
		name string
		oid  uint32
		v    any
	}{
		{"text/slice", pgtype.TextArrayOID, strs},
		{"text/column", pgtype.TextArrayOID, columnOf(strs, func(s string) textElem { return textElem(s) })},
		{"timestamptz/slice", pgtype.TimestamptzArrayOID, times},
		{"timestamptz/column", pgtype.TimestamptzArrayOID, columnOf(times, func(t time.Time) timestamptzElem { return timestamptzElem(t) })},
		{"date/slice", pgtype.DateArrayOID, times},
		{"date/column", pgtype.DateArrayOID, columnOf(times, func(t time.Time) dateElem { return dateElem(t) })},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			m := pgtype.NewMap()
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				var err error
				buf, err = m.Encode(c.oid, pgtype.BinaryFormatCode, c.v, buf[:0])
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
