package console

import "testing"

func TestGroupDigits(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0", "0"}, {"999", "999"}, {"1000", "1,000"}, {"1234567", "1,234,567"},
		{"47.02", "47.02"}, {"1234.5678", "1,234.5678"}, {"-1234", "-1,234"},
		{"123456.00", "123,456.00"}, {"1.0008278145695364", "1.0008278145695364"}, {"1e+21", "1e+21"},
	} {
		if got := groupDigits(tc.in); got != tc.want {
			t.Errorf("groupDigits(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPercent(t *testing.T) {
	for _, tc := range []struct {
		part, whole int64
		want        string
	}{{0, 0, "0%"}, {0, 10, "0%"}, {1, 1208, "under 1%"}, {1, 200, "1%"}, {1207, 1208, "100%"}, {1, 3, "33%"}} {
		if got := percent(tc.part, tc.whole); got != tc.want {
			t.Errorf("percent(%d, %d) = %q, want %q", tc.part, tc.whole, got, tc.want)
		}
	}
}
