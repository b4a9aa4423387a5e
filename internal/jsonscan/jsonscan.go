// Package jsonscan reads the plain, common shapes of small JSON documents
// without reflection: members spelled exactly, strings without escapes,
// integers without sign, fraction or exponent. Its callers give up on
// anything else and decode with encoding/json, which handles every valid
// document and names every problem; each caller's fuzz test holds what it
// accepts to what encoding/json decodes. On the hot paths (an event body, a
// token's claims) encoding/json was the largest share of the server's CPU.
//
// A Scanner reads a string, so that the values it returns are substrings of
// one allocation instead of one allocation each. The caller checks that the
// document is valid UTF-8 first, as encoding/json replaces invalid bytes.
package jsonscan

import "strings"

// Scanner reads a document from the start. Every method skips JSON
// whitespace first and reports false when what follows is not what it
// reads, leaving the position undefined: a false is the end of the scan.
type Scanner struct {
	s string
	i int
}

// New scans s.
func New(s string) *Scanner { return &Scanner{s: s} }

func (p *Scanner) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// Byte consumes c.
func (p *Scanner) Byte(c byte) bool {
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// Str reads a string without escapes or control characters.
func (p *Scanner) Str() (string, bool) {
	if !p.Byte('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return p.s[start : p.i-1], true
		case c == '\\' || c < 0x20:
			return "", false
		}
		p.i++
	}
	return "", false
}

// Null consumes null; what follows it is for the next read to check.
func (p *Scanner) Null() bool {
	p.ws()
	if strings.HasPrefix(p.s[p.i:], "null") {
		p.i += len("null")
		return true
	}
	return false
}

// maxDigits keeps Uint's result far from overflow.
const maxDigits = 15

// Uint reads a non-negative integer of at most 15 digits, written as JSON
// writes it (no leading zero); a fraction or an exponent is not read.
func (p *Scanner) Uint() (int64, bool) {
	p.ws()
	start := p.i
	var n int64
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		n = n*10 + int64(p.s[p.i]-'0')
		p.i++
	}
	digits := p.i - start
	if digits == 0 || digits > maxDigits || (digits > 1 && p.s[start] == '0') {
		return 0, false
	}
	if p.i < len(p.s) && (p.s[p.i] == '.' || p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		return 0, false
	}
	return n, true
}

// Object reads the members of an object, calling member for each key with
// the Scanner at its value; member reads the value, or reports false.
func (p *Scanner) Object(member func(key string) bool) bool {
	if !p.Byte('{') {
		return false
	}
	if p.Byte('}') {
		return true
	}
	for {
		key, ok := p.Str()
		if !ok || !p.Byte(':') || !member(key) {
			return false
		}
		if p.Byte('}') {
			return true
		}
		if !p.Byte(',') {
			return false
		}
	}
}

// Fields reads an object whose members are among keys (at most 64), each
// at most once, calling member with the index of each key with the Scanner
// at its value. Another key, or one repeated, is a false: encoding/json
// matches keys case-insensitively and lets the last of a repeated key win,
// which the caller leaves to it.
func (p *Scanner) Fields(keys []string, member func(i int) bool) bool {
	var seen uint64
	return p.Object(func(key string) bool {
		for i, k := range keys {
			if k != key {
				continue
			}
			if seen&(1<<i) != 0 {
				return false
			}
			seen |= 1 << i
			return member(i)
		}
		return false
	})
}

// End reports whether only whitespace is left.
func (p *Scanner) End() bool {
	p.ws()
	return p.i == len(p.s)
}
