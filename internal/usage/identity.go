package usage

import (
	"unicode/utf8"
)

// MaxIdentityBytes is the longest identity the contract accepts.
const MaxIdentityBytes = 256

// CheckIdentity returns why s is not a valid identity (§1), or "" when it is:
// 1–256 bytes of valid UTF-8 without control characters (category Cc).
func CheckIdentity(s string) string {
	switch {
	case s == "":
		return "is required"
	case len(s) > MaxIdentityBytes:
		return "must be at most 256 bytes"
	case !utf8.ValidString(s):
		return "must be valid UTF-8"
	}
	for _, r := range s {
		if isControl(r) {
			return "must not contain control characters"
		}
	}
	return ""
}

// isControl reports Unicode category Cc: U+0000–U+001F and U+007F–U+009F.
func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r <= 0x9f) }

// CheckServiceSID returns why s is not a valid service SID, or "" when it is:
// 1–64 characters of [A-Za-z0-9_.-].
func CheckServiceSID(s string) string {
	if s == "" {
		return "is required"
	}
	if len(s) > 64 {
		return "must be at most 64 characters"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return "must be 1–64 characters of [A-Za-z0-9_.-]"
		}
	}
	return ""
}
