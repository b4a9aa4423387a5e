package token

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/usage"
)

// TestMintFormat decodes minted tokens by hand and compares their header and
// claims with exactly what §5 says.
func TestMintFormat(t *testing.T) {
	n := float64(now.Unix()) // encoding/json reads numbers as float64
	jti := keySID + "-" + strconv.FormatInt(now.Unix(), 10)
	tests := []struct {
		name       string
		g          Grants
		ttl        time.Duration
		wantClaims map[string]any
	}{
		{
			name: "chat",
			g:    Grants{Identity: "alice@example.com", Chat: &ChatGrant{ServiceSID: "IS1", EndpointID: "alice-iphone"}},
			ttl:  time.Hour,
			wantClaims: map[string]any{"jti": jti, "iss": keySID, "sub": account, "nbf": n, "exp": n + 3600,
				"grants": map[string]any{"identity": "alice@example.com",
					"chat": map[string]any{"service_sid": "IS1", "endpoint_id": "alice-iphone"}}},
		},
		{
			name: "chat with every member",
			g: Grants{Identity: "a", Chat: &ChatGrant{ServiceSID: "IS1", EndpointID: "e",
				DeploymentRoleSID: "RL1", PushCredentialSID: "CR1"}},
			ttl: 180 * time.Second,
			wantClaims: map[string]any{"jti": jti, "iss": keySID, "sub": account, "nbf": n, "exp": n + 180,
				"grants": map[string]any{"identity": "a", "chat": map[string]any{"service_sid": "IS1",
					"endpoint_id": "e", "deployment_role_sid": "RL1", "push_credential_sid": "CR1"}}},
		},
		{
			name: "sync is data_sync",
			g:    Grants{Identity: "bob", Sync: &SyncGrant{ServiceSID: "IS2"}},
			ttl:  86400 * time.Second,
			wantClaims: map[string]any{"jti": jti, "iss": keySID, "sub": account, "nbf": n, "exp": n + 86400,
				"grants": map[string]any{"identity": "bob", "data_sync": map[string]any{"service_sid": "IS2"}}},
		},
		{
			name: "both",
			g:    Grants{Identity: "bob", Chat: &ChatGrant{ServiceSID: "IS1"}, Sync: &SyncGrant{ServiceSID: "IS2", EndpointID: "x"}},
			ttl:  time.Hour,
			wantClaims: map[string]any{"jti": jti, "iss": keySID, "sub": account, "nbf": n, "exp": n + 3600,
				"grants": map[string]any{"identity": "bob", "chat": map[string]any{"service_sid": "IS1"},
					"data_sync": map[string]any{"service_sid": "IS2", "endpoint_id": "x"}}},
		},
	}
	wantHeader := map[string]any{"alg": "HS256", "typ": "JWT", "cty": "twilio-fpa;v=1"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A fraction of a second on the clock is dropped: nbf is whole seconds.
			tok, nbf, exp, err := Mint(account, keySID, secret, tt.g, now.Add(300*time.Millisecond), tt.ttl)
			if err != nil {
				t.Fatal(err)
			}
			if !nbf.Equal(now) || !exp.Equal(now.Add(tt.ttl)) {
				t.Errorf("nbf, exp = %v, %v; want %v, %v", nbf, exp, now, now.Add(tt.ttl))
			}
			h, c := segments(t, tok)
			if !reflect.DeepEqual(h, wantHeader) {
				t.Errorf("header = %v, want %v", h, wantHeader)
			}
			if !reflect.DeepEqual(c, tt.wantClaims) {
				t.Errorf("claims = %v, want %v", c, tt.wantClaims)
			}
		})
	}
}

func TestMintRefuses(t *testing.T) {
	chat := &ChatGrant{ServiceSID: "IS1"}
	ok := Grants{Identity: "a", Chat: chat}
	tests := []struct {
		name       string
		acct, key  string
		secret     []byte
		g          Grants
		ttl        time.Duration
		want422    bool // a *usage.ValidationError, the caller's mistake
		wantFields []string
	}{
		{"no grant", account, keySID, secret, Grants{Identity: "a"}, time.Hour, true, []string{"grants"}},
		{"no identity", account, keySID, secret, Grants{Chat: chat}, time.Hour, true, []string{"identity"}},
		{"identity 257 bytes", account, keySID, secret, Grants{Identity: strings.Repeat("a", 257), Chat: chat}, time.Hour, true, []string{"identity"}},
		{"identity with a newline", account, keySID, secret, Grants{Identity: "a\nb", Chat: chat}, time.Hour, true, []string{"identity"}},
		{"identity with U+0085", account, keySID, secret, Grants{Identity: "a\u0085b", Chat: chat}, time.Hour, true, []string{"identity"}},
		{"identity not UTF-8", account, keySID, secret, Grants{Identity: "a\xffb", Chat: chat}, time.Hour, true, []string{"identity"}},
		{"bad chat service", account, keySID, secret, Grants{Identity: "a", Chat: &ChatGrant{ServiceSID: "IS 1"}}, time.Hour, true, []string{"grants.chat.service_sid"}},
		{"no sync service", account, keySID, secret, Grants{Identity: "a", Sync: &SyncGrant{}}, time.Hour, true, []string{"grants.sync.service_sid"}},
		{"everything wrong", account, keySID, secret, Grants{}, time.Hour, true, []string{"identity", "grants"}},
		{"ttl 179 s", account, keySID, secret, ok, 179 * time.Second, true, []string{"ttl"}},
		{"ttl 86401 s", account, keySID, secret, ok, 86401 * time.Second, true, []string{"ttl"}},
		{"empty secret", account, keySID, nil, ok, time.Hour, false, nil},
		{"malformed key SID", account, "SK1", secret, ok, time.Hour, false, nil},
		{"malformed account SID", "AC1", keySID, secret, ok, time.Hour, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, _, _, err := Mint(tt.acct, tt.key, tt.secret, tt.g, now, tt.ttl)
			if err == nil {
				t.Fatalf("minted %s, want an error", tok)
			}
			var verr *usage.ValidationError
			if got := errors.As(err, &verr); got != tt.want422 {
				t.Fatalf("err = %v; is a validation error: got %v, want %v", err, got, tt.want422)
			}
			if verr == nil {
				return
			}
			var got []string
			for _, fe := range verr.Errors {
				got = append(got, fe.Field)
			}
			if !reflect.DeepEqual(got, tt.wantFields) {
				t.Errorf("fields = %v, want %v", got, tt.wantFields)
			}
		})
	}
}

func TestCheckTTL(t *testing.T) {
	tests := []struct {
		ttl  time.Duration
		want bool // valid
	}{
		{0, false},
		{-time.Hour, false},
		{179 * time.Second, false},
		{180 * time.Second, true},
		{DefaultTTL, true},
		{3600*time.Second + time.Millisecond, false},
		{86400 * time.Second, true},
		{86401 * time.Second, false},
		{86400*time.Second + time.Nanosecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.ttl.String(), func(t *testing.T) {
			err := CheckTTL(tt.ttl)
			if got := err == nil; got != tt.want {
				t.Fatalf("CheckTTL(%v) = %v; valid: got %v, want %v", tt.ttl, err, got, tt.want)
			}
			var verr *usage.ValidationError
			if err != nil && !errors.As(err, &verr) {
				t.Fatalf("CheckTTL(%v) = %T, want a *usage.ValidationError", tt.ttl, err)
			}
		})
	}
}

// TestRoundTrip mints and verifies every grant combination with identities
// that carry reserved and multi-byte characters.
func TestRoundTrip(t *testing.T) {
	identities := []string{"alice@example.com", "a/b?c#d%e", "用户😀", "!*'();:@&=+$,/?%#[]", "Zoë \"quoted\" \\ <tag>", strings.Repeat("é", 128)}
	grants := []struct {
		name string
		g    Grants
	}{
		{"chat", Grants{Chat: &ChatGrant{ServiceSID: "IS1", EndpointID: "e", DeploymentRoleSID: "RL1", PushCredentialSID: "CR1"}}},
		{"sync", Grants{Sync: &SyncGrant{ServiceSID: "IS2"}}},
		{"both", Grants{Chat: &ChatGrant{ServiceSID: "IS1"}, Sync: &SyncGrant{ServiceSID: "IS2", EndpointID: "x"}}},
	}
	for _, gg := range grants {
		for _, id := range identities {
			t.Run(gg.name+"/"+id, func(t *testing.T) {
				g := gg.g
				g.Identity = id
				tok, _, _, err := Mint(account, keySID, secret, g, now, time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				got, err := Verify(t.Context(), tok, account, now.Add(time.Minute), lookup)
				if err != nil {
					t.Fatal(err)
				}
				// A minted token is canonical: its re-encoding is itself.
				want := Claims{KeySID: keySID, AccountSID: account, Grants: g, NotBefore: now, ExpiresAt: now.Add(time.Hour), canonical: tok}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("claims = %+v, want %+v", got, want)
				}
				gotJSON, _ := json.Marshal(got.Grants)
				wantJSON, _ := json.Marshal(g)
				if string(gotJSON) != string(wantJSON) {
					t.Errorf("grants = %s, want %s", gotJSON, wantJSON)
				}
			})
		}
	}
}
