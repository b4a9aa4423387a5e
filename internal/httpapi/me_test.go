package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/tallyhq/tally/internal/usage"
)

// TestMe: every role of every account learns its own key, account, role and
// whether it is a platform key; bad credentials get 401 with the challenge.
func TestMe(t *testing.T) {
	e := newEnv(t)
	for _, acct := range []string{e.platform, e.acme} {
		for _, role := range []usage.Role{usage.RoleAdmin, usage.RoleIngest, usage.RoleFinance} {
			t.Run(acct[:6]+"/"+string(role), func(t *testing.T) {
				k := e.keys[acct][role]
				r := e.get(k, "/v1/me")
				if r.status != http.StatusOK {
					t.Fatalf("status %d, want 200: %s", r.status, r.body)
				}
				got := r.json(t)
				want := map[string]any{"api_key_sid": k.sid, "account_sid": acct, "role": string(role), "platform": acct == e.platform}
				if len(got) != len(want) {
					t.Errorf("got members %v, want exactly %v", got, want)
				}
				for name, v := range want {
					if got[name] != v {
						t.Errorf("%s = %v, want %v", name, got[name], v)
					}
				}
			})
		}
	}
	t.Run("unauthenticated", func(t *testing.T) {
		for _, c := range []cred{{}, {e.keys[e.acme][usage.RoleAdmin].sid, "wrong-secret"}} {
			r := e.get(c, "/v1/me")
			if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") != `Basic realm="tally"` {
				t.Errorf("credentials %q: status %d, WWW-Authenticate %q; want 401 with the challenge", c.sid, r.status, r.header.Get("WWW-Authenticate"))
			}
		}
	})
	t.Run("revoked", func(t *testing.T) {
		k := e.keys[e.other][usage.RoleIngest]
		if err := e.store.RevokeKey(t.Context(), e.other, k.sid); err != nil {
			t.Fatal(err)
		}
		srv := e.newServer(0) // a fresh replica: no cached key
		if r := e.do(srv, k, http.MethodGet, "/v1/me", "", nil); r.status != http.StatusUnauthorized {
			t.Errorf("revoked key: status %d, want 401", r.status)
		}
	})
}
