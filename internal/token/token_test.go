package token

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The keys of the tests' lookup: two active keys of account, a revoked one,
// one of another account, and one with no secret.
const (
	account  = "AC0123456789abcdef0123456789abcdef"
	other    = "ACffffffffffffffffffffffffffffffff"
	keySID   = "SK0123456789abcdef0123456789abcdef"
	key2SID  = "SK1111111111111111111111111111111a"
	revSID   = "SK2222222222222222222222222222222b"
	foreign  = "SK3333333333333333333333333333333c"
	emptySID = "SK4444444444444444444444444444444d"
	unknown  = "SK9999999999999999999999999999999d"
)

var (
	secret  = []byte("abcdefghijABCDEFGHIJ0123456789xy")
	secret2 = []byte("zyxwvutsrqZYXWVUTSRQ9876543210ab")
	now     = time.Date(2026, 10, 5, 12, 0, 0, 0, time.UTC)
)

func lookup(_ context.Context, sid string) (SigningKey, error) {
	switch sid {
	case keySID:
		return SigningKey{AccountSID: account, Secret: secret}, nil
	case key2SID:
		return SigningKey{AccountSID: account, Secret: secret2}, nil
	case revSID:
		return SigningKey{AccountSID: account, Secret: secret, Revoked: true}, nil
	case foreign:
		return SigningKey{AccountSID: other, Secret: secret2}, nil
	case emptySID:
		return SigningKey{AccountSID: account}, nil
	}
	return SigningKey{}, ErrUnknownKey
}

// segments decodes a token's header and claims by hand (base64url JSON),
// independently of the code under test.
func segments(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d segments, want 3", tok, len(parts))
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
	}
	return header, claims
}

// build signs arbitrary claims and header members with golang-jwt, the way
// another library would.
func build(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// twilioClaims are the claims twilio-go mints (nbf, no iat) for a chat
// grant, changed by mutate.
func twilioClaims(iss string, mutate func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{"jti": iss + "-1", "iss": iss, "sub": account, "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"grants": map[string]any{"identity": "alice", "chat": map[string]any{"service_sid": "IS1"}}}
	if mutate != nil {
		mutate(c)
	}
	return c
}

// reason is the refusal reason of err, "" for none, and "error" for a
// failure that is not a refusal.
func reason(err error) Reason {
	if err == nil {
		return ""
	}
	var inv *Invalid
	if errors.As(err, &inv) {
		return inv.Reason
	}
	return "error"
}

// TestEventID: a verified token's event id is the same every time it is
// verified, differs between tokens minted in the same second (whose jti is
// the same) and between grants, and is what the id was before tokens were
// decoded strictly, so events recorded then are not recorded again.
func TestEventID(t *testing.T) {
	g := func(id string) Grants {
		return Grants{Identity: id, Chat: &ChatGrant{ServiceSID: "IS1"}, Sync: &SyncGrant{ServiceSID: "IS2"}}
	}
	a, _, _, err := Mint(account, keySID, secret, g("alice"), now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, _, _, err := Mint(account, keySID, secret, g("bob"), now.Add(999*time.Millisecond), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, ca := segments(t, a)
	_, cb := segments(t, b)
	if ca["jti"] != cb["jti"] {
		t.Fatalf("jti %v and %v, want equal for tokens minted in the same second", ca["jti"], cb["jti"])
	}
	verify := func(tok string) Claims {
		t.Helper()
		c, err := Verify(t.Context(), tok, account, now, lookup)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	va, va2, vb := verify(a), verify(a), verify(b)
	// The id as it was derived from the token string before (event.go).
	legacy := func(tok, grant string) string {
		sum := sha256.Sum256([]byte(tok + "\x00" + grant))
		return "auth-" + hex.EncodeToString(sum[:])
	}
	tests := []struct {
		name       string
		x, y       string
		wantEquals bool
	}{
		{"same token verified twice", va.EventID("chat"), va2.EventID("chat"), true},
		{"same second, other identity", va.EventID("chat"), vb.EventID("chat"), false},
		{"same token, other grant", va.EventID("chat"), va.EventID("data_sync"), false},
		{"as before strict decoding, chat", va.EventID("chat"), legacy(a, "chat"), true},
		{"as before strict decoding, data_sync", vb.EventID("data_sync"), legacy(b, "data_sync"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.x == tt.y; got != tt.wantEquals {
				t.Errorf("%s == %s: got %v, want %v", tt.x, tt.y, got, tt.wantEquals)
			}
			if got := len(tt.x); got > 128 {
				t.Errorf("len(%s) = %d, want at most 128", tt.x, got)
			}
		})
	}
}

func BenchmarkMint(b *testing.B) {
	g := Grants{Identity: "alice@example.com", Chat: &ChatGrant{ServiceSID: "IS1", EndpointID: "e"}, Sync: &SyncGrant{ServiceSID: "IS2"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := Mint(account, keySID, secret, g, now, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	g := Grants{Identity: "alice@example.com", Chat: &ChatGrant{ServiceSID: "IS1", EndpointID: "e"}, Sync: &SyncGrant{ServiceSID: "IS2"}}
	tok, _, _, err := Mint(account, keySID, secret, g, now, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(ctx, tok, account, now, lookup); err != nil {
			b.Fatal(err)
		}
	}
}
