package usage

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// LookalikeKey returns the key under which identities that look alike are
// grouped (§7): the identity's NFKC_Casefold form (NFKC, full case folding,
// default-ignorable code points removed) without leading or trailing white
// space. "Alice", "alice ", "ａｌｉｃｅ" and "al\u200bice" share the key
// "alice"; the NFC and NFD spellings of "José" share one; "ﬁ" is "fi",
// "Straße" is "strasse", conjoining Hangul jamo compose to their syllable.
// Case folding is Unicode's default (not Turkic): "I" folds to "i", and the
// dotless "ı" stays itself.
//
// The key is stable under itself (LookalikeKey(LookalikeKey(s)) ==
// LookalikeKey(s)) and always valid UTF-8; invalid bytes, which no valid
// identity holds, become U+FFFD. It runs for every event ingested, so an
// ASCII identity that is already its own key costs one pass and no
// allocation.
func LookalikeKey(s string) string {
	if k, ok := asciiKey(s); ok {
		return k
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	// One pass is NFKC_Casefold as Unicode defines it (the mapping is
	// applied to the decomposed string, then recomposed) and the trim; a
	// second pass is rarely needed (case folding or the trim can leave a
	// string that one more normalization changes) and makes the key a
	// fixed point, which FuzzLookalikeKey holds it to.
	for range 4 {
		k := lookalikePass(s)
		if k == s {
			break
		}
		s = k
	}
	return s
}

var folder = cases.Fold()

func lookalikePass(s string) string {
	s = norm.NFD.String(s)
	s = strings.Map(func(r rune) rune {
		if IsDefaultIgnorable(r) {
			return -1
		}
		return r
	}, s)
	s = strings.Map(cherokeeFold, folder.String(s))
	s = norm.NFKC.String(s)
	return strings.TrimFunc(s, isWhiteSpace)
}

// cherokeeFold corrects x/text's folding of Cherokee, whose letters Unicode
// folds to the upper case (CaseFolding.txt: U+AB70–U+ABBF → U+13A0–U+13EF,
// U+13F8–U+13FD → U+13F0–U+13F5, for stability: the lower case came later)
// while cases.Fold maps the upper case to the lower: "Ꭿ" and "ꭿ" would
// swap at each pass and never settle on one key.
func cherokeeFold(r rune) rune {
	switch {
	case 0xAB70 <= r && r <= 0xABBF:
		return r - 0xAB70 + 0x13A0
	case 0x13F8 <= r && r <= 0x13FD:
		return r - 8
	}
	return r
}

// asciiKey is LookalikeKey for an ASCII string: NFKC changes no ASCII
// character and none is default ignorable, so the key is the string lower
// cased, trimmed of white space. ok is false for any other string.
func asciiKey(s string) (key string, ok bool) {
	upper := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return "", false
		}
		upper = upper || 'A' <= c && c <= 'Z'
	}
	s = strings.TrimFunc(s, isWhiteSpace)
	if !upper {
		return s, true
	}
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b), true
}

func isWhiteSpace(r rune) bool { return unicode.Is(unicode.White_Space, r) }

// IsDefaultIgnorable reports Unicode's Default_Ignorable_Code_Point, derived
// as DerivedCoreProperties.txt derives it: Other_Default_Ignorable_Code_Point,
// format characters (Cf) and variation selectors, less white space, the
// interlinear annotation characters U+FFF9–U+FFFB, the Egyptian hieroglyph
// format controls U+13430–U+1343F and the prepended concatenation marks
// (format characters meant to be seen). The unicode package has every
// ingredient but not the derived property.
func IsDefaultIgnorable(r rune) bool {
	if r < 0xAD {
		return false
	}
	if !unicode.In(r, unicode.Other_Default_Ignorable_Code_Point, unicode.Cf, unicode.Variation_Selector) {
		return false
	}
	switch {
	case unicode.Is(unicode.White_Space, r),
		0xFFF9 <= r && r <= 0xFFFB,
		0x13430 <= r && r <= 0x1343F,
		unicode.Is(unicode.Prepended_Concatenation_Mark, r):
		return false
	}
	return true
}

// ReservedCharacters are the reserved characters of §1, in the order of
// their bits in ReservedMask.
const ReservedCharacters = reservedChars

// ReservedMask returns one bit per reserved character the identity holds:
// bit i for ReservedCharacters[i]. Computed once per event at ingestion and
// kept in the rollup, so that counting identities per reserved character
// reads a number per user, never the identity.
func ReservedMask(s string) int32 {
	var m int32
	for i := 0; i < len(s); i++ {
		if reservedSet[s[i]] {
			m |= 1 << strings.IndexByte(reservedChars, s[i])
		}
	}
	return m
}

// CountReserved adds n identities of mask to counts, per character.
func CountReserved(counts map[string]int64, mask int32, n int64) {
	for i := 0; i < len(reservedChars); i++ {
		if mask&(1<<i) != 0 {
			counts[reservedChars[i:i+1]] += n
		}
	}
}
