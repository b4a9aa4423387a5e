package token

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	account = "AC0123456789abcdef0123456789abcdef"
	other   = "ACffffffffffffffffffffffffffffffff"
	keySID  = "SK0123456789abcdef0123456789abcdef"
	key2SID = "SK1111111111111111111111111111111a"
	revSID  = "SK2222222222222222222222222222222b"
	foreign = "SK3333333333333333333333333333333c"
)

var (
	secret  = []byte("abcdefghijABCDEFGHIJ0123456789xy")
	secret2 = []byte("zyxwvutsrqZYXWVUTSRQ9876543210ab")
	now     = time.Date(2026, 10, 5, 12, 0, 0, 0, time.UTC)
)

func lookup(_ context.Context, sid string) (Key, error) {
	switch sid {
	case keySID:
		return Key{AccountSID: account, Secret: secret}, nil
	case key2SID:
		return Key{AccountSID: account, Secret: secret2}, nil
	case revSID:
		return Key{AccountSID: account, Secret: secret, Revoked: true}, nil
	case foreign:
		return Key{AccountSID: other, Secret: secret}, nil
	}
	return Key{}, ErrUnknownKey
}

func segments(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q", tok)
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

func TestMintFormat(t *testing.T) {
	g := Grants{Identity: "alice@example.com", Chat: &ChatGrant{ServiceSID: "IS1", EndpointID: "alice-iphone"}}
	tok, nbf, exp, err := Mint(account, keySID, secret, g, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !nbf.Equal(now) || !exp.Equal(now.Add(time.Hour)) {
		t.Fatalf("nbf %v exp %v", nbf, exp)
	}
	h, c := segments(t, tok)
	wantHeader := map[string]any{"alg": "HS256", "typ": "JWT", "cty": "twilio-fpa;v=1"}
	if len(h) != 3 {
		t.Fatalf("header %v", h)
	}
	for k, v := range wantHeader {
		if h[k] != v {
			t.Errorf("header %s = %v, want %v", k, h[k], v)
		}
	}
	n := float64(now.Unix())
	want := map[string]any{"jti": keySID + "-" + jsonInt(now.Unix()), "iss": keySID, "sub": account, "nbf": n, "exp": n + 3600}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("claim %s = %v, want %v", k, c[k], v)
		}
	}
	if _, ok := c["iat"]; ok {
		t.Error("iat present")
	}
	grants, _ := json.Marshal(c["grants"])
	if string(grants) != `{"chat":{"endpoint_id":"alice-iphone","service_sid":"IS1"},"identity":"alice@example.com"}` {
		t.Errorf("grants %s", grants)
	}
	// Sync is "data_sync"; members not given are left out.
	tok, _, _, _ = Mint(account, keySID, secret, Grants{Identity: "bob", Sync: &SyncGrant{ServiceSID: "IS2"}}, now, time.Hour)
	_, c = segments(t, tok)
	grants, _ = json.Marshal(c["grants"])
	if string(grants) != `{"data_sync":{"service_sid":"IS2"},"identity":"bob"}` {
		t.Errorf("sync grants %s", grants)
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestMintRefuses(t *testing.T) {
	chat := &ChatGrant{ServiceSID: "IS1"}
	tests := []struct {
		name string
		g    Grants
		ttl  time.Duration
	}{
		{"no grant", Grants{Identity: "a"}, time.Hour},
		{"no identity", Grants{Chat: chat}, time.Hour},
		{"identity 257 bytes", Grants{Identity: strings.Repeat("a", 257), Chat: chat}, time.Hour},
		{"identity control char", Grants{Identity: "a\nb", Chat: chat}, time.Hour},
		{"bad service", Grants{Identity: "a", Chat: &ChatGrant{ServiceSID: "IS 1"}}, time.Hour},
		{"ttl 179", Grants{Identity: "a", Chat: chat}, 179 * time.Second},
		{"ttl 86401", Grants{Identity: "a", Chat: chat}, 86401 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, _, err := Mint(account, keySID, secret, tt.g, now, tt.ttl); err == nil {
				t.Fatal("minted")
			}
		})
	}
	for _, ttl := range []time.Duration{180 * time.Second, 86400 * time.Second} {
		if _, _, _, err := Mint(account, keySID, secret, Grants{Identity: "a", Chat: chat}, now, ttl); err != nil {
			t.Errorf("ttl %v: %v", ttl, err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	identities := []string{"alice@example.com", "a/b?c#d%e", "用户😀", "!*'();:@&=+$,/?%#[]"}
	grants := map[string]Grants{
		"chat": {Chat: &ChatGrant{ServiceSID: "IS1", EndpointID: "e", DeploymentRoleSID: "RL1", PushCredentialSID: "CR1"}},
		"sync": {Sync: &SyncGrant{ServiceSID: "IS2"}},
		"both": {Chat: &ChatGrant{ServiceSID: "IS1"}, Sync: &SyncGrant{ServiceSID: "IS2", EndpointID: "x"}},
	}
	for name, g := range grants {
		for _, id := range identities {
			t.Run(name+"/"+id, func(t *testing.T) {
				g.Identity = id
				tok, _, _, err := Mint(account, keySID, secret, g, now, time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				c, err := Verify(t.Context(), tok, account, now.Add(time.Minute), lookup)
				if err != nil {
					t.Fatal(err)
				}
				if c.Grants.Identity != id || c.KeySID != keySID || c.AccountSID != account || !c.NotBefore.Equal(now) || !c.ExpiresAt.Equal(now.Add(time.Hour)) {
					t.Fatalf("claims %+v", c)
				}
				gotJSON, _ := json.Marshal(c.Grants)
				wantJSON, _ := json.Marshal(g)
				if string(gotJSON) != string(wantJSON) {
					t.Fatalf("grants %s, want %s", gotJSON, wantJSON)
				}
			})
		}
	}
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

func twilioClaims(iss string, mutate func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{"jti": iss + "-1", "iss": iss, "sub": account, "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"grants": map[string]any{"identity": "alice", "chat": map[string]any{"service_sid": "IS1"}}}
	if mutate != nil {
		mutate(c)
	}
	return c
}

func TestVerifyReasons(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cty := map[string]any{"cty": "twilio-fpa;v=1"}
	good := build(t, jwt.SigningMethodHS256, secret, twilioClaims(keySID, nil), cty)
	none := func() string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodNone, twilioClaims(keySID, nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	parts := strings.Split(good, ".")
	tests := []struct {
		name string
		tok  string
		at   time.Time
		want Reason // "" = valid
	}{
		{"valid twilio-go style (nbf)", good, now, ""},
		{"HS384", build(t, jwt.SigningMethodHS384, secret, twilioClaims(keySID, nil), cty), now, ""},
		{"HS512", build(t, jwt.SigningMethodHS512, secret, twilioClaims(keySID, nil), cty), now, ""},
		{"twilio-node style (iat, no nbf, twr)", build(t, jwt.SigningMethodHS256, secret, twilioClaims(keySID, func(c jwt.MapClaims) {
			delete(c, "nbf")
			c["iat"] = now.Unix()
		}), map[string]any{"cty": "twilio-fpa;v=1", "twr": "ie1"}), now, ""},
		{"alg none", none, now, UnsupportedAlgorithm},
		{"RS256", build(t, jwt.SigningMethodRS256, rsaKey, twilioClaims(keySID, nil), cty), now, UnsupportedAlgorithm},
		{"ES alg in header", "eyJhbGciOiJFUzI1NiJ9." + parts[1] + "." + parts[2], now, UnsupportedAlgorithm},
		{"PS alg in header", "eyJhbGciOiJQUzI1NiJ9." + parts[1] + "." + parts[2], now, UnsupportedAlgorithm},
		{"HS256 signed with another key's secret", build(t, jwt.SigningMethodHS256, secret2, twilioClaims(keySID, nil), cty), now, BadSignature},
		{"tampered claims", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+keySID+`","exp":9999999999,"grants":{"identity":"mallory"}}`)) + "." + parts[2], now, BadSignature},
		{"unknown key", build(t, jwt.SigningMethodHS256, secret, twilioClaims("SK9999999999999999999999999999999d", nil), cty), now, UnknownKey},
		{"key of another account", build(t, jwt.SigningMethodHS256, secret, twilioClaims(foreign, nil), cty), now, WrongAccount},
		{"sub of another account", build(t, jwt.SigningMethodHS256, secret, twilioClaims(keySID, func(c jwt.MapClaims) { c["sub"] = other }), cty), now, WrongAccount},
		{"revoked key", build(t, jwt.SigningMethodHS256, secret, twilioClaims(revSID, nil), cty), now, RevokedKey},
		{"no exp", build(t, jwt.SigningMethodHS256, secret, twilioClaims(keySID, func(c jwt.MapClaims) { delete(c, "exp") }), cty), now, Malformed},
		{"no iss", build(t, jwt.SigningMethodHS256, secret, twilioClaims(keySID, func(c jwt.MapClaims) { delete(c, "iss") }), cty), now, Malformed},
		{"two segments", parts[0] + "." + parts[1], now, Malformed},
		{"garbage header", "!!!." + parts[1] + "." + parts[2], now, Malformed},
		{"garbage claims", parts[0] + ".bm90IGpzb24." + parts[2], now, Malformed},
		{"empty", "", now, Malformed},
		{"59s past exp", good, now.Add(time.Hour + 59*time.Second), ""},
		{"61s past exp", good, now.Add(time.Hour + 61*time.Second), Expired},
		{"nbf 59s ahead", good, now.Add(-59 * time.Second), ""},
		{"nbf 61s ahead", good, now.Add(-61 * time.Second), NotYetValid},
		{"iat 61s ahead", build(t, jwt.SigningMethodHS256, secret, twilioClaims(keySID, func(c jwt.MapClaims) {
			delete(c, "nbf")
			c["iat"] = now.Unix()
		}), cty), now.Add(-61 * time.Second), NotYetValid},
		{"lifetime exactly 24h", build(t, jwt.SigningMethodHS256, secret, twilioClaims(keySID, func(c jwt.MapClaims) {
			c["exp"] = now.Add(24 * time.Hour).Unix()
		}), cty), now, ""},
		{"lifetime 24h-1s", build(t, jwt.SigningMethodHS256, secret, twilioClaims(keySID, func(c jwt.MapClaims) {
			c["exp"] = now.Add(24*time.Hour - time.Second).Unix()
		}), cty), now, ""},
		{"lifetime 24h+1s", build(t, jwt.SigningMethodHS256, secret, twilioClaims(keySID, func(c jwt.MapClaims) {
			c["exp"] = now.Add(24*time.Hour + time.Second).Unix()
		}), cty), now, LifetimeTooLong},
		{"nbf wins over iat", build(t, jwt.SigningMethodHS256, secret, twilioClaims(keySID, func(c jwt.MapClaims) {
			c["iat"] = now.Add(-48 * time.Hour).Unix() // from iat this would be 49h
		}), cty), now, ""},
		{"iat lifetime too long", build(t, jwt.SigningMethodHS256, secret, twilioClaims(keySID, func(c jwt.MapClaims) {
			delete(c, "nbf")
			c["iat"] = now.Add(-2 * time.Hour).Unix()
			c["exp"] = now.Add(23 * time.Hour).Unix()
		}), cty), now, LifetimeTooLong},
		{"neither nbf nor iat, exp within 24h", build(t, jwt.SigningMethodHS256, secret, twilioClaims(keySID, func(c jwt.MapClaims) {
			delete(c, "nbf")
		}), cty), now, ""},
		{"neither nbf nor iat, exp beyond 24h", build(t, jwt.SigningMethodHS256, secret, twilioClaims(keySID, func(c jwt.MapClaims) {
			delete(c, "nbf")
			c["exp"] = now.Add(25 * time.Hour).Unix()
		}), cty), now, LifetimeTooLong},
		{"no identity", build(t, jwt.SigningMethodHS256, secret, twilioClaims(keySID, func(c jwt.MapClaims) {
			c["grants"] = map[string]any{"chat": map[string]any{"service_sid": "IS1"}}
		}), cty), now, MissingIdentity},
		{"empty identity", build(t, jwt.SigningMethodHS256, secret, twilioClaims(keySID, func(c jwt.MapClaims) {
			c["grants"] = map[string]any{"identity": ""}
		}), cty), now, MissingIdentity},
		{"no grants", build(t, jwt.SigningMethodHS256, secret, twilioClaims(keySID, func(c jwt.MapClaims) { delete(c, "grants") }), cty), now, MissingIdentity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(t.Context(), tt.tok, account, tt.at, lookup)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var inv *Invalid
			if !errors.As(err, &inv) || inv.Reason != tt.want {
				t.Fatalf("err = %v, want reason %s", err, tt.want)
			}
		})
	}
	// Verifying on another account's path: the key is not that account's.
	if _, err := Verify(t.Context(), good, other, now, lookup); !isReason(err, WrongAccount) {
		t.Fatalf("other path: %v", err)
	}
	// A lookup failure that is not "unknown key" is not a refusal.
	failing := func(context.Context, string) (Key, error) { return Key{}, errors.New("database down") }
	if _, err := Verify(t.Context(), good, account, now, failing); err == nil || isReason(err, UnknownKey) {
		t.Fatalf("lookup failure: %v", err)
	}
}

func isReason(err error, r Reason) bool {
	var inv *Invalid
	return errors.As(err, &inv) && inv.Reason == r
}

func TestEventID(t *testing.T) {
	g := func(id string) Grants { return Grants{Identity: id, Chat: &ChatGrant{ServiceSID: "IS1"}} }
	a, _, _, _ := Mint(account, keySID, secret, g("alice"), now, time.Hour)
	b, _, _, _ := Mint(account, keySID, secret, g("bob"), now, time.Hour) // same second: same jti
	_, ca := segments(t, a)
	_, cb := segments(t, b)
	if ca["jti"] != cb["jti"] {
		t.Fatal("expected equal jti for tokens minted in the same second")
	}
	if EventID(a, "chat") == EventID(b, "chat") {
		t.Fatal("two tokens share an event id")
	}
	if EventID(a, "chat") != EventID(a, "chat") || EventID(a, "chat") == EventID(a, "data_sync") {
		t.Fatal("event id not a function of token and grant")
	}
	if n := len(EventID(a, "data_sync")); n > 128 {
		t.Fatalf("event id is %d bytes", n)
	}
}

// FuzzVerify: never panics, and never accepts a token whose signature does
// not verify with the secret of an active key of the account.
func FuzzVerify(f *testing.F) {
	good, _, _, _ := Mint(account, keySID, secret, Grants{Identity: "alice", Chat: &ChatGrant{ServiceSID: "IS1"}}, now, time.Hour)
	parts := strings.Split(good, ".")
	f.Add(good)
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add("eyJhbGciOiJub25lIn0." + parts[1] + ".")
	f.Add(strings.ToUpper(good))
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := Verify(context.Background(), tok, account, now, lookup)
		if err != nil {
			return
		}
		// Accepted: check the signature independently with golang-jwt.
		key, _ := lookup(context.Background(), c.KeySID)
		if key.Revoked || key.AccountSID != account {
			t.Fatalf("accepted a token of key %s (revoked %v, account %s)", c.KeySID, key.Revoked, key.AccountSID)
		}
		_, perr := jwt.NewParser(jwt.WithValidMethods([]string{"HS256", "HS384", "HS512"}), jwt.WithoutClaimsValidation()).
			Parse(tok, func(*jwt.Token) (any, error) { return key.Secret, nil })
		if perr != nil {
			t.Fatalf("accepted a token whose signature does not verify: %v", perr)
		}
	})
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
	tok, _, _, _ := Mint(account, keySID, secret, g, now, time.Hour)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(ctx, tok, account, now, lookup); err != nil {
			b.Fatal(err)
		}
	}
}
