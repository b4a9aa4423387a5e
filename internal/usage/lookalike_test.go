package usage_test

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tallyhq/tally/internal/usage"
)

// TestLookalikeKeyGroups: each spelling falls in the group of its key, and
// spellings that only look related (Turkish dotless ı, "İ") stay apart.
func TestLookalikeKeyGroups(t *testing.T) {
	groups := []struct {
		key       string
		spellings []string
	}{
		// The cases: case, trailing space, fullwidth, zero-width space.
		{"alice", []string{"Alice", "alice", "alice ", " ALICE", "ａｌｉｃｅ", "al\u200bice", "ＡＬＩＣＥ", "alice\u3000",
			"\u00a0alice", "a\u00adlice", "alice\ufe0f", "al\u2060ice"}},
		// NFC and NFD.
		{"jos\u00e9", []string{"Jos\u00e9", "Jose\u0301", "JOS\u00c9", "JOSE\u0301"}},
		// Combining marks in either order: canonical reordering.
		{"\u1eb9\u0301", []string{"e\u0301\u0323", "e\u0323\u0301", "\u1eb9\u0301", "\u00e9\u0323", "E\u0323\u0301"}},
		// Turkish: default folding maps I to i; the dotless ı is its own letter,
		// and İ folds to i + combining dot above.
		{"kırmızı", []string{"Kırmızı", "kırmızı"}},
		{"kirmizi", []string{"KIRMIZI", "kirmizi"}},
		{"i\u0307stanbul", []string{"İstanbul", "i\u0307stanbul"}},
		// Ligatures and compatibility forms.
		{"file", []string{"ﬁle", "file", "FILE", "ﬁLE"}},
		{"strasse", []string{"Straße", "STRASSE", "strasse", "STRAẞE"}},
		{"xii", []string{"Ⅻ", "XII", "ⅻ"}},
		// Hangul: conjoining jamo and compatibility jamo compose to the syllable.
		{"\uac00", []string{"\uac00", "\u1100\u1161", "\u3131\u314f"}},
		{"\ud55c\uae00", []string{"\ud55c\uae00", "\u1112\u1161\u11ab\u1100\u1173\u11af"}},
		// Ideographic space: white space, trimmed at the ends and a space inside.
		{"al ice", []string{"al ice", "al\u3000ice", "AL\u00a0ICE", " al ice "}},
		// Greek final sigma folds to sigma.
		{"\u03bf\u03c3\u03bf\u03c3", []string{"ΟΣΟΣ", "οσος", "οσοσ"}},
		// Cherokee folds to the upper case.
		{"\u13af\u13f0", []string{"\u13af\u13f0", "\uab7f\u13f8", "\uab7f\u13f0"}},
		// Nothing but white space and ignorables: the empty key.
		{"", []string{" ", "\u200b", "\u3000", "\u00ad\u200d"}},
	}
	seen := map[string]string{}
	for _, g := range groups {
		if prev, ok := seen[g.key]; ok {
			t.Fatalf("key %q listed twice (%s)", g.key, prev)
		}
		seen[g.key] = g.spellings[0]
		for _, s := range g.spellings {
			if got := usage.LookalikeKey(s); got != g.key {
				t.Errorf("LookalikeKey(%+q) = %+q, want %+q", s, got, g.key)
			}
		}
	}
	// Apart: what must not share a key.
	apart := [][2]string{{"ı", "i"}, {"İ", "i"}, {"alice", "alicé"}, {"a lice", "alice"}, {"alice1", "alicei"},
		{"\u3131", "\u1100\u1161"}}
	for _, p := range apart {
		if usage.LookalikeKey(p[0]) == usage.LookalikeKey(p[1]) {
			t.Errorf("%+q and %+q share the key %+q", p[0], p[1], usage.LookalikeKey(p[0]))
		}
	}
}

// TestLookalikeKeyASCIIFastPath: the ASCII shortcut gives what the full
// normalization gives, and returns an identity that is its own key as is.
func TestLookalikeKeyASCIIFastPath(t *testing.T) {
	for c := 0; c < 128; c++ {
		for _, s := range []string{string(rune(c)), "a" + string(rune(c)) + "B", " x" + string(rune(c))} {
			if got, want := usage.LookalikeKey(s), usage.LookalikeKey(s+"\u200b"); got != want {
				t.Errorf("%+q: %+q by the ASCII path, %+q by the full one", s, got, want)
			}
		}
	}
	if n := testing.AllocsPerRun(100, func() { usage.LookalikeKey("user-0001234@example.com") }); n != 0 {
		t.Errorf("a lower-case ASCII identity costs %v allocations", n)
	}
}

func TestReservedMask(t *testing.T) {
	counts := map[string]int64{}
	for _, s := range []string{"alice@example.com", "a/b?c=d&e", "plain", "[x]#%", "@@"} {
		m := usage.ReservedMask(s)
		if (m != 0) != usage.HasReserved(s) {
			t.Errorf("%q: mask %b, HasReserved %v", s, m, usage.HasReserved(s))
		}
		usage.CountReserved(counts, m, 1)
	}
	want := map[string]int64{"@": 2, "/": 1, "?": 1, "=": 1, "&": 1, "[": 1, "]": 1, "#": 1, "%": 1}
	if len(counts) != len(want) {
		t.Errorf("counts %v, want %v", counts, want)
	}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("counts[%q] = %d, want %d", k, counts[k], v)
		}
	}
	var all int32
	for i := range len(usage.ReservedCharacters) {
		all |= usage.ReservedMask(usage.ReservedCharacters[i : i+1])
	}
	if all != 1<<len(usage.ReservedCharacters)-1 {
		t.Errorf("the characters' bits are %b", all)
	}
}

// FuzzLookalikeKey: the key is a fixed point of itself and valid UTF-8, and
// the identities that differ only by case or surrounding spaces share it.
func FuzzLookalikeKey(f *testing.F) {
	for _, s := range []string{"Alice", "alice ", "ａｌｉｃｅ", "al\u200bice", "Jose\u0301", "ﬁ", "\u1100\u1161", "İ",
		" \u0301x", "e\u200b\u0301", "\u0345\u0301", "ǅ", "\xff", "\u3000\u200b "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k := usage.LookalikeKey(s)
		if !utf8.ValidString(k) {
			t.Fatalf("LookalikeKey(%+q) = %+q, not valid UTF-8", s, k)
		}
		if k2 := usage.LookalikeKey(k); k2 != k {
			t.Fatalf("LookalikeKey(%+q) = %+q, but LookalikeKey of that is %+q", s, k, k2)
		}
		if k3 := usage.LookalikeKey(" " + s + "\u3000"); k3 != k {
			t.Fatalf("LookalikeKey(%+q) = %+q, but with spaces around %+q", s, k, k3)
		}
	})
}

// TestLookalikeKeyRandom holds the fuzz target's properties over random
// strings mixing ASCII, combining marks, ignorables and the rest of the
// planes, including runs of more than 30 combining marks (where
// normalization inserts U+034F, itself default ignorable).
func TestLookalikeKeyRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 7))
	pools := []func() rune{
		func() rune { return rune(r.IntN(0x80)) },
		func() rune { return rune(0x300 + r.IntN(0x70)) },
		func() rune {
			return []rune{0x200b, 0x200d, 0x34f, 0xad, 0xfe0f, 0x3000, 0xa0, 0x130, 0x131, 0xdf, 0x1e9e}[r.IntN(11)]
		},
		func() rune { return rune(0x1100 + r.IntN(0x100)) },
		func() rune { return rune(r.IntN(0x30000)) },
	}
	for i := 0; i < 20000; i++ {
		b := make([]rune, r.IntN(60))
		for j := range b {
			b[j] = pools[r.IntN(len(pools))]()
		}
		s := string(b)
		if i%100 == 0 {
			s = "a" + strings.Repeat("\u0301", 40) + s
		}
		k := usage.LookalikeKey(s)
		if !utf8.ValidString(k) || usage.LookalikeKey(k) != k {
			t.Fatalf("%+q → %+q → %+q", s, k, usage.LookalikeKey(k))
		}
	}
}
