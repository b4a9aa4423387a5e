// Package jsonscan reads the plain, common shape of small JSON documents
// without reflection: members spelled exactly, strings without escapes,
// nulls. Its callers give up on anything else and decode with
// encoding/json, which handles every valid document and names every
// problem; each caller's fuzz test holds what it accepts to what
// encoding/json decodes. On the hot path of an event body encoding/json was
// the largest share of the server's CPU.
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

// End reports whether only whitespace is left.
func (p *Scanner) End() bool {
	p.ws()
	return p.i == len(p.s)
}
