package usage

import "math"

// Identity flags, computed once per identity at ingestion and kept in the
// rollup so that admin statistics count them without re-reading identities.
const (
	// FlagReserved marks an identity holding a reserved character
	// ! * ' ( ) ; : @ & = + $ , / ? % # [ ]: allowed, but a URL or a
	// Twilio REST path must escape it.
	FlagReserved int16 = 1 << iota
	// FlagRandomLike marks an identity that looks machine generated (see
	// RandomLike): throw-away identities are each billed.
	FlagRandomLike
)

const reservedChars = "!*'();:@&=+$,/?%#[]"

// The classes of bytes, looked up rather than tested by a function called
// per byte: IdentityFlags runs for every event ingested, and was a tenth of
// the server's CPU during JSON ingestion.
var (
	reservedSet = byteSet(reservedChars)
	hexSet      = byteSet("0123456789abcdefABCDEF")
	base64Set   = byteSet("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/")
)

func byteSet(chars string) *[256]bool {
	var set [256]bool
	for i := 0; i < len(chars); i++ {
		set[chars[i]] = true
	}
	return &set
}

// HasReserved reports whether s holds a reserved character.
func HasReserved(s string) bool {
	for i := 0; i < len(s); i++ {
		if reservedSet[s[i]] {
			return true
		}
	}
	return false
}

// IdentityFlags classifies an identity.
func IdentityFlags(s string) int16 {
	var f int16
	if HasReserved(s) {
		f |= FlagReserved
	}
	if RandomLike(s) {
		f |= FlagRandomLike
	}
	return f
}

// RandomLike reports whether an identity looks machine generated. It holds
// when the identity contains any of:
//
//   - a UUID of any version: 8-4-4-4-12 hex digits with dashes, or 32 hex
//     digits without;
//   - a run of 16 or more hex digits (0-9, a-f, A-F) whose Shannon entropy
//     is at least 3 bits per character, as in hashes, random tokens and long
//     numeric ids (a repeated pattern such as "a1a1…" or "aaaa…" has less);
//   - a run of 20 or more base64/base62 characters (A-Z a-z 0-9 + /)
//     holding both letters and digits, whose entropy is at least 3.5 bits
//     per character: random tokens have about 4 or more; words, names and
//     repeated patterns have less, and rarely hold digits.
//
// Runs are maximal: "alice@example.com" has runs "alice", "example", "com"
// (a dot or @ ends a run); "+15551234567" has an 11-digit run. "_" and "-"
// end runs too: people use them between words ("bob_the_builder_2026"). The rules are
// tested on both sides in classify_test.go.
func RandomLike(s string) bool {
	return hasUUID(s) || hasRun(s, hexSet, 16, 3.0, false) || hasRun(s, base64Set, 20, 3.5, true)
}

// hasUUID finds 8-4-4-4-12 hex groups (the dashless form is a 32-hex run,
// caught by the hex rule).
func hasUUID(s string) bool {
	groups := [...]int{8, 4, 4, 4, 12}
	for i := 0; i+36 <= len(s); i++ {
		j, ok := i, true
		for g, n := range groups {
			for k := 0; k < n; k++ {
				if !hexSet[s[j]] {
					ok = false
					break
				}
				j++
			}
			if !ok {
				break
			}
			if g < len(groups)-1 {
				if s[j] != '-' {
					ok = false
					break
				}
				j++
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// hasRun finds a maximal run of characters in the set, at least minLen
// long, with at least minEntropy bits per character (and letters and digits
// both, when mixed is set).
func hasRun(s string, in *[256]bool, minLen int, minEntropy float64, mixed bool) bool {
	for i := 0; i < len(s); {
		if !in[s[i]] {
			i++
			continue
		}
		j := i
		for j < len(s) && in[s[j]] {
			j++
		}
		if run := s[i:j]; len(run) >= minLen && (!mixed || lettersAndDigits(run)) && entropy(run) >= minEntropy {
			return true
		}
		i = j
	}
	return false
}

func lettersAndDigits(run string) bool {
	var letter, digit bool
	for i := 0; i < len(run); i++ {
		c := run[i]
		letter = letter || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		digit = digit || c >= '0' && c <= '9'
	}
	return letter && digit
}

// entropy is the Shannon entropy of the run's characters, in bits.
func entropy(run string) float64 {
	var counts [256]int
	for i := 0; i < len(run); i++ {
		counts[run[i]]++
	}
	var h float64
	n := float64(len(run))
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}
