package httpapi_test

import (
	"encoding/csv"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/usage"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// golden compares got with testdata/name, after replacing the random SIDs.
func golden(t *testing.T, name string, got string, replace ...string) {
	t.Helper()
	got = strings.NewReplacer(replace...).Replace(got)
	path := filepath.Join("testdata", name)
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// seedReport posts a small October for acme, with a rate card, and moves
// the clock past the grace period.
func seedReport(t *testing.T, e *env) {
	t.Helper()
	e.now = time.Date(2026, 10, 31, 12, 0, 0, 0, time.UTC)
	ingest := e.keys[e.acme][usage.RoleIngest]
	ev := func(id, svc, identity, act, src, at string) string {
		return fmt.Sprintf(`{"id":%q,"activity":%q,"source":%q,"service_sid":%q,"identity":%q,"occurred_at":%q}`, id, act, src, svc, identity, at)
	}
	r := e.post(ingest, "/v1/accounts/"+e.acme+"/events", batch(
		ev("e1", "ISa", "alice@example.com", "send", "sdk", "2026-10-01T10:00:00Z"),
		ev("e2", "ISa", "bob", "create", "rest", "2026-10-02T10:00:00Z"),
		ev("e3", "ISb", "alice@example.com", "authenticate", "sdk", "2026-10-03T10:00:00Z"),
		ev("e4", "ISa", `=HYPERLINK("http://x","y")`, "join", "sdk", "2026-10-04T10:00:00Z"),
		ev("e5", "ISa", "comma, \"quote\"", "send", "rest", "2026-10-05T10:00:00Z"),
		ev("e6", "ISa", "+15551234567", "add", "rest", "2026-10-06T10:00:00Z"),
	))
	if r.status != 200 {
		t.Fatalf("seed: %d %s", r.status, r.body)
	}
	card := `{"currency":"USD","free_users":2,"tiers":[{"up_to":3,"unit_price":"0.05"},{"up_to":null,"unit_price":"0.0125"}]}`
	r = e.do(e.srv, e.keys[e.platform][usage.RoleAdmin], "PUT", "/v1/accounts/"+e.acme+"/rate-card", "application/json", strings.NewReader(card))
	if r.status != 200 {
		t.Fatalf("rate card: %d %s", r.status, r.body)
	}
	e.now = time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
}

func TestReportGolden(t *testing.T) {
	e := newEnv(t)
	seedReport(t, e)
	finance := e.keys[e.acme][usage.RoleFinance]
	base := "/v1/accounts/" + e.acme + "/reports/2026-10"

	prov := e.get(finance, base)
	if prov.status != 200 || prov.json(t)["version"] != nil || prov.json(t)["status"] != "provisional" {
		t.Fatalf("provisional: %d %s", prov.status, prov.body)
	}
	run := e.post(e.keys[e.acme][usage.RoleAdmin], base+"/run", "")
	if run.status != 200 || run.json(t)["version"] != float64(1) {
		t.Fatalf("run: %d %s", run.status, run.body)
	}
	if e.post(finance, base+"/run", "").status != 403 {
		t.Fatal("a finance key ran the job")
	}

	r := e.get(finance, base)
	// The checksum covers the (random) account SID; it is checked against a
	// recomputation in the billing tests.
	golden(t, "report.json", string(r.body), e.acme, "AC_ACME", r.json(t)["checksum"].(string), "CHECKSUM")
	c := e.do(e.srv, finance, "GET", base+"?format=csv", "", nil)
	if ct := c.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Fatalf("content type %q", ct)
	}
	golden(t, "report.csv", string(c.body), e.acme, "AC_ACME")
	req, _ := http.NewRequest("GET", e.srv.URL+base+"/users", nil)
	req.SetBasicAuth(finance.sid, finance.secret)
	req.Header.Set("Accept", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(resp.Body).ReadAll()
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 7 || strings.Join(rows[0], ",") != "service_sid,identity,first_activity,first_event_id,first_active_at,last_active_at,events" {
		t.Fatalf("roster csv: %q", rows)
	}
	var identities []string
	for _, row := range rows[1:] {
		identities = append(identities, row[1])
	}
	want := []string{"'+15551234567", "'=HYPERLINK(\"http://x\",\"y\")", "alice@example.com", "bob", "comma, \"quote\"", "alice@example.com"}
	if strings.Join(identities, "|") != strings.Join(want, "|") {
		t.Fatalf("roster identities %q, want %q (byte order, formulas neutralized)", identities, want)
	}
	// JSON is verbatim.
	j := e.get(finance, base+"/users?page_size=2")
	users := j.json(t)["users"].([]any)
	if len(users) != 2 || users[1].(map[string]any)["identity"] != `=HYPERLINK("http://x","y")` {
		t.Fatalf("roster json: %s", j.body)
	}
}

func TestRosterPagingAndAddedSince(t *testing.T) {
	e := newEnv(t)
	seedReport(t, e)
	admin := e.keys[e.acme][usage.RoleAdmin]
	base := "/v1/accounts/" + e.acme + "/reports/2026-10"
	e.post(admin, base+"/run", "")
	// A late event adds a user; version 2.
	late := batch(eventJSON("late-1", "zed", "2026-10-20T00:00:00Z"))
	if r := e.post(admin, "/v1/accounts/"+e.acme+"/events", late); r.status != 200 || r.json(t)["late"] != float64(1) {
		t.Fatalf("late post: %s", r.body)
	}
	r2 := e.post(admin, base+"/run", "").json(t)
	if r2["version"] != float64(2) || r2["supersedes"] != float64(1) || r2["added_users"] != float64(1) {
		t.Fatalf("version 2: %v", r2)
	}
	var all []string
	tok := ""
	for pages := 0; ; pages++ {
		path := base + "/users?page_size=3"
		if tok != "" {
			path += "&page_token=" + tok
		}
		page := e.get(admin, path).json(t)
		for _, u := range page["users"].([]any) {
			all = append(all, u.(map[string]any)["identity"].(string))
		}
		next, _ := page["next_page_token"].(string)
		if next == "" {
			break
		}
		tok = next
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if len(all) != 7 {
		t.Fatalf("paged roster %v, want 7 users", all)
	}
	added := e.get(admin, base+"/users?added_since=1").json(t)["users"].([]any)
	if len(added) != 1 || added[0].(map[string]any)["identity"] != "zed" {
		t.Fatalf("added since 1: %v", added)
	}
	v1 := e.get(admin, base+"/users?version=1&page_size=1000").json(t)["users"].([]any)
	if len(v1) != 6 {
		t.Fatalf("version 1 roster has %d users", len(v1))
	}
	if r := e.get(admin, base+"?version=3"); r.status != 404 {
		t.Fatalf("unknown version: %d", r.status)
	}
	list := e.get(admin, "/v1/accounts/"+e.acme+"/reports").json(t)["reports"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["version"] != float64(2) || list[0].(map[string]any)["active_users"] != float64(7) {
		t.Fatalf("reports list: %v", list)
	}
}

func TestReportAccess(t *testing.T) {
	e := newEnv(t)
	seedReport(t, e)
	base := "/v1/accounts/" + e.acme + "/reports/2026-10"
	if r := e.get(e.keys[e.other][usage.RoleFinance], base); r.status != 404 {
		t.Fatalf("another account's finance key: %d", r.status)
	}
	if r := e.get(e.keys[e.acme][usage.RoleIngest], base); r.status != 403 {
		t.Fatalf("ingest key: %d", r.status)
	}
	if r := e.get(e.keys[e.acme][usage.RoleFinance], "/v1/accounts/"+e.other+"/rate-card"); r.status != 404 {
		t.Fatalf("another account's rate card: %d", r.status)
	}
	if r := e.get(e.keys[e.other][usage.RoleFinance], "/v1/accounts/"+e.other+"/rate-card"); r.status != 404 {
		t.Fatalf("no rate card: %d", r.status)
	}
	card := `{"currency":"USD","free_users":0,"tiers":[{"up_to":null,"unit_price":"1"}]}`
	if r := e.do(e.srv, e.keys[e.acme][usage.RoleAdmin], "PUT", "/v1/accounts/"+e.acme+"/rate-card", "application/json", strings.NewReader(card)); r.status != 403 {
		t.Fatalf("account admin set a rate card: %d", r.status)
	}
	if r := e.do(e.srv, e.keys[e.platform][usage.RoleAdmin], "PUT", "/v1/accounts/"+e.acme+"/rate-card", "application/json", strings.NewReader(`{"currency":"usd","tiers":[]}`)); r.status != 422 {
		t.Fatalf("invalid rate card: %d %s", r.status, r.body)
	}
	if r := e.get(e.keys[e.acme][usage.RoleFinance], "/v1/reports/2026-10"); r.status != 403 {
		t.Fatalf("account finance key on the platform report: %d", r.status)
	}
	p := e.get(e.keys[e.platform][usage.RoleFinance], "/v1/reports/2026-10")
	if p.status != 200 {
		t.Fatalf("platform report: %d %s", p.status, p.body)
	}
	accounts := p.json(t)["accounts"].([]any)
	if len(accounts) != 3 {
		t.Fatalf("platform report lists %d accounts, want 3", len(accounts))
	}
	for _, a := range accounts {
		a := a.(map[string]any)
		if a["account_sid"] == e.acme && (a["active_users"] != float64(6) || a["amount"] != "0.09" || a["currency"] != "USD" || a["billable_users"] != float64(4)) {
			t.Fatalf("acme line %v", a)
		}
	}
	c := e.do(e.srv, e.keys[e.platform][usage.RoleAdmin], "GET", "/v1/reports/2026-10?format=csv", "", nil)
	rows, err := csv.NewReader(strings.NewReader(string(c.body))).ReadAll()
	if err != nil || len(rows) != 4 || rows[0][0] != "account_sid" || rows[0][8] != "checksum" {
		t.Fatalf("platform csv %q %v", rows, err)
	}
}
