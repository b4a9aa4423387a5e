package httpapi_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/tallyhq/tally/internal/httpapi"
	"github.com/tallyhq/tally/internal/usage"
)

// policy says who may use a route (CONTRACT §2).
type policy struct {
	public        bool          // no credentials needed
	roles         []usage.Role  // roles allowed on their own account
	anyKey        bool          // any valid key, of any account and role (/v1/me)
	platformOnly  bool          // only platform keys (and then only roles)
	noPlatformFor bool          // a platform key naming another account gets 403 (tokens)
	platformWrite bool          // only a platform admin, on any account (rate card PUT)
	fresh         func() string // before each call, makes what the path's last parameter names (a DELETE removes it)
	success       int
	body          string
}

var (
	all     = []usage.Role{usage.RoleAdmin, usage.RoleIngest, usage.RoleFinance}
	admin   = []usage.Role{usage.RoleAdmin}
	ingest  = []usage.Role{usage.RoleIngest, usage.RoleAdmin}
	finance = []usage.Role{usage.RoleFinance, usage.RoleAdmin}
)

// TestAuthorizationMatrix sends every registered route × every role × own,
// other and platform account (and no, bad and revoked credentials) and
// checks the status of §2. A route without a row fails the test.
func TestAuthorizationMatrix(t *testing.T) {
	e := newEnv(t)
	seedReport(t, e) // acme has October events and a rate card
	victim := e.post(e.keys[e.acme][usage.RoleAdmin], "/v1/accounts/"+e.acme+"/keys", `{"role":"finance"}`).json(t)["sid"].(string)
	revoked := e.post(e.keys[e.acme][usage.RoleAdmin], "/v1/accounts/"+e.acme+"/keys", `{"role":"admin"}`).json(t)
	e.do(e.srv, e.keys[e.acme][usage.RoleAdmin], "DELETE", "/v1/accounts/"+e.acme+"/keys/"+revoked["sid"].(string), "", nil)
	tok := mintFor(t, e)

	rows := map[string]policy{
		"GET /healthz":                        {public: true, success: 200},
		"GET /readyz":                         {public: true, success: 200},
		"GET /metrics":                        {public: true, success: 200},
		"GET /openapi.yaml":                   {public: true, success: 200},
		"POST /v1/accounts":                   {platformOnly: true, roles: admin, success: 201, body: `{"name":"New"}`},
		"GET /v1/accounts":                    {platformOnly: true, roles: admin, success: 200},
		"GET /v1/me":                          {anyKey: true, success: 200},
		"POST /v1/accounts/:account_sid/keys": {roles: admin, success: 201, body: `{"role":"finance"}`},
		"GET /v1/accounts/:account_sid/keys":  {roles: admin, success: 200},
		"DELETE /v1/accounts/:account_sid/keys/:key_sid":                      {roles: admin, success: 204},
		"POST /v1/accounts/:account_sid/events":                               {roles: ingest, success: 200, body: batch(eventJSON("m1", "alice", "2026-10-05T12:00:00Z"))},
		"POST /v1/accounts/:account_sid/tokens":                               {roles: ingest, noPlatformFor: true, success: 201, body: `{"identity":"alice","grants":{"chat":{"service_sid":"ISa"}}}`},
		"POST /v1/accounts/:account_sid/tokens/verify":                        {roles: ingest, noPlatformFor: true, success: 200, body: `{"token":"` + tok + `"}`},
		"GET /v1/accounts/:account_sid/reports":                               {roles: finance, success: 200},
		"GET /v1/accounts/:account_sid/reports/:month":                        {roles: finance, success: 200},
		"GET /v1/accounts/:account_sid/reports/:month/users":                  {roles: finance, success: 200},
		"POST /v1/accounts/:account_sid/reports/:month/run":                   {roles: admin, success: 200},
		"GET /v1/accounts/:account_sid/rate-card":                             {roles: finance, success: 200},
		"PUT /v1/accounts/:account_sid/rate-card":                             {roles: admin, platformWrite: true, success: 200, body: `{"currency":"USD","free_users":2,"tiers":[{"up_to":null,"unit_price":"0.05"}]}`},
		"GET /v1/reports/:month":                                              {platformOnly: true, roles: finance, success: 200},
		"GET /v1/accounts/:account_sid/identities/stats":                      {roles: admin, success: 200},
		"GET /v1/accounts/:account_sid/identities":                            {roles: admin, success: 200},
		"GET /v1/accounts/:account_sid/identities/lookalikes":                 {roles: admin, success: 200},
		"GET /v1/accounts/:account_sid/services/:service_sid/users/:identity": {roles: admin, success: 200},
		"POST /v1/accounts/:account_sid/alerts":                               {roles: admin, success: 201, body: `{"metric":"active_users","threshold":1000000,"webhook_url":"https://203.0.113.10/hook"}`},
		"GET /v1/accounts/:account_sid/alerts":                                {roles: admin, success: 200},
		"GET /v1/accounts/:account_sid/alerts/:alert_sid":                     {roles: admin, success: 200},
		"DELETE /v1/accounts/:account_sid/alerts/:alert_sid":                  {roles: admin, success: 204, fresh: func() string { return seedAlert(t, e) }},
		"GET /v1/accounts/:account_sid/alerts/:alert_sid/deliveries":          {roles: admin, success: 200},
		"GET /docs": {public: true, success: 200},
	}
	concrete := strings.NewReplacer(":account_sid", e.acme, ":key_sid", victim, ":month", "2026-10",
		":service_sid", "ISa", ":identity", "bob", ":alert_sid", seedAlert(t, e))
	query := map[string]string{
		"GET /v1/accounts/:account_sid/identities/stats":      "?month=2026-10",
		"GET /v1/accounts/:account_sid/identities":            "?month=2026-10",
		"GET /v1/accounts/:account_sid/identities/lookalikes": "?month=2026-10",
	}

	type caller struct {
		name     string
		c        cred
		account  string // "" for bad credentials
		role     usage.Role
		platform bool
	}
	var callers []caller
	for _, acct := range []struct {
		name, sid string
		platform  bool
	}{{"own", e.acme, false}, {"other", e.other, false}, {"platform", e.platform, true}} {
		for _, r := range all {
			callers = append(callers, caller{acct.name + "/" + string(r), e.keys[acct.sid][r], acct.sid, r, acct.platform})
		}
	}
	callers = append(callers,
		caller{name: "no credentials"},
		caller{name: "wrong secret", c: cred{e.keys[e.acme][usage.RoleAdmin].sid, strings.Repeat("z", 32)}},
		caller{name: "revoked key", c: cred{revoked["sid"].(string), revoked["secret"].(string)}},
	)

	var routes []*echo.Route
	h := httpapi.New(httpapi.Config{Store: e.store})
	for _, r := range h.Routes() {
		if strings.HasSuffix(r.Path, "*") || r.Method == echo.RouteNotFound {
			continue
		}
		routes = append(routes, r)
	}
	for _, r := range routes {
		key := r.Method + " " + r.Path
		p, ok := rows[key]
		if !ok {
			t.Errorf("route %s has no row in the authorization matrix", key)
			continue
		}
		delete(rows, key)
		path := concrete.Replace(r.Path) + query[key]
		for _, cl := range callers {
			path := path
			if p.fresh != nil {
				path = path[:strings.LastIndex(path, "/")+1] + p.fresh()
			}
			want := expected(p, cl.account, cl.role, cl.platform, e.acme)
			if cl.account == "" && !p.public {
				want = http.StatusUnauthorized
			}
			name := fmt.Sprintf("%s %s as %s", r.Method, r.Path, cl.name)
			var resp response
			if p.body != "" {
				resp = e.do(e.srv, cl.c, r.Method, path, "application/json", strings.NewReader(p.body))
			} else {
				resp = e.do(e.srv, cl.c, r.Method, path, "", nil)
			}
			if resp.status != want {
				t.Errorf("%s: status %d, want %d: %.200s", name, resp.status, want, resp.body)
			}
		}
	}
	for key := range rows {
		t.Errorf("matrix row %s matches no registered route", key)
	}
}

func expected(p policy, account string, role usage.Role, platform bool, target string) int {
	if p.public || p.anyKey {
		return p.success
	}
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
	case p.platformWrite && !platform:
		return http.StatusForbidden
	case p.noPlatformFor && account != target:
		return http.StatusForbidden
	}
	return p.success
}

var jwtShape = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`)

// mintFor mints a token for alice with acme's ingest key.
func mintFor(t *testing.T, e *env) string {
	t.Helper()
	r := e.post(e.keys[e.acme][usage.RoleIngest], "/v1/accounts/"+e.acme+"/tokens",
		`{"identity":"alice","grants":{"chat":{"service_sid":"ISa"}}}`)
	if r.status != 201 {
		t.Fatalf("mint: %d %s", r.status, r.body)
	}
	tok, _ := r.json(t)["token"].(string)
	if !jwtShape.MatchString(tok) {
		t.Fatalf("token %q", tok)
	}
	return tok
}
