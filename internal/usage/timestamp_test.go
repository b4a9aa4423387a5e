package usage

import (
	"encoding/json"
	"testing"
	"time"
)

func TestParseTimestamp(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time // zero: refused
	}{
		{"2026-10-05T12:00:00Z", time.Date(2026, 10, 5, 12, 0, 0, 0, time.UTC)},
		{"2026-10-05T12:00:00.123456789Z", time.Date(2026, 10, 5, 12, 0, 0, 123456789, time.UTC)},
		{"2026-10-05T12:00:00+23:59", time.Date(2026, 10, 4, 12, 1, 0, 0, time.UTC)},
		{"2026-10-05T12:00:00-23:59", time.Date(2026, 10, 6, 11, 59, 0, 0, time.UTC)},
		{"2026-10-05T12:00:00+00:00", time.Date(2026, 10, 5, 12, 0, 0, 0, time.UTC)},
		{"2026-10-05T12:00:00+24:00", time.Time{}},
		{"2026-10-05T12:00:00-24:00", time.Time{}},
		{"2026-10-05T12:00:00+23:60", time.Time{}},
		{"2026-10-05T12:00:00+00:99", time.Time{}},
		{"2026-10-05T12:00:00+99:00", time.Time{}},
		{"2026-10-05T12:00:00", time.Time{}},
		{"2026-10-05 12:00:00Z", time.Time{}},
		{"", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTimestamp(tt.in)
			if tt.want.IsZero() {
				if err == nil {
					t.Fatalf("got %v, want an error", got)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestCheckAccountName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"Acme", true},
		{"Ácme @ Corp / EU", true},
		{" Acme ", true},
		{"", false},
		{"   ", false},
		{"Acme\tCorp", false},
		{"Acme\t", false},
		{"Acme\r\nCorp", false},
		{"Acme\x00", false},
		{"Acme\x7f", false},
		{"Acme\u0085", false},
		{"Acme\xff", false},
		{string(make([]byte, 257)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if msg := CheckAccountName(tt.name); (msg == "") != tt.ok {
				t.Fatalf("CheckAccountName(%q) = %q, want ok %v", tt.name, msg, tt.ok)
			}
		})
	}
}

func TestFieldErrorJSON(t *testing.T) {
	tests := []struct {
		fe   FieldError
		want string
	}{
		{FieldError{Index: 3, Field: "source", Message: "m"}, `{"index":3,"field":"source","message":"m"}`},
		{FieldError{Index: 0, Field: "id", Message: "m"}, `{"index":0,"field":"id","message":"m"}`},
		{FieldError{Index: -1, Field: "events", Message: "m"}, `{"field":"events","message":"m"}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.fe)
		if err != nil || string(b) != tt.want {
			t.Fatalf("marshal %+v: %s, %v; want %s", tt.fe, b, err, tt.want)
		}
		var back FieldError
		if err := json.Unmarshal(b, &back); err != nil || back != tt.fe {
			t.Fatalf("unmarshal %s: %+v, %v", b, back, err)
		}
	}
}
