package console_test

import (
	"bytes"
	"crypto/sha256"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/console"
	"github.com/tallyhq/tally/internal/usage"
)

// TestSignIn: the answers of §12 to right, wrong, unknown, revoked and
// ingest keys.
func TestSignIn(t *testing.T) {
	e := newEnv(t, console.Config{})
	revoked := e.mustAPI(e.keys[e.acme][usage.RoleAdmin], "POST", "/v1/accounts/"+e.acme+"/keys", `{"role":"admin"}`, 201).json(t)
	e.mustAPI(e.keys[e.acme][usage.RoleAdmin], "DELETE", "/v1/accounts/"+e.acme+"/keys/"+revoked["sid"].(string), "", 204)
	admin := e.keys[e.acme][usage.RoleAdmin]
	for _, tc := range []struct {
		name    string
		c       cred
		status  int
		message string
	}{
		{"finance", e.keys[e.acme][usage.RoleFinance], http.StatusSeeOther, ""},
		{"admin", admin, http.StatusSeeOther, ""},
		{"platform finance", e.keys[e.platform][usage.RoleFinance], http.StatusSeeOther, ""},
		{"wrong secret", cred{admin.sid, strings.Repeat("x", 32)}, http.StatusUnauthorized, "do not match"},
		{"empty secret", cred{admin.sid, ""}, http.StatusUnauthorized, "do not match"},
		{"unknown key", cred{"SK" + strings.Repeat("0", 32), admin.secret}, http.StatusUnauthorized, "do not match"},
		{"not a key SID", cred{"alice", admin.secret}, http.StatusUnauthorized, "do not match"},
		{"revoked key", cred{revoked["sid"].(string), revoked["secret"].(string)}, http.StatusUnauthorized, "do not match"},
		{"ingest key", e.keys[e.acme][usage.RoleIngest], http.StatusForbidden, "may not use the console"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := e.browser()
			r := b.signIn(tc.c)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %.300s", r.status, tc.status, r.body)
			}
			if tc.status == http.StatusSeeOther {
				if loc := r.header.Get("Location"); loc != "/console/" {
					t.Errorf("Location %q, want /console/", loc)
				}
				if b.sessionCookie() == nil {
					t.Error("no session cookie after signing in")
				}
				return
			}
			if !bytes.Contains(r.body, []byte(tc.message)) || formToken(r.body) == "" {
				t.Errorf("want the form again with %q: %.500s", tc.message, r.body)
			}
			if b.sessionCookie() != nil || strings.Contains(r.header.Get("Set-Cookie"), console.SessionCookie) {
				t.Error("a session cookie was set for a refused sign-in")
			}
			if bytes.Contains(r.body, []byte(tc.c.secret)) && tc.c.secret != "" {
				t.Error("the secret is echoed back in the form")
			}
		})
	}
}

// TestSessionCookieFlags: HttpOnly, SameSite=Strict, Path=/console, a
// 12-hour lifetime, and Secure exactly when the request came over HTTPS.
func TestSessionCookieFlags(t *testing.T) {
	e := newEnv(t, console.Config{})
	for _, https := range []bool{false, true} {
		b := e.browser()
		tok := b.csrf("/console/login")
		var hdr []string
		if https {
			hdr = []string{"X-Forwarded-Proto", "https"}
		}
		c := e.keys[e.acme][usage.RoleFinance]
		r := b.post("/console/login", url.Values{"csrf": {tok}, "key_sid": {c.sid}, "secret": {c.secret}}, hdr...)
		if r.status != http.StatusSeeOther {
			t.Fatalf("sign in: %d %s", r.status, r.body)
		}
		var got *http.Cookie
		for _, ck := range (&http.Response{Header: r.header}).Cookies() {
			if ck.Name == console.SessionCookie {
				got = ck
			}
		}
		if got == nil {
			t.Fatalf("https=%v: no %s cookie in %q", https, console.SessionCookie, r.header["Set-Cookie"])
		}
		if !got.HttpOnly || got.SameSite != http.SameSiteStrictMode || got.Path != "/console" || got.Secure != https {
			t.Errorf("https=%v: cookie %q, want HttpOnly, SameSite=Strict, Path=/console, Secure=%v", https, got.String(), https)
		}
		if got.MaxAge != int((12 * time.Hour).Seconds()) {
			t.Errorf("https=%v: Max-Age %d, want 12 hours", https, got.MaxAge)
		}
		if len(got.Value) < 40 {
			t.Errorf("session token %d characters: too short to be unguessable", len(got.Value))
		}
	}
}

// TestSessionStoresOnlyAHash: the database holds the token's hash, never
// the token.
func TestSessionStoresOnlyAHash(t *testing.T) {
	e := newEnv(t, console.Config{})
	b := e.signedIn(e.keys[e.acme][usage.RoleFinance])
	tok := b.sessionCookie().Value
	rows, err := e.store.Pool().Query(t.Context(), `SELECT token_hash FROM console_sessions`)
	if err != nil {
		t.Fatal(err)
	}
	var hashes [][]byte
	for rows.Next() {
		var h []byte
		if err := rows.Scan(&h); err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h)
	}
	want := sha256.Sum256([]byte(tok))
	if len(hashes) != 1 || !bytes.Equal(hashes[0], want[:]) || bytes.Contains(hashes[0], []byte(tok)) {
		t.Errorf("stored %x, want only the SHA-256 of the token", hashes)
	}
}

// TestRevocationEndsSession: revoking the key behind a session, through
// the API or the console, ends the session within 5 seconds (at once).
func TestRevocationEndsSession(t *testing.T) {
	e := newEnv(t, console.Config{})
	admin := e.keys[e.acme][usage.RoleAdmin]
	for _, via := range []string{"api", "console"} {
		t.Run(via, func(t *testing.T) {
			k := e.mustAPI(admin, "POST", "/v1/accounts/"+e.acme+"/keys", `{"role":"finance"}`, 201).json(t)
			victim := cred{k["sid"].(string), k["secret"].(string)}
			b := e.signedIn(victim)
			page := "/console/accounts/" + e.acme
			if r := b.get(page); r.status != 200 {
				t.Fatalf("before revocation: %d", r.status)
			}
			switch via {
			case "api":
				e.mustAPI(admin, "DELETE", "/v1/accounts/"+e.acme+"/keys/"+victim.sid, "", 204)
			case "console":
				a := e.signedIn(admin)
				tok := a.csrf("/console/accounts/" + e.acme + "/keys")
				if r := a.post("/console/accounts/"+e.acme+"/keys/"+victim.sid+"/revoke", url.Values{"csrf": {tok}}); r.status != 303 {
					t.Fatalf("revoke: %d %s", r.status, r.body)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				r := b.get(page)
				if r.status == http.StatusSeeOther && r.header.Get("Location") == "/console/login" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("5 s after revocation the session still answers %d", r.status)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if r := e.browser().signIn(victim); r.status != http.StatusUnauthorized {
				t.Errorf("sign in with the revoked key: %d, want 401", r.status)
			}
		})
	}
}

// TestSessionLimits: logout ends the session on the server (the old cookie
// no longer works), and a session ends 12 hours after sign-in.
func TestSessionLimits(t *testing.T) {
	e := newEnv(t, console.Config{})
	page := "/console/accounts/" + e.acme
	b := e.signedIn(e.keys[e.acme][usage.RoleFinance])
	old := b.sessionCookie().Value
	tok := b.csrf(page)
	if r := b.post("/console/logout", url.Values{"csrf": {tok}}); r.status != 303 || r.header.Get("Location") != "/console/login" {
		t.Fatalf("logout: %d %q", r.status, r.header.Get("Location"))
	}
	if b.sessionCookie() != nil {
		t.Error("the session cookie is still in the browser after logout")
	}
	replay := e.browser()
	u, _ := url.Parse(e.srv.URL + "/console/")
	replay.client.Jar.SetCookies(u, []*http.Cookie{{Name: console.SessionCookie, Value: old, Path: "/console"}})
	if r := replay.get(page); r.status != http.StatusSeeOther {
		t.Errorf("the cookie of a logged-out session still opens pages: %d", r.status)
	}

	b = e.signedIn(e.keys[e.acme][usage.RoleFinance])
	e.clock.add(12*time.Hour - time.Second)
	if r := b.get(page); r.status != 200 {
		t.Fatalf("just before 12 hours: %d", r.status)
	}
	e.clock.add(2 * time.Second)
	if r := b.get(page); r.status != http.StatusSeeOther || r.header.Get("Location") != "/console/login" {
		t.Errorf("after 12 hours: %d %q, want 303 to the sign-in form", r.status, r.header.Get("Location"))
	}
}

// TestCSRF: every POST without the token of its form is refused with 403
// and changes nothing, even from a browser that says same-origin.
func TestCSRF(t *testing.T) {
	e := newEnv(t, console.Config{})
	admin := e.keys[e.acme][usage.RoleAdmin]
	b := e.signedIn(admin)
	keysPage := "/console/accounts/" + e.acme + "/keys"
	tok := b.csrf(keysPage)
	victim := e.mustAPI(admin, "POST", "/v1/accounts/"+e.acme+"/keys", `{"role":"finance"}`, 201).json(t)["sid"].(string)
	countKeys := func() int {
		ks, err := e.store.Keys(t.Context(), e.acme)
		if err != nil {
			t.Fatal(err)
		}
		return len(ks)
	}
	before := countKeys()
	tokens := map[string]url.Values{
		"no token":    {},
		"empty token": {"csrf": {""}},
		"wrong token": {"csrf": {strings.Repeat("A", len(tok))}},
	}
	posts := map[string]url.Values{
		keysPage: {"role": {"admin"}, "friendly_name": {"forged"}},
		"/console/accounts/" + e.acme + "/keys/" + victim + "/revoke": {},
		"/console/logout": {},
		"/console/login":  {"key_sid": {admin.sid}, "secret": {admin.secret}},
	}
	for tname, tv := range tokens {
		for path, body := range posts {
			for _, hdr := range [][]string{nil, {"Sec-Fetch-Site", "same-origin"}} {
				form := url.Values{}
				for k, v := range body {
					form[k] = v
				}
				for k, v := range tv {
					form[k] = v
				}
				r := b.post(path, form, hdr...)
				if r.status != http.StatusForbidden {
					t.Errorf("POST %s with %s (headers %q): %d, want 403", path, tname, hdr, r.status)
				}
			}
		}
	}
	// A request from another site is refused even with the right token.
	r := b.post(keysPage, url.Values{"csrf": {tok}, "role": {"admin"}}, "Sec-Fetch-Site", "cross-site")
	if r.status != http.StatusForbidden {
		t.Errorf("cross-site POST with a valid token: %d, want 403", r.status)
	}
	// Another visitor's token does not fit this visitor's cookie.
	stranger := e.browser().csrf("/console/login")
	if r := b.post(keysPage, url.Values{"csrf": {stranger}, "role": {"admin"}}); r.status != http.StatusForbidden {
		t.Errorf("POST with another browser's token: %d, want 403", r.status)
	}
	if got := countKeys(); got != before {
		t.Errorf("keys: %d, want %d: a refused POST created one", got, before)
	}
	if keyRevoked(t, e, e.acme, victim) {
		t.Error("a refused POST revoked a key")
	}
	if r := b.get(keysPage); r.status != 200 {
		t.Errorf("a refused logout ended the session: %d", r.status)
	}
	// And with the token, the same POST works.
	if r := b.post(keysPage, url.Values{"csrf": {tok}, "role": {"finance"}, "friendly_name": {"real"}}); r.status != 200 || countKeys() != before+1 {
		t.Errorf("POST with the token: %d, keys %d", r.status, countKeys())
	}
}

// TestSecurityHeaders: every console response, pages, redirects, errors,
// files and refusals alike, carries the Content-Security-Policy of §12.
func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, console.Config{})
	anon := e.browser()
	admin := e.signedIn(e.keys[e.acme][usage.RoleAdmin])
	finance := e.signedIn(e.keys[e.acme][usage.RoleFinance])
	responses := map[string]response{
		"login form":       anon.get("/console/login"),
		"redirect":         anon.get("/console/accounts"),
		"static css":       anon.get("/console/static/console.css"),
		"static js":        anon.get("/console/static/console.js"),
		"missing static":   anon.get("/console/static/nope.css"),
		"month page":       admin.get("/console/accounts/" + e.acme),
		"keys page":        admin.get("/console/accounts/" + e.acme + "/keys"),
		"forbidden":        finance.get("/console/accounts/" + e.acme + "/keys"),
		"not found":        admin.get("/console/accounts/" + e.other),
		"unknown page":     admin.get("/console/nowhere"),
		"bad month":        admin.get("/console/accounts/" + e.acme + "?month=2026-13"),
		"future month":     admin.get("/console/accounts/" + e.acme + "/identities?month=2026-12"),
		"export":           admin.get("/console/accounts/" + e.acme + "/reports/2026-10/export?format=json"),
		"refused post":     admin.post("/console/logout", url.Values{}),
		"method not found": admin.post("/console/accounts/"+e.acme, url.Values{}),
		"failed sign-in":   e.browser().signIn(cred{"SK" + strings.Repeat("1", 32), "x"}),
	}
	for name, r := range responses {
		csp := r.header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s (%d): Content-Security-Policy %q", name, r.status, csp)
		}
		if r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no X-Content-Type-Options: nosniff", name)
		}
	}
	want := map[string]int{"forbidden": 403, "not found": 404, "unknown page": 404, "bad month": 422, "future month": 422,
		"refused post": 403, "missing static": 404}
	for name, status := range want {
		if r := responses[name]; r.status != status {
			t.Errorf("%s: %d, want %d", name, r.status, status)
		} else if !strings.Contains(r.header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: Content-Type %q, want an HTML page", name, r.header.Get("Content-Type"))
		}
	}
	// No inline script or style anywhere: the policy would block them.
	for _, name := range []string{"login form", "month page", "keys page"} {
		body := responses[name].body
		for _, bad := range []string{"<script>", " style=", "<style", "javascript:", " onclick="} {
			if bytes.Contains(body, []byte(bad)) {
				t.Errorf("%s holds %q, which the policy blocks", name, bad)
			}
		}
	}
}

// TestSignInRateLimit: failed sign-ins are limited per key SID and per
// client address; the right secret then still has to wait.
func TestSignInRateLimit(t *testing.T) {
	e := newEnv(t, console.Config{KeySignIns: console.Limit{Rate: 0.001, Burst: 3}, AddressSignIns: console.Limit{Rate: 0.001, Burst: 6}})
	admin := e.keys[e.acme][usage.RoleAdmin]
	b := e.browser()
	for i := range 3 {
		if r := b.signIn(cred{admin.sid, "wrong"}); r.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d, want 401", i+1, r.status)
		}
	}
	r := b.signIn(admin)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("after 3 failures for one key: %d (Retry-After %q), want 429", r.status, r.header.Get("Retry-After"))
	}
	// Another key from the same address still may, until the address's
	// budget is spent too.
	finance := e.keys[e.acme][usage.RoleFinance]
	for i := range 3 {
		if r := b.signIn(cred{finance.sid, "wrong"}); r.status != http.StatusUnauthorized {
			t.Fatalf("other key, attempt %d: %d, want 401", i+1, r.status)
		}
	}
	other := e.keys[e.other][usage.RoleAdmin]
	if r := b.signIn(other); r.status != http.StatusTooManyRequests {
		t.Errorf("after 6 failures from one address: %d, want 429", r.status)
	}
}
