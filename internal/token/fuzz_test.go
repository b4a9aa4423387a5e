package token

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tallyhq/tally/internal/usage"
)

// FuzzVerify: Verify never panics, and never accepts a token unless its
// signature verifies, by golang-jwt on its own, with the secret of an active
// key of the path's account, and it names a valid identity; and a token it
// accepts is canonical (its segments re-encoded are itself), so no two
// spellings of one token are both accepted and counted twice.
func FuzzVerify(f *testing.F) {
	g := Grants{Identity: "alice", Chat: &ChatGrant{ServiceSID: "IS1"}, Sync: &SyncGrant{ServiceSID: "IS2", EndpointID: "e"}}
	good, _, _, err := Mint(account, keySID, secret, g, now, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(good, ".")
	node := build(f, jwt.SigningMethodHS512, secret2, twilioClaims(key2SID, func(c jwt.MapClaims) {
		delete(c, "nbf")
		c["iat"] = now.Unix()
	}), map[string]any{"cty": "twilio-fpa;v=1", "twr": "ie1"})
	for _, seed := range []string{
		good,
		node,
		build(f, jwt.SigningMethodHS384, secret, twilioClaims(keySID, func(c jwt.MapClaims) { c["exp"] = 1.7914e9 }), nil),
		build(f, jwt.SigningMethodHS256, secret, twilioClaims(revSID, nil), nil),
		build(f, jwt.SigningMethodHS256, secret2, twilioClaims(foreign, nil), nil),
		build(f, jwt.SigningMethodHS256, []byte{}, twilioClaims(emptySID, nil), nil),
		parts[0] + "." + parts[1] + ".",
		"eyJhbGciOiJub25lIn0." + parts[1] + ".",
		"eyJhbGciOiJIUzI1NiJ9.e30.AAAA",
		strings.ToUpper(good),
		respell(f, good, 2, 1),
		good + "\n",
		" " + good,
		good + "=",
		"a.b.c",
		"..",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := Verify(context.Background(), tok, account, now, lookup)
		if err != nil {
			return
		}
		key, lerr := lookup(context.Background(), c.KeySID)
		if lerr != nil || key.Revoked || key.AccountSID != account || len(key.Secret) == 0 {
			t.Fatalf("accepted a token of key %s (%+v, %v)", c.KeySID, key, lerr)
		}
		if c.canonical != tok {
			t.Fatalf("accepted %q, whose canonical spelling is %q", tok, c.canonical)
		}
		_, perr := jwt.NewParser(jwt.WithValidMethods([]string{"HS256", "HS384", "HS512"}), jwt.WithStrictDecoding(), jwt.WithoutClaimsValidation()).
			Parse(tok, func(*jwt.Token) (any, error) { return key.Secret, nil })
		if perr != nil {
			t.Fatalf("accepted a token whose signature does not verify: %v", perr)
		}
		if msg := usage.CheckIdentity(c.Grants.Identity); msg != "" {
			t.Fatalf("accepted identity %q: %s", c.Grants.Identity, msg)
		}
		if c.AccountSID != account || c.ExpiresAt.IsZero() {
			t.Fatalf("accepted claims %+v", c)
		}
	})
}
