package reports

import (
	"encoding/csv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSafeCell(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"alice@example.com", "alice@example.com"},
		{`=HYPERLINK("http://x","y")`, `'=HYPERLINK("http://x","y")`},
		{"+15551234567", "'+15551234567"},
		{"-1", "'-1"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\tx", "'\tx"},
		{"\rx", "'\rx"},
		{"a=b", "a=b"},
		{"42", "42"},
	}
	for _, tt := range tests {
		if got := SafeCell(tt.in); got != tt.want {
			t.Errorf("SafeCell(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCSVWriterRoundTrip(t *testing.T) {
	var b strings.Builder
	w, err := NewCSVWriter(&b, "service_sid", "identity")
	if err != nil {
		t.Fatal(err)
	}
	rows := [][]string{{"IS1", `a,b "c"` + "\nd"}, {"IS1", "=1+1"}, {"IS2", "用户"}}
	for _, r := range rows {
		if err := w.Write(r...); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "service_sid,identity\r\n") {
		t.Fatalf("header: %q", b.String())
	}
	got, err := csv.NewReader(strings.NewReader(b.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[1][1] != `a,b "c"`+"\nd" || got[2][1] != "'=1+1" || got[3][1] != "用户" {
		t.Fatalf("read back %q", got)
	}
}

// FuzzCSV checks that any cell survives RFC 4180 quoting, neutralized when
// a spreadsheet would run it as a formula.
func FuzzCSV(f *testing.F) {
	for _, s := range []string{"", "a,b", `"q"`, "line\nbreak", "=1+1", "+1", "-1", "@x", "\tx", "\rx", "用户"} {
		f.Add(s, "plain")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if !utf8.ValidString(a) || !utf8.ValidString(b) {
			return // CSV is UTF-8; identities are valid UTF-8
		}
		var out strings.Builder
		w, err := NewCSVWriter(&out, "a", "b")
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(a, b); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		rows, err := csv.NewReader(strings.NewReader(out.String())).ReadAll()
		if err != nil {
			t.Fatalf("unreadable CSV %q: %v", out.String(), err)
		}
		// encoding/csv's reader drops carriage returns inside quoted fields;
		// compare without them.
		norm := func(s string) string { return strings.ReplaceAll(s, "\r", "") }
		if len(rows) != 2 || norm(rows[1][0]) != norm(SafeCell(a)) || norm(rows[1][1]) != norm(SafeCell(b)) {
			t.Fatalf("wrote %q %q, read %q", a, b, rows)
		}
		for _, cell := range []string{SafeCell(a), SafeCell(b)} {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Fatalf("cell %q would run as a formula", cell)
			}
		}
	})
}
