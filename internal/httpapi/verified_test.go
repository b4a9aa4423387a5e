package httpapi

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/token"
)

// encodeVerified is what echo's c.JSON writes for the answer.
func encodeVerified(t testing.TB, cl token.Claims) []byte {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(newVerified(cl)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestAppendVerified: the hand-written answer is byte for byte what
// encoding/json writes, and it gives way to encoding/json for any string
// that needs escaping.
func TestAppendVerified(t *testing.T) {
	exp := time.Date(2026, 10, 5, 13, 0, 0, 0, time.UTC)
	base := token.Claims{KeySID: "SK0123456789abcdef0123456789abcdef", AccountSID: "AC0123456789abcdef0123456789abcdef",
		Grants: token.Grants{Identity: "alice@example.com", Chat: &token.ChatGrant{ServiceSID: "IS1"}}, ExpiresAt: exp}
	with := func(f func(*token.Claims)) token.Claims {
		c := base
		chat := *base.Grants.Chat // its own, for f to change
		c.Grants.Chat = &chat
		f(&c)
		return c
	}
	for _, tt := range []struct {
		name  string
		cl    token.Claims
		plain bool
	}{
		{"chat", base, true},
		{"no grant", with(func(c *token.Claims) { c.Grants.Chat = nil }), true},
		{"every member", with(func(c *token.Claims) {
			c.Grants.Chat = &token.ChatGrant{ServiceSID: "IS1", EndpointID: "e1", DeploymentRoleSID: "RL1", PushCredentialSID: "CR1"}
			c.Grants.Sync = &token.SyncGrant{ServiceSID: "IS2", EndpointID: "e2"}
			c.NotBefore = exp.Add(-time.Hour)
		}), true},
		{"sync only", with(func(c *token.Claims) {
			c.Grants = token.Grants{Identity: "bob", Sync: &token.SyncGrant{ServiceSID: "IS2"}}
		}), true},
		{"fractions", with(func(c *token.Claims) {
			c.ExpiresAt = exp.Add(500 * time.Millisecond)
			c.NotBefore = exp.Add(-time.Hour + time.Nanosecond)
		}), true},
		{"every printable byte", with(func(c *token.Claims) { c.Grants.Identity = " !#$%'()*+,-./09:;=?@AZ[]^_`az{|}~" }), true},
		{"html", with(func(c *token.Claims) { c.Grants.Identity = "<alice>&" }), false},
		{"quote", with(func(c *token.Claims) { c.Grants.Chat.EndpointID = `a"b` }), false},
		{"backslash", with(func(c *token.Claims) { c.Grants.Sync = &token.SyncGrant{ServiceSID: `IS\2`} }), false},
		{"non-ASCII", with(func(c *token.Claims) { c.Grants.Identity = "zoë" }), false},
		{"control", with(func(c *token.Claims) { c.Grants.Chat.PushCredentialSID = "\x7f" }), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := appendVerified(nil, tt.cl)
			if ok != tt.plain {
				t.Fatalf("plain = %v, want %v", ok, tt.plain)
			}
			if want := encodeVerified(t, tt.cl); ok && !bytes.Equal(got, want) {
				t.Errorf("appendVerified =\n%s\nencoding/json =\n%s", got, want)
			}
		})
	}
}

// FuzzAppendVerified holds the hand-written answer to encoding/json's for
// any strings and times a token can carry.
func FuzzAppendVerified(f *testing.F) {
	f.Add("alice", "IS1", "e", "IS2", int64(1790000000), int64(500), int64(0), true)
	f.Add("<b>", "", "", "", int64(0), int64(0), int64(253402300799), false)
	f.Fuzz(func(t *testing.T, identity, chat, endpoint, sync string, exp, nanos, nbf int64, both bool) {
		if exp < 0 || exp > 253402300799 || nbf < 0 || nbf > 253402300799 {
			return
		}
		cl := token.Claims{KeySID: "SK1", AccountSID: "AC1", ExpiresAt: time.Unix(exp, nanos%1e9).UTC(),
			Grants: token.Grants{Identity: identity, Chat: &token.ChatGrant{ServiceSID: chat, EndpointID: endpoint}}}
		if nbf > 0 {
			cl.NotBefore = time.Unix(nbf, 0).UTC()
		}
		if both {
			cl.Grants.Sync = &token.SyncGrant{ServiceSID: sync, EndpointID: endpoint}
		}
		if got, ok := appendVerified(nil, cl); ok {
			if want := encodeVerified(t, cl); !bytes.Equal(got, want) {
				t.Fatalf("appendVerified =\n%s\nencoding/json =\n%s", got, want)
			}
		}
	})
}
