package console_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/tallyhq/tally/internal/console"
	"github.com/tallyhq/tally/internal/usage"
)

// jsonText writes a decoded JSON value as the API wrote it.
func jsonText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber() // figures compared as the API wrote them
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return m
}

// TestMonthFiguresMatchAPI: the account page's figures, its service rows
// and its chart are the API's report and report list, exactly.
func TestMonthFiguresMatchAPI(t *testing.T) {
	e := newEnv(t, console.Config{})
	e.seed()
	finance := e.keys[e.acme][usage.RoleFinance]
	b := e.signedIn(finance)
	for _, month := range []string{"2026-09", "2026-10", "2026-11", "2025-01"} {
		t.Run(month, func(t *testing.T) {
			e := e.with(t)
			api := decode(t, e.mustAPI(finance, "GET", "/v1/accounts/"+e.acme+"/reports/"+month, "", 200).body)
			r := b.get("/console/accounts/" + e.acme + "?month=" + month)
			if r.status != 200 {
				t.Fatalf("page: %d %s", r.status, r.body)
			}
			got := metrics(t, r.body)
			want := map[string]string{"active_users": jsonText(api["active_users"])}
			if bill, ok := api["billing"].(map[string]any); ok {
				want["billable_users"] = jsonText(bill["billable_users"])
				want["amount"] = jsonText(bill["amount"])
			}
			for _, s := range api["services"].([]any) {
				s := s.(map[string]any)
				svc := s["service_sid"].(string)
				for _, k := range []string{"active_users", "new_users", "rest_only_users"} {
					want[svc+"/"+k] = jsonText(s[k])
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("figures on the page:\n got %v\nwant %v", got, want)
			}
			status := "Provisional"
			if v := api["version"]; v != nil {
				status = "Final, version " + jsonText(v)
			}
			if !bytes.Contains(r.body, []byte(status)) {
				t.Errorf("the page does not say %q", status)
			}
		})
	}

	// The chart: 13 months ending with the page's, each with the API's
	// count, the months without a final version marked provisional.
	var list struct {
		Reports []struct {
			Month       string `json:"month"`
			Version     *int   `json:"version"`
			ActiveUsers int64  `json:"active_users"`
		} `json:"reports"`
	}
	if err := json.Unmarshal(e.mustAPI(finance, "GET", "/v1/accounts/"+e.acme+"/reports", "", 200).body, &list); err != nil {
		t.Fatal(err)
	}
	months, values, provisional := chartPoints(t, b.get("/console/accounts/"+e.acme+"?month=2026-11").body)
	if len(months) != 13 || months[0] != "2025-11" || months[12] != "2026-11" {
		t.Fatalf("chart months %v, want 2025-11 … 2026-11", months)
	}
	listed := map[string]bool{}
	for _, l := range list.Reports {
		listed[l.Month] = true
		if values[l.Month] != strconv.FormatInt(l.ActiveUsers, 10) {
			t.Errorf("chart %s: %s, API %d", l.Month, values[l.Month], l.ActiveUsers)
		}
		if provisional[l.Month] != (l.Version == nil) {
			t.Errorf("chart %s: provisional %v, API version %v", l.Month, provisional[l.Month], l.Version)
		}
	}
	for _, m := range months {
		if !listed[m] && values[m] != "0" {
			t.Errorf("chart %s: %s, want 0 (no events)", m, values[m])
		}
	}
	if !provisional["2026-11"] || provisional["2026-10"] {
		t.Errorf("provisional marks %v: want 2026-11 provisional, 2026-10 final", provisional)
	}
}

// TestAccountsTableMatchesAPI: the platform's table has every account with
// the active users of its current month's report.
func TestAccountsTableMatchesAPI(t *testing.T) {
	e := newEnv(t, console.Config{})
	e.seed()
	pf := e.keys[e.platform][usage.RoleFinance]
	api := decode(t, e.mustAPI(pf, "GET", "/v1/reports/2026-11", "", 200).body)
	want := map[string]string{}
	for _, a := range api["accounts"].([]any) {
		a := a.(map[string]any)
		want[a["account_sid"].(string)+"/active_users"] = jsonText(a["active_users"])
	}
	got := metrics(t, e.signedIn(pf).get("/console/accounts").body)
	if fmt.Sprint(got) != fmt.Sprint(want) || got[e.acme+"/active_users"] == "0" {
		t.Errorf("accounts table:\n got %v\nwant %v", got, want)
	}
}

// TestIdentityFiguresMatchAPI: every numeric §7 statistic the API gives is
// on the identities page under its name, with the API's value; the top
// identities sit in rows of their service and identity.
func TestIdentityFiguresMatchAPI(t *testing.T) {
	e := newEnv(t, console.Config{})
	e.seed()
	admin := e.keys[e.acme][usage.RoleAdmin]
	b := e.signedIn(admin)
	for _, q := range []string{"month=2026-10", "month=2026-11", "month=2026-10&service_sid=ISb"} {
		t.Run(q, func(t *testing.T) {
			e := e.with(t)
			api := decode(t, e.mustAPI(admin, "GET", "/v1/accounts/"+e.acme+"/identities/stats?"+q, "", 200).body)
			r := b.get("/console/accounts/" + e.acme + "/identities?" + q)
			if r.status != 200 {
				t.Fatalf("page: %d %s", r.status, r.body)
			}
			got := metrics(t, r.body)
			want := map[string]string{}
			for k, v := range api {
				if _, ok := v.(json.Number); ok {
					want[k] = v.(json.Number).String()
				}
				if k == "avoidable_amount" && v != nil { // a decimal string, null without a rate card
					want[k] = v.(string)
				}
			}
			for _, top := range api["top_identities"].([]any) {
				top := top.(map[string]any)
				want[top["service_sid"].(string)+"|"+top["identity"].(string)+"/events"] = jsonText(top["events"])
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("identity figures:\n got %v\nwant %v", got, want)
			}
		})
	}
	// October has a machine-made identity and REST-only users: advice.
	body := b.get("/console/accounts/" + e.acme + "/identities?month=2026-10").body
	for _, topic := range []string{"rest_only_identities", "reserved_character_identities"} {
		if !bytes.Contains(body, []byte(`data-advice="`+topic+`"`)) {
			t.Errorf("no advice on %s", topic)
		}
	}
	if bytes.Contains(body, []byte("data-pending=")) {
		t.Error("a statistic is still marked as not computed yet")
	}
}

// TestExportsAreTheAPIsBytes: each download is byte for byte the API's
// report JSON, report CSV or roster CSV, as an attachment.
func TestExportsAreTheAPIsBytes(t *testing.T) {
	e := newEnv(t, console.Config{})
	e.seed()
	finance := e.keys[e.acme][usage.RoleFinance]
	b := e.signedIn(finance)
	for _, month := range []string{"2026-10", "2026-11"} {
		for _, v := range []string{"", "1", "2"} {
			if month == "2026-11" && v != "" {
				continue
			}
			ver := ""
			if v != "" {
				ver = "&version=" + v
			}
			apiBase := "/v1/accounts/" + e.acme + "/reports/" + month
			cases := map[string]string{
				"json":   apiBase + "?" + strings.TrimPrefix(ver, "&"),
				"csv":    apiBase + "?format=csv" + ver,
				"roster": apiBase + "/users?format=csv" + ver,
			}
			for format, apiPath := range cases {
				want := e.mustAPI(finance, "GET", apiPath, "", 200)
				got := b.get("/console/accounts/" + e.acme + "/reports/" + month + "/export?format=" + format + ver)
				name := fmt.Sprintf("%s %s version %q", month, format, v)
				if got.status != 200 {
					t.Errorf("%s: %d %s", name, got.status, got.body)
					continue
				}
				if !bytes.Equal(got.body, want.body) {
					t.Errorf("%s: the download differs from GET %s:\n got %.300s\nwant %.300s", name, apiPath, got.body, want.body)
				}
				if ct, wct := got.header.Get("Content-Type"), want.header.Get("Content-Type"); ct != wct {
					t.Errorf("%s: Content-Type %q, API %q", name, ct, wct)
				}
				if cd := got.header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") || !strings.Contains(cd, "filename=") {
					t.Errorf("%s: Content-Disposition %q", name, cd)
				}
			}
		}
	}
	for _, bad := range []string{"format=xml", "format=json&version=9", "format=json&version=0"} {
		if r := b.get("/console/accounts/" + e.acme + "/reports/2026-10/export?" + bad); r.status != 404 && r.status != 422 {
			t.Errorf("export?%s: %d, want 404 or 422", bad, r.status)
		}
	}
}

// TestReportVersionsPage lists every stored version with its checksum and
// added users, and download links per version.
func TestReportVersionsPage(t *testing.T) {
	e := newEnv(t, console.Config{})
	e.seed()
	finance := e.keys[e.acme][usage.RoleFinance]
	b := e.signedIn(finance)
	body := b.get("/console/accounts/" + e.acme + "/reports/2026-10").body
	for _, v := range []string{"1", "2"} {
		api := decode(t, e.mustAPI(finance, "GET", "/v1/accounts/"+e.acme+"/reports/2026-10?version="+v, "", 200).body)
		for _, s := range []string{`data-version="` + v + `"`, api["checksum"].(string),
			"export?format=roster&amp;version=" + v, "export?format=json&amp;version=" + v, "export?format=csv&amp;version=" + v} {
			if !bytes.Contains(body, []byte(s)) {
				t.Errorf("version %s: the page lacks %q", v, s)
			}
		}
	}
	if !bytes.Contains(body, []byte("Added users</dt><dd>1</dd>")) {
		t.Error("version 2's added_users (1) is not shown")
	}
	prov := b.get("/console/accounts/" + e.acme + "/reports/2026-11").body
	api := decode(t, e.mustAPI(finance, "GET", "/v1/accounts/"+e.acme+"/reports/2026-11", "", 200).body)
	if !bytes.Contains(prov, []byte(`data-version="provisional"`)) || !bytes.Contains(prov, []byte(api["checksum"].(string))) {
		t.Error("a month without a stored version does not show its provisional figures")
	}
}
