package token

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestVerifyReasons builds a token for every reason of §5, and for every
// liberty taken with what Twilio's libraries mint.
func TestVerifyReasons(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cty := map[string]any{"cty": "twilio-fpa;v=1"}
	hs := func(iss string, mutate func(jwt.MapClaims)) string {
		return build(t, jwt.SigningMethodHS256, secret, twilioClaims(iss, mutate), cty)
	}
	good := hs(keySID, nil)
	parts := strings.Split(good, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	withHeader := func(h string) string { return b64([]byte(h)) + "." + parts[1] + "." + parts[2] }
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, twilioClaims(keySID, nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	iatOnly := func(iat time.Time) func(jwt.MapClaims) {
		return func(c jwt.MapClaims) { delete(c, "nbf"); c["iat"] = iat.Unix() }
	}
	exp := func(at time.Time) func(jwt.MapClaims) { return func(c jwt.MapClaims) { c["exp"] = at.Unix() } }
	tests := []struct {
		name string
		tok  string
		at   time.Time
		want Reason // "" = valid
	}{
		// Accepted: what Twilio's libraries mint.
		{"twilio-go style (nbf, no iat)", good, now, ""},
		{"HS384", build(t, jwt.SigningMethodHS384, secret, twilioClaims(keySID, nil), cty), now, ""},
		{"HS512", build(t, jwt.SigningMethodHS512, secret, twilioClaims(keySID, nil), cty), now, ""},
		{"twilio-node style (iat, no nbf, twr)", build(t, jwt.SigningMethodHS256, secret, twilioClaims(keySID, iatOnly(now)),
			map[string]any{"cty": "twilio-fpa;v=1", "twr": "ie1"}), now, ""},
		{"no cty, no typ", build(t, jwt.SigningMethodHS256, secret, twilioClaims(keySID, nil), map[string]any{"typ": nil}), now, ""},
		{"fractional numeric dates", hs(keySID, func(c jwt.MapClaims) {
			c["nbf"] = float64(now.Unix()) + 0.5
			c["exp"] = float64(now.Add(time.Hour).Unix()) + 0.25
		}), now, ""},
		{"no sub", hs(keySID, func(c jwt.MapClaims) { delete(c, "sub") }), now, ""},
		{"a grant of another product only", hs(keySID, func(c jwt.MapClaims) {
			c["grants"] = map[string]any{"identity": "alice", "video": map[string]any{"room": "r"}}
		}), now, ""},

		// unsupported_algorithm: anything but HMAC-SHA2, whatever the rest.
		{"alg none", none, now, UnsupportedAlgorithm},
		{"RS256", build(t, jwt.SigningMethodRS256, rsaKey, twilioClaims(keySID, nil), cty), now, UnsupportedAlgorithm},
		{"PS256", build(t, jwt.SigningMethodPS256, rsaKey, twilioClaims(keySID, nil), cty), now, UnsupportedAlgorithm},
		{"ES256 header", withHeader(`{"alg":"ES256","typ":"JWT"}`), now, UnsupportedAlgorithm},
		{"EdDSA header", withHeader(`{"alg":"EdDSA"}`), now, UnsupportedAlgorithm},
		{"lowercase hs256", withHeader(`{"alg":"hs256"}`), now, UnsupportedAlgorithm},
		{"no alg", withHeader(`{"typ":"JWT"}`), now, UnsupportedAlgorithm},
		{"alg not a string", withHeader(`{"alg":256}`), now, UnsupportedAlgorithm},
		{"ALG in capitals beside none", withHeader(`{"alg":"none","ALG":"HS256"}`), now, UnsupportedAlgorithm},
		{"alg none with an unknown key", build(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, twilioClaims(unknown, nil), nil), now, UnsupportedAlgorithm},

		// malformed: the shape, then no iss, then (signed) no exp.
		{"empty", "", now, Malformed},
		{"two segments", parts[0] + "." + parts[1], now, Malformed},
		{"four segments", good + ".x", now, Malformed},
		{"header not base64url", "!!!." + parts[1] + "." + parts[2], now, Malformed},
		{"header padded", parts[0] + "=." + parts[1] + "." + parts[2], now, Malformed},
		{"header not JSON", withHeader(`alg=HS256`), now, Malformed},
		{"header an array", withHeader(`["HS256"]`), now, Malformed},
		{"header null", withHeader(`null`), now, Malformed},
		{"crit header", withHeader(`{"alg":"HS256","crit":["exp"]}`), now, Malformed},
		{"claims not JSON", parts[0] + "." + b64([]byte("not json")) + "." + parts[2], now, Malformed},
		{"claims not base64url", parts[0] + ".*." + parts[2], now, Malformed},
		{"signature not base64url", parts[0] + "." + parts[1] + ".***", now, Malformed},

		// One spelling per token (RFC 7515 §2): what decodes to the same
		// bytes written another way is malformed, so it cannot count again.
		{"signature's unused low bits set (1)", respell(t, good, 2, 1), now, Malformed},
		{"signature's unused low bits set (2)", respell(t, good, 2, 2), now, Malformed},
		{"signature's unused low bits set (3)", respell(t, good, 2, 3), now, Malformed},
		{"header's unused low bits set", respell(t, good, 0, 1), now, Malformed},
		{"signature padded", good + "=", now, Malformed},
		{"signature padded to a multiple of 4", parts[0] + "." + parts[1] + "." + parts[2] + "=", now, Malformed},
		{"standard alphabet", parts[0] + "." + parts[1] + ".+" + parts[2][1:], now, Malformed},
		{"trailing newline", good + "\n", now, Malformed},
		{"trailing CR LF", good + "\r\n", now, Malformed},
		{"line break inside the signature", parts[0] + "." + parts[1] + "." + parts[2][:10] + "\n" + parts[2][10:], now, Malformed},
		{"line break inside the claims", parts[0] + "." + parts[1][:10] + "\r\n" + parts[1][10:] + "." + parts[2], now, Malformed},
		{"leading space", " " + good, now, Malformed},
		{"trailing space", good + " ", now, Malformed},
		{"trailing tab", good + "\t", now, Malformed},
		{"NUL", good + "\x00", now, Malformed},
		{"no iss", hs(keySID, func(c jwt.MapClaims) { delete(c, "iss") }), now, Malformed},
		{"iss not a string", hs(keySID, func(c jwt.MapClaims) { c["iss"] = 7 }), now, Malformed},
		{"exp a string", hs(keySID, func(c jwt.MapClaims) { c["exp"] = "tomorrow" }), now, Malformed},
		{"exp negative", hs(keySID, func(c jwt.MapClaims) { c["exp"] = -1 }), now, Malformed},
		{"exp after year 9999", hs(keySID, func(c jwt.MapClaims) { c["exp"] = 1e300 }), now, Malformed},
		{"identity not a string", hs(keySID, func(c jwt.MapClaims) { c["grants"] = map[string]any{"identity": 5} }), now, Malformed},
		{"no exp", hs(keySID, func(c jwt.MapClaims) { delete(c, "exp") }), now, Malformed},
		{"exp null", hs(keySID, func(c jwt.MapClaims) { c["exp"] = nil }), now, Malformed},

		// The key and the signature.
		{"unknown key", hs(unknown, nil), now, UnknownKey},
		{"HS256 signed with another key's secret", build(t, jwt.SigningMethodHS256, secret2, twilioClaims(keySID, nil), cty), now, BadSignature},
		{"tampered claims", parts[0] + "." + b64([]byte(`{"iss":"`+keySID+`","exp":9999999999,"grants":{"identity":"mallory"}}`)) + "." + parts[2], now, BadSignature},
		{"no signature", parts[0] + "." + parts[1] + ".", now, BadSignature},
		{"HS512 header on an HS256 signature", withHeader(`{"alg":"HS512","typ":"JWT"}`), now, BadSignature},
		{"key with an empty secret, signed with it", build(t, jwt.SigningMethodHS256, []byte{}, twilioClaims(emptySID, nil), cty), now, BadSignature},
		{"revoked key, bad signature", build(t, jwt.SigningMethodHS256, secret2, twilioClaims(revSID, nil), cty), now, BadSignature},
		{"key of another account, bad signature", build(t, jwt.SigningMethodHS256, secret, twilioClaims(foreign, nil), cty), now, UnknownKey},
		{"key of another account", build(t, jwt.SigningMethodHS256, secret2, twilioClaims(foreign, nil), cty), now, WrongAccount},
		{"sub of another account", hs(keySID, func(c jwt.MapClaims) { c["sub"] = other }), now, WrongAccount},
		{"revoked key", hs(revSID, nil), now, RevokedKey},

		// Times: leeway of 60 s on both sides.
		{"59s past exp", good, now.Add(time.Hour + 59*time.Second), ""},
		{"60s past exp", good, now.Add(time.Hour + 60*time.Second), ""},
		{"60s and 1ns past exp", good, now.Add(time.Hour + 60*time.Second + time.Nanosecond), Expired},
		{"61s past exp", good, now.Add(time.Hour + 61*time.Second), Expired},
		{"nbf 59s ahead", good, now.Add(-59 * time.Second), ""},
		{"nbf exactly 60s ahead", good, now.Add(-60 * time.Second), ""},
		{"nbf 60s and 1ns ahead", good, now.Add(-60*time.Second - time.Nanosecond), NotYetValid},
		{"nbf 61s ahead", good, now.Add(-61 * time.Second), NotYetValid},
		{"iat 59s ahead, no nbf", hs(keySID, iatOnly(now)), now.Add(-59 * time.Second), ""},
		{"iat exactly 60s ahead, no nbf", hs(keySID, iatOnly(now)), now.Add(-60 * time.Second), ""},
		{"iat 60s and 1ns ahead, no nbf", hs(keySID, iatOnly(now)), now.Add(-60*time.Second - time.Nanosecond), NotYetValid},
		{"exp exactly 60s past, neither nbf nor iat", hs(keySID, func(c jwt.MapClaims) { delete(c, "nbf") }), now.Add(time.Hour + 60*time.Second), ""},
		{"exp 60s and 1ns past, neither nbf nor iat", hs(keySID, func(c jwt.MapClaims) { delete(c, "nbf") }), now.Add(time.Hour + 60*time.Second + time.Nanosecond), Expired},
		{"fractional exp exactly 60s past", hs(keySID, func(c jwt.MapClaims) { c["exp"] = float64(now.Add(time.Hour).Unix()) + 0.5 }),
			now.Add(time.Hour + 60*time.Second + 500*time.Millisecond), ""},
		{"iat 61s ahead, no nbf", hs(keySID, iatOnly(now)), now.Add(-61 * time.Second), NotYetValid},
		{"iat ahead, nbf now: nbf wins", hs(keySID, func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() }), now, ""},
		{"expired with neither nbf nor iat", hs(keySID, func(c jwt.MapClaims) { delete(c, "nbf") }), now.Add(2 * time.Hour), Expired},

		// Lifetime: at most 24 h.
		{"lifetime exactly 24h", hs(keySID, exp(now.Add(24*time.Hour))), now, ""},
		{"lifetime 24h+1s", hs(keySID, exp(now.Add(24*time.Hour+time.Second))), now, LifetimeTooLong},
		{"lifetime exactly 24h, fractional", hs(keySID, func(c jwt.MapClaims) {
			c["nbf"] = float64(now.Unix()) + 0.5
			c["exp"] = float64(now.Add(24*time.Hour).Unix()) + 0.5
		}), now, ""},
		{"lifetime 24h and a fraction", hs(keySID, func(c jwt.MapClaims) {
			c["exp"] = float64(now.Add(24*time.Hour).Unix()) + 0.001
		}), now, LifetimeTooLong},
		{"iat lifetime exactly 24h", hs(keySID, func(c jwt.MapClaims) {
			iatOnly(now)(c)
			exp(now.Add(24 * time.Hour))(c)
		}), now, ""},
		{"iat lifetime 24h+1s", hs(keySID, func(c jwt.MapClaims) {
			iatOnly(now.Add(-2 * time.Hour))(c)
			exp(now.Add(22*time.Hour + time.Second))(c)
		}), now, LifetimeTooLong},
		{"nbf wins over an old iat", hs(keySID, func(c jwt.MapClaims) {
			c["iat"] = now.Add(-48 * time.Hour).Unix() // 49 h from iat to exp
		}), now, ""},
		{"nbf wins over a recent iat", hs(keySID, func(c jwt.MapClaims) {
			c["nbf"] = now.Add(-2 * time.Hour).Unix()
			c["iat"] = now.Unix()
			exp(now.Add(22*time.Hour + time.Second))(c) // 1 s too long from nbf, fine from iat
		}), now, LifetimeTooLong},
		{"neither nbf nor iat, exp in 24h", hs(keySID, func(c jwt.MapClaims) {
			delete(c, "nbf")
			exp(now.Add(24 * time.Hour))(c)
		}), now, ""},
		{"neither nbf nor iat, exp in 24h and a fraction", hs(keySID, func(c jwt.MapClaims) {
			delete(c, "nbf")
			c["exp"] = float64(now.Add(24*time.Hour).Unix()) + 0.001
		}), now, LifetimeTooLong},
		{"neither nbf nor iat, exp in 24h+1s", hs(keySID, func(c jwt.MapClaims) {
			delete(c, "nbf")
			exp(now.Add(24*time.Hour + time.Second))(c)
		}), now, LifetimeTooLong},
		{"too long and expired: too long", hs(keySID, exp(now.Add(48*time.Hour))), now.Add(72 * time.Hour), LifetimeTooLong},

		// Identity.
		{"no identity", hs(keySID, func(c jwt.MapClaims) {
			c["grants"] = map[string]any{"chat": map[string]any{"service_sid": "IS1"}}
		}), now, MissingIdentity},
		{"empty identity", hs(keySID, func(c jwt.MapClaims) { c["grants"] = map[string]any{"identity": ""} }), now, MissingIdentity},
		{"no grants", hs(keySID, func(c jwt.MapClaims) { delete(c, "grants") }), now, MissingIdentity},
		{"identity with a control character", hs(keySID, func(c jwt.MapClaims) {
			c["grants"] = map[string]any{"identity": "a\u0000b"}
		}), now, MissingIdentity},
		{"identity of 257 bytes", hs(keySID, func(c jwt.MapClaims) {
			c["grants"] = map[string]any{"identity": strings.Repeat("a", 257)}
		}), now, MissingIdentity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(t.Context(), tt.tok, account, tt.at, lookup)
			if got := reason(err); got != tt.want {
				t.Fatalf("reason = %q (%v), want %q", got, err, tt.want)
			}
		})
	}
}

// TestVerifyClaims checks what a verified token yields, in particular where
// NotBefore comes from.
func TestVerifyClaims(t *testing.T) {
	grants := Grants{Identity: "alice", Chat: &ChatGrant{ServiceSID: "IS1"}}
	tests := []struct {
		name   string
		mutate func(jwt.MapClaims)
		header map[string]any
		want   Claims
	}{
		{"nbf", nil, nil, Claims{KeySID: keySID, AccountSID: account, Grants: grants, NotBefore: now, ExpiresAt: now.Add(time.Hour)}},
		{"iat (twilio-node)", func(c jwt.MapClaims) {
			delete(c, "nbf")
			c["iat"] = now.Add(-time.Minute).Unix()
		}, map[string]any{"cty": "twilio-fpa;v=1", "twr": "ie1"},
			Claims{KeySID: keySID, AccountSID: account, Grants: grants, NotBefore: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour)}},
		{"nbf and iat", func(c jwt.MapClaims) { c["iat"] = now.Add(-time.Minute).Unix() }, nil,
			Claims{KeySID: keySID, AccountSID: account, Grants: grants, NotBefore: now, ExpiresAt: now.Add(time.Hour)}},
		{"neither", func(c jwt.MapClaims) { delete(c, "nbf") }, nil,
			Claims{KeySID: keySID, AccountSID: account, Grants: grants, ExpiresAt: now.Add(time.Hour)}},
		{"fractions", func(c jwt.MapClaims) { c["exp"] = float64(now.Add(time.Hour).Unix()) + 0.5 }, nil,
			Claims{KeySID: keySID, AccountSID: account, Grants: grants, NotBefore: now, ExpiresAt: now.Add(time.Hour + 500*time.Millisecond)}},
		// twilio-node lets a chat grant omit serviceSid: the default service.
		{"chat grant without service_sid", func(c jwt.MapClaims) {
			c["grants"] = map[string]any{"identity": "alice", "chat": map[string]any{"endpoint_id": "e"}}
		}, nil, Claims{KeySID: keySID, AccountSID: account, NotBefore: now, ExpiresAt: now.Add(time.Hour),
			Grants: Grants{Identity: "alice", Chat: &ChatGrant{ServiceSID: DefaultService, EndpointID: "e"}}}},
		{"empty chat grant, sync grant", func(c jwt.MapClaims) {
			c["grants"] = map[string]any{"identity": "alice", "chat": map[string]any{}, "data_sync": map[string]any{"service_sid": "IS2"}}
		}, nil, Claims{KeySID: keySID, AccountSID: account, NotBefore: now, ExpiresAt: now.Add(time.Hour),
			Grants: Grants{Identity: "alice", Chat: &ChatGrant{ServiceSID: DefaultService}, Sync: &SyncGrant{ServiceSID: "IS2"}}}},
		{"chat grant with an empty service_sid", func(c jwt.MapClaims) {
			c["grants"] = map[string]any{"identity": "alice", "chat": map[string]any{"service_sid": ""}}
		}, nil, Claims{KeySID: keySID, AccountSID: account, NotBefore: now, ExpiresAt: now.Add(time.Hour),
			Grants: Grants{Identity: "alice", Chat: &ChatGrant{ServiceSID: DefaultService}}}},
		{"neither chat nor sync", func(c jwt.MapClaims) {
			c["grants"] = map[string]any{"identity": "alice", "video": map[string]any{"room": "r"}}
		}, nil, Claims{KeySID: keySID, AccountSID: account, NotBefore: now, ExpiresAt: now.Add(time.Hour),
			Grants: Grants{Identity: "alice"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := build(t, jwt.SigningMethodHS256, secret, twilioClaims(keySID, tt.mutate), tt.header)
			got, err := Verify(t.Context(), tok, account, now, lookup)
			if err != nil {
				t.Fatal(err)
			}
			if got.canonical != tok {
				t.Errorf("canonical = %q, want the token %q", got.canonical, tok)
			}
			got.canonical = ""
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("claims = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestVerifyLookup checks how Verify treats the path's account and the key
// store's answers.
func TestVerifyLookup(t *testing.T) {
	good, _, _, err := Mint(account, keySID, secret, Grants{Identity: "a", Chat: &ChatGrant{ServiceSID: "IS1"}}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	down := errors.New("database down")
	tests := []struct {
		name    string
		path    string
		lookup  func(context.Context, string) (SigningKey, error)
		want    Reason
		wantErr error // for a failure that is not a refusal
	}{
		{"on its own path", account, lookup, "", nil},
		{"on another account's path", other, lookup, WrongAccount, nil},
		{"lookup wraps ErrUnknownKey", account, func(context.Context, string) (SigningKey, error) {
			return SigningKey{}, fmt.Errorf("find key: %w", ErrUnknownKey)
		}, UnknownKey, nil},
		{"lookup fails", account, func(context.Context, string) (SigningKey, error) { return SigningKey{}, down }, "error", down},
		{"lookup sees the token's iss", account, func(_ context.Context, sid string) (SigningKey, error) {
			if sid != keySID {
				return SigningKey{}, fmt.Errorf("looked up %q, want %q", sid, keySID)
			}
			return SigningKey{AccountSID: account, Secret: secret}, nil
		}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(t.Context(), good, tt.path, now, tt.lookup)
			if got := reason(err); got != tt.want {
				t.Fatalf("reason = %q (%v), want %q", got, err, tt.want)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want it to wrap %v", err, tt.wantErr)
			}
		})
	}
}

// respell writes segment seg of tok with the unused low bits of its last
// character set to low (1 to 3): the same bytes, spelled another way, which
// a lenient decoder reads as the same segment.
func respell(t testing.TB, tok string, seg, low int) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	parts := strings.Split(tok, ".")
	s := parts[seg]
	unused := map[int]int{2: 4, 3: 2}[len(s)%4] // bits of the last character that encode nothing
	if unused == 0 || low >= 1<<unused {
		t.Fatalf("segment %d of %d characters has no %d in its unused bits", seg, len(s), low)
	}
	v := strings.IndexByte(alphabet, s[len(s)-1])
	parts[seg] = s[:len(s)-1] + string(alphabet[v|low])
	if v|low == v {
		t.Fatalf("segment %d already has bits %d set", seg, low)
	}
	lenient, err := base64.RawURLEncoding.DecodeString(parts[seg])
	strict, serr := base64.RawURLEncoding.DecodeString(s)
	if err != nil || serr != nil || string(lenient) != string(strict) {
		t.Fatalf("respelled segment %d decodes to other bytes (%v, %v)", seg, err, serr)
	}
	return strings.Join(parts, ".")
}
