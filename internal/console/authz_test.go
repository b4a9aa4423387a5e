package console_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tallyhq/tally/internal/console"
	"github.com/tallyhq/tally/internal/usage"
)

// page says who may open a console page: the API's rule for the same data
// (§12: a session may do exactly what its key may do on the API).
type page struct {
	method       string
	path         string // :account is Acme
	roles        []usage.Role
	platformOnly bool // the accounts table, like GET /v1/reports/{month}
	success      int
	form         url.Values // POST body, the CSRF token added
}

var (
	financeRoles = []usage.Role{usage.RoleFinance, usage.RoleAdmin}
	adminRoles   = []usage.Role{usage.RoleAdmin}
)

// TestPageMatrix opens every page as every role that may sign in, from the
// page's own account, another account and the platform account, and checks
// the status the API gives for the same data: 404 for another account, 403
// for a role that may not, success otherwise.
func TestPageMatrix(t *testing.T) {
	e := newEnv(t, console.Config{})
	e.seed()
	pages := []page{
		{method: "GET", path: "/console/accounts", platformOnly: true, roles: financeRoles, success: 200},
		{method: "GET", path: "/console/accounts/:account", roles: financeRoles, success: 200},
		{method: "GET", path: "/console/accounts/:account?month=2026-10", roles: financeRoles, success: 200},
		{method: "GET", path: "/console/accounts/:account/reports/2026-10", roles: financeRoles, success: 200},
		{method: "GET", path: "/console/accounts/:account/reports/2026-11", roles: financeRoles, success: 200},
		{method: "GET", path: "/console/accounts/:account/reports/2026-10/export?format=json", roles: financeRoles, success: 200},
		{method: "GET", path: "/console/accounts/:account/reports/2026-10/export?format=csv&version=1", roles: financeRoles, success: 200},
		{method: "GET", path: "/console/accounts/:account/reports/2026-10/export?format=roster", roles: financeRoles, success: 200},
		{method: "GET", path: "/console/accounts/:account/identities?month=2026-10", roles: adminRoles, success: 200},
		{method: "GET", path: "/console/accounts/:account/keys", roles: adminRoles, success: 200},
		{method: "POST", path: "/console/accounts/:account/keys", roles: adminRoles, success: 200,
			form: url.Values{"role": {"finance"}, "friendly_name": {"made in the matrix"}}},
		{method: "POST", path: "/console/accounts/:account/keys/:victim/revoke", roles: adminRoles, success: 303},
	}
	type caller struct {
		name     string
		account  string
		role     usage.Role
		platform bool
	}
	var callers []caller
	for _, a := range []struct {
		name     string
		sid      string
		platform bool
	}{{"own", e.acme, false}, {"other", e.other, false}, {"platform", e.platform, true}} {
		for _, r := range []usage.Role{usage.RoleFinance, usage.RoleAdmin} {
			callers = append(callers, caller{a.name + "/" + string(r), a.sid, r, a.platform})
		}
	}
	for _, cl := range callers {
		b := e.signedIn(e.keys[cl.account][cl.role])
		for _, p := range pages {
			name := fmt.Sprintf("%s %s as %s", p.method, p.path, cl.name)
			path := strings.ReplaceAll(p.path, ":account", e.acme)
			var victim string
			if strings.Contains(path, ":victim") {
				victim = e.mustAPI(e.keys[e.acme][usage.RoleAdmin], "POST", "/v1/accounts/"+e.acme+"/keys", `{"role":"finance"}`, 201).json(t)["sid"].(string)
				path = strings.ReplaceAll(path, ":victim", victim)
			}
			want := expected(p, cl.account, cl.role, cl.platform, e.acme)
			var r response
			if p.method == "POST" {
				form := url.Values{"csrf": {b.csrf("/console/accounts/" + cl.account)}}
				for k, v := range p.form {
					form[k] = v
				}
				r = b.post(path, form)
			} else {
				r = b.get(path)
			}
			if r.status != want {
				t.Errorf("%s: status %d, want %d: %.300s", name, r.status, want, r.body)
			}
			if victim != "" {
				revoked := keyRevoked(t, e, e.acme, victim)
				if revoked != (want == p.success) {
					t.Errorf("%s: victim revoked = %v, want %v", name, revoked, want == p.success)
				}
			}
		}
	}
}

func expected(p page, account string, role usage.Role, platform bool, target string) int {
	allowed := false
	for _, r := range p.roles {
		allowed = allowed || r == role
	}
	switch {
	case p.platformOnly:
		if platform && allowed {
			return p.success
		}
		return http.StatusForbidden
	case account != target && !platform:
		return http.StatusNotFound // another account must not learn this one exists
	case !allowed:
		return http.StatusForbidden
	}
	return p.success
}

func keyRevoked(t *testing.T, e *env, account, sid string) bool {
	t.Helper()
	ks, err := e.store.Keys(t.Context(), account)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range ks {
		if k.SID == sid {
			return k.RevokedAt != nil
		}
	}
	t.Fatalf("key %s not found", sid)
	return false
}

// TestHomeRedirects: /console/ sends a platform key to the accounts table
// and any other key to its account's page; no session, to the sign-in form.
func TestHomeRedirects(t *testing.T) {
	e := newEnv(t, console.Config{})
	for _, tc := range []struct {
		name string
		b    *browser
		want string
	}{
		{"no session", e.browser(), "/console/login"},
		{"acme finance", e.signedIn(e.keys[e.acme][usage.RoleFinance]), "/console/accounts/" + e.acme},
		{"platform admin", e.signedIn(e.keys[e.platform][usage.RoleAdmin]), "/console/accounts"},
	} {
		for _, path := range []string{"/console", "/console/"} {
			r := tc.b.get(path)
			if r.status != http.StatusSeeOther || r.header.Get("Location") != tc.want {
				t.Errorf("%s: GET %s: %d Location %q, want 303 %q", tc.name, path, r.status, r.header.Get("Location"), tc.want)
			}
		}
	}
	// Every page wants a session.
	anon := e.browser()
	for _, path := range []string{"/console/accounts", "/console/accounts/" + e.acme, "/console/accounts/" + e.acme + "/keys",
		"/console/accounts/" + e.acme + "/reports/2026-10/export?format=json", "/console/nowhere"} {
		if r := anon.get(path); r.status != http.StatusSeeOther || r.header.Get("Location") != "/console/login" {
			t.Errorf("GET %s without a session: %d %q, want 303 to /console/login", path, r.status, r.header.Get("Location"))
		}
	}
}
