package console_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/tallyhq/tally/internal/console"
	"github.com/tallyhq/tally/internal/httpapi"
	"github.com/tallyhq/tally/internal/keys"
	"github.com/tallyhq/tally/internal/pgtest"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/secrets"
	"github.com/tallyhq/tally/internal/usage"
)

// On plain PostgreSQL only: what this package adds over the API is HTTP, and
// the API's store code is tested on Citus too (internal/postgres, httpapi).
func TestMain(m *testing.M) { pgtest.MainOn(m, pgtest.Postgres) }

// The tests build the server exactly as `tally serve` does: the API's echo
// instance with the console registered on it, so that the console's figures
// and downloads can be compared with the API's on one database.

type cred struct{ sid, secret string }

// clock is the service's clock, moved by tests while the server reads it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type env struct {
	t                     *testing.T
	store                 *postgres.Store
	box                   *secrets.Box
	clock                 *clock
	srv                   *httptest.Server
	platform, acme, other string
	keys                  map[string]map[usage.Role]cred
}

// newEnv starts a server on a fresh database with three accounts (a
// platform, Acme and Other), a key of each role in each, and Acme's months.
func newEnv(t *testing.T, cfg console.Config) *env {
	t.Helper()
	pool, _ := pgtest.NewDB(t)
	box, err := secrets.NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, box: box, clock: &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)},
		keys: map[string]map[usage.Role]cred{}}
	e.store = postgres.New(pool, e.clock.now)
	for _, a := range []struct {
		name     string
		platform bool
		sid      *string
	}{{"Platform", true, &e.platform}, {"Acme Chat", false, &e.acme}, {"Other", false, &e.other}} {
		acct, err := e.store.CreateAccount(t.Context(), a.name, a.platform)
		if err != nil {
			t.Fatal(err)
		}
		*a.sid = acct.SID
		e.keys[acct.SID] = map[usage.Role]cred{}
		for _, r := range []usage.Role{usage.RoleAdmin, usage.RoleIngest, usage.RoleFinance} {
			k, secret, err := keys.Create(t.Context(), e.store, box, acct.SID, r, string(r)+" key")
			if err != nil {
				t.Fatal(err)
			}
			e.keys[acct.SID][r] = cred{k.SID, secret}
		}
	}
	logs := slog.New(slog.NewJSONHandler(io.Discard, nil))
	h := httpapi.New(httpapi.Config{Store: e.store, Box: box, Now: e.clock.now, Logger: logs, KeyTTL: time.Second})
	cfg.Store, cfg.Box, cfg.Now, cfg.Logger = e.store, box, e.clock.now, logs
	console.Register(h, cfg)
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

// seed gives Acme events from July to November 2026 in two services, a
// rate card, version 1 of July to September and versions 1 and 2 of
// October (a late event added a user); November stays provisional.
func (e *env) seed() {
	t := e.t
	t.Helper()
	ev := func(id, svc, identity, act, src, at string) string {
		return fmt.Sprintf(`{"id":%q,"activity":%q,"source":%q,"service_sid":%q,"identity":%q,"occurred_at":%q}`,
			id, act, src, svc, identity, at)
	}
	var events []string
	// A history for the chart: July to September grow, October is busy.
	for month, users := range map[string]int{"07": 420, "08": 690, "09": 950} {
		for i := range users {
			events = append(events, ev(fmt.Sprintf("%s-%d", month, i), "ISa", fmt.Sprintf("user-%04d", i), "send", "sdk", "2026-"+month+"-12T10:00:00Z"))
		}
	}
	for i := range 1203 { // enough for thousands separators and every tier
		events = append(events, ev(fmt.Sprintf("oct-%d", i), "ISa", fmt.Sprintf("user-%04d", i), "send", "sdk", "2026-10-05T10:00:00Z"))
	}
	events = append(events,
		ev("s1", "ISa", "alice@example.com", "send", "sdk", "2026-09-01T10:00:00Z"),
		ev("s2", "ISa", "bob", "authenticate", "sdk", "2026-09-02T10:00:00Z"),
		ev("o1", "ISa", "alice@example.com", "send", "sdk", "2026-10-01T10:00:00Z"),
		ev("o2", "ISa", "alice@example.com", "join", "sdk", "2026-10-01T11:00:00Z"),
		ev("o3", "ISb", "bob", "create", "rest", "2026-10-02T10:00:00Z"),
		ev("o4", "ISb", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "authenticate", "sdk", "2026-10-03T10:00:00Z"),
		ev("o5", "ISb", "carol/ops", "send", "rest", "2026-10-04T10:00:00Z"),
		ev("n1", "ISa", "alice@example.com", "send", "sdk", "2026-11-02T10:00:00Z"),
		ev("n2", "ISa", "dave", "update", "rest", "2026-11-03T10:00:00Z"),
		ev("n3", "ISb", "erin", "send", "sdk", "2026-11-04T10:00:00Z"),
	)
	ingest := e.keys[e.acme][usage.RoleIngest]
	for len(events) > 0 {
		n := min(len(events), 1000)
		e.mustAPI(ingest, "POST", "/v1/accounts/"+e.acme+"/events", `{"events":[`+strings.Join(events[:n], ",")+`]}`, 200)
		events = events[n:]
	}
	card := `{"currency":"USD","free_users":100,"tiers":[{"up_to":1000,"unit_price":"0.05"},{"up_to":null,"unit_price":"0.0125"}]}`
	e.mustAPI(e.keys[e.platform][usage.RoleAdmin], "PUT", "/v1/accounts/"+e.acme+"/rate-card", card, 200)
	admin := e.keys[e.acme][usage.RoleAdmin]
	for _, m := range []string{"2026-07", "2026-08", "2026-09"} {
		e.mustAPI(admin, "POST", "/v1/accounts/"+e.acme+"/reports/"+m+"/run", "", 200)
	}
	e.mustAPI(admin, "POST", "/v1/accounts/"+e.acme+"/reports/2026-10/run", "", 200)
	e.mustAPI(ingest, "POST", "/v1/accounts/"+e.acme+"/events",
		`{"events":[`+ev("late1", "ISb", "frank", "send", "sdk", "2026-10-30T10:00:00Z")+`]}`, 200)
	e.mustAPI(admin, "POST", "/v1/accounts/"+e.acme+"/reports/2026-10/run", "", 200)
}

// with returns the env for a subtest, so that its failures are the
// subtest's.
func (e *env) with(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// api calls the API with Basic credentials.
func (e *env) api(c cred, method, path, body string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.SetBasicAuth(c.sid, c.secret)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return e.send(http.DefaultClient, req)
}

func (e *env) mustAPI(c cred, method, path, body string, want int) response {
	e.t.Helper()
	r := e.api(c, method, path, body)
	if r.status != want {
		e.t.Fatalf("%s %s: %d, want %d: %s", method, path, r.status, want, r.body)
	}
	return r
}

func (e *env) send(client *http.Client, req *http.Request) response {
	e.t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, r.body)
	}
	return m
}

// browser is a visitor of the console: a cookie jar, redirects not followed.
type browser struct {
	e      *env
	client *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, client: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(path string) response {
	b.e.t.Helper()
	req, err := http.NewRequest("GET", b.e.srv.URL+path, nil)
	if err != nil {
		b.e.t.Fatal(err)
	}
	return b.e.send(b.client, req)
}

// post sends a form as a browser would.
func (b *browser) post(path string, form url.Values, header ...string) response {
	b.e.t.Helper()
	req, err := http.NewRequest("POST", b.e.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return b.e.send(b.client, req)
}

// csrf loads a page and returns the CSRF token of its first form.
func (b *browser) csrf(path string) string {
	b.e.t.Helper()
	r := b.get(path)
	tok := formToken(r.body)
	if tok == "" {
		b.e.t.Fatalf("GET %s: %d, no CSRF token in %.300s", path, r.status, r.body)
	}
	return tok
}

// signIn signs in through the form; it returns the answer to the POST.
func (b *browser) signIn(c cred) response {
	b.e.t.Helper()
	tok := b.csrf("/console/login")
	return b.post("/console/login", url.Values{"csrf": {tok}, "key_sid": {c.sid}, "secret": {c.secret}})
}

func (e *env) signedIn(c cred) *browser {
	e.t.Helper()
	b := e.browser()
	if r := b.signIn(c); r.status != http.StatusSeeOther {
		e.t.Fatalf("sign in as %s: %d %s", c.sid, r.status, r.body)
	}
	return b
}

func (b *browser) sessionCookie() *http.Cookie {
	u, _ := url.Parse(b.e.srv.URL + "/console/")
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == console.SessionCookie {
			return c
		}
	}
	return nil
}

// formToken finds the value of the first input named csrf.
func formToken(body []byte) string {
	doc, err := html.Parse(bytes.NewReader(body))
	if err != nil {
		return ""
	}
	var tok string
	walk(doc, func(n *html.Node) {
		if tok == "" && n.Type == html.ElementNode && n.Data == "input" && attr(n, "name") == "csrf" {
			tok = attr(n, "value")
		}
	})
	return tok
}

func walk(n *html.Node, fn func(*html.Node)) {
	fn(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, fn)
	}
}

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}

func hasAttr(n *html.Node, name string) bool {
	for _, a := range n.Attr {
		if a.Key == name {
			return true
		}
	}
	return false
}

func text(n *html.Node) string {
	var b strings.Builder
	walk(n, func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
	})
	return b.String()
}

// metrics reads the data-metric hooks of a page as §12 defines them: the
// text without thousands separators, keyed by the metric's name and, for a
// figure inside a row, the row's data-service, data-identity or
// data-account ("" for the page's own figures).
func metrics(t *testing.T, body []byte) map[string]string {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	walk(doc, func(n *html.Node) {
		if n.Type != html.ElementNode || !hasAttr(n, "data-metric") {
			return
		}
		row := ""
		for p := n; p != nil; p = p.Parent {
			if p.Type != html.ElementNode {
				continue
			}
			var parts []string
			for _, k := range []string{"data-account", "data-service", "data-identity"} {
				if hasAttr(p, k) {
					parts = append(parts, attr(p, k))
				}
			}
			if len(parts) > 0 {
				row = strings.Join(parts, "|")
				break
			}
		}
		key := attr(n, "data-metric")
		if row != "" {
			key = row + "/" + key
		}
		if _, dup := out[key]; dup {
			t.Errorf("metric %s appears twice", key)
		}
		out[key] = strings.NewReplacer(",", "", " ", "", "\u2009", "").Replace(strings.TrimSpace(text(n)))
	})
	return out
}

// chartPoints reads the chart's data-month → data-value.
func chartPoints(t *testing.T, body []byte) (months []string, values map[string]string, provisional map[string]bool) {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	values, provisional = map[string]string{}, map[string]bool{}
	var svg *html.Node
	walk(doc, func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "svg" && attr(n, "data-chart") == "active-users" {
			svg = n
		}
	})
	if svg == nil {
		t.Fatal(`no <svg data-chart="active-users">`)
	}
	walk(svg, func(n *html.Node) {
		if n.Type == html.ElementNode && hasAttr(n, "data-month") {
			m := attr(n, "data-month")
			months = append(months, m)
			values[m] = attr(n, "data-value")
			provisional[m] = strings.Contains(attr(n, "class"), "provisional")
			hasTitle := false
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				hasTitle = hasTitle || (c.Type == html.ElementNode && c.Data == "title")
			}
			if !hasTitle {
				t.Errorf("chart point %s has no <title>", m)
			}
		}
	})
	return months, values, provisional
}
