package console

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
)

// Figures are shown for people, with thousands separators, but always as
// the API writes them: integers as integers, amounts as the API's decimal
// strings, the one float as encoding/json writes it. Removing the commas
// gives the API's figure back (§12).

// groupDigits puts a comma between groups of three digits of the integer
// part of a decimal text: "1234567.5" → "1,234,567.5", "-1234" → "-1,234".
func groupDigits(s string) string {
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	intPart, frac := s, ""
	if i := strings.IndexAny(s, ".eE"); i >= 0 {
		intPart, frac = s[:i], s[i:]
	}
	if len(intPart) <= 3 {
		return sign + intPart + frac
	}
	var b strings.Builder
	b.WriteString(sign)
	head := len(intPart) % 3
	if head > 0 {
		b.WriteString(intPart[:head])
	}
	for i := head; i < len(intPart); i += 3 {
		if b.Len() > len(sign) {
			b.WriteByte(',')
		}
		b.WriteString(intPart[i : i+3])
	}
	b.WriteString(frac)
	return b.String()
}

// formatInt writes an integer figure with thousands separators.
func formatInt(n int64) string { return groupDigits(strconv.FormatInt(n, 10)) }

// formatFloat writes a float exactly as the API's JSON does, grouped.
func formatFloat(f float64) string {
	b, err := json.Marshal(f)
	if err != nil { // NaN or infinity: the API could not write it either
		return "—"
	}
	return groupDigits(string(b))
}

// formatTime writes an instant in UTC to the second, for people.
func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// isoTime writes an instant as the API's JSON does (RFC 3339, UTC, to the
// nanosecond it has), for <time datetime>: a check can compare it with
// the API's value exactly.
func isoTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// percent writes part/whole as a rounded percentage, for advice only.
func percent(part, whole int64) string {
	if whole == 0 {
		return "0%"
	}
	if part > 0 && 200*part < whole { // would round to 0%
		return "under 1%"
	}
	return strconv.FormatInt(int64(math.Round(100*float64(part)/float64(whole))), 10) + "%"
}

// count writes n with the noun it counts, singular or plural.
func count(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return formatInt(n) + " " + many
}
