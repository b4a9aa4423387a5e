package reports

import (
	"encoding/csv"
	"strings"
	"testing"
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
