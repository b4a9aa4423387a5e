package token

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// claimsJSON is the claims segment of tok, decoded.
func claimsJSON(t testing.TB, tok string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// decodeClaims is the encoding/json path of Verify.
func decodeClaims(b string) (claims, bool) {
	var c claims
	err := json.Unmarshal([]byte(b), &c)
	return c, err == nil
}

// TestScanClaims: the scanner reads what Mint and Twilio's libraries write,
// so Verify's common case skips encoding/json, and gives up on the rest.
func TestScanClaims(t *testing.T) {
	g := Grants{Identity: "alice@example.com", Chat: &ChatGrant{ServiceSID: "IS1", EndpointID: "e",
		DeploymentRoleSID: "RL1", PushCredentialSID: "CR1"}, Sync: &SyncGrant{ServiceSID: "IS2", EndpointID: "f"}}
	minted, _, _, err := Mint(account, keySID, secret, g, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	node := build(t, jwt.SigningMethodHS256, secret, twilioClaims(keySID, func(c jwt.MapClaims) {
		delete(c, "nbf")
		c["iat"] = now.Unix()
	}), nil)
	for name, b := range map[string]string{
		"Mint":        claimsJSON(t, minted),
		"twilio-go":   claimsJSON(t, build(t, jwt.SigningMethodHS256, secret, twilioClaims(keySID, nil), nil)),
		"twilio-node": claimsJSON(t, node),
		"spaced":      ` { "iss" : "SK1" , "grants" : { "chat" : { } } , "exp" : 0 } `,
		"empty":       `{}`,
	} {
		got, ok := scanClaims(b)
		want, wok := decodeClaims(b)
		if !ok || !wok || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: scanClaims(%s) = %+v, %v; encoding/json: %+v, %v", name, b, got, ok, want, wok)
		}
	}
	if c, _ := scanClaims(claimsJSON(t, minted)); c.Grants == nil || !reflect.DeepEqual(*c.Grants, g) || c.Exp.t != now.Add(time.Hour) {
		t.Errorf("scanned the minted claims to %+v", c)
	}
	// Gives up: valid claims of other shapes (encoding/json reads them),
	// and syntax it refuses too.
	for _, b := range []string{
		`{"exp":1.5}`, `{"exp":1e9}`, `{"exp":-1}`, `{"exp":01}`, `{"exp":null}`, `{"exp":"1"}`,
		`{"exp":1234567890123456}`, `{"exp":253402300800}`,
		`{"iss":"a","iss":"b"}`, `{"ISS":"a"}`, `{"aud":"x"}`, `{"iss":"\u0041"}`, "{\"iss\":\"\xff\"}",
		`{"grants":{"video":{}}}`, `{"grants":{"chat":{"service_sid":"a","service_sid":"b"}}}`,
		`{"grants":{"chat":null}}`, `{"grants":{"identity":"a","identity":"b"}}`, `{"grants":{"data_sync":{"push_credential_sid":"x"}}}`,
		`{"grants":{},"grants":{}}`, `{"grants":[]}`,
		``, `{`, `{"iss":"a",}`, `{"iss":"a"}x`, `{"iss":"a"} {}`, `[]`, `null`,
	} {
		if c, ok := scanClaims(b); ok {
			t.Errorf("scanClaims(%s) = %+v, want it to give up", b, c)
		}
	}
}

// FuzzScanClaims checks the scanner against encoding/json: whatever it
// decodes, encoding/json decodes to the same claims.
func FuzzScanClaims(f *testing.F) {
	g := Grants{Identity: "alice", Chat: &ChatGrant{ServiceSID: "IS1", EndpointID: "e"}, Sync: &SyncGrant{ServiceSID: "IS2"}}
	minted, _, _, err := Mint(account, keySID, secret, g, now, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		claimsJSON(f, minted),
		`{"iss":"SK1","iat":0,"exp":253402300799,"grants":{"identity":"","data_sync":{}}}`,
		`{"exp":1.5,"Grants":{"Identity":"a"}}`,
		`{"jti":"a","jti":"b"}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b string) {
		got, ok := scanClaims(b)
		if !ok {
			return
		}
		want, wok := decodeClaims(b)
		if !wok || !reflect.DeepEqual(got, want) {
			t.Fatalf("scanned %q to %+v; encoding/json: %+v (ok %v)", b, got, want, wok)
		}
	})
}
