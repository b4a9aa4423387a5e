package console_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"golang.org/x/net/html"

	"github.com/tallyhq/tally/internal/alerts"
	"github.com/tallyhq/tally/internal/console"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// seedAlerts gives Acme four alerts whose newest webhooks are in each
// state, sent by a real worker to a real receiver: one delivered, one
// retrying after a 500, one failed after a day of 500s, one never fired.
// It moves the clock a day and two hours on. It returns the alerts' SIDs:
// failed, delivered, retrying, never fired.
func (e *env) seedAlerts() []string {
	t := e.t
	t.Helper()
	recv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/ok") {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		http.Error(w, "receiver down", http.StatusInternalServerError)
	}))
	t.Cleanup(recv.Close)
	ctx := t.Context()
	create := func(name, metric, threshold, url string) string {
		t.Helper()
		a := postgres.Alert{AccountSID: e.acme, SID: alerts.NewAlertSID(), FriendlyName: name, Metric: metric,
			Threshold: decimal.RequireFromString(threshold), WebhookURL: url}
		// Straight into the store: the API would refuse the receiver's
		// loopback address, as it should outside development.
		if _, err := e.store.CreateAlert(ctx, a, e.box.Seal(alerts.NewSigningSecret(), a.SID)); err != nil {
			t.Fatal(err)
		}
		return a.SID
	}
	eval := &alerts.Evaluator{Store: e.store, Now: e.clock.now}
	worker := &alerts.Worker{Store: e.store, Box: e.box, Now: e.clock.now, AllowPrivate: true, Timeout: 5 * time.Second,
		RootCAs: recv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	step := func() {
		t.Helper()
		if _, err := eval.Evaluate(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := worker.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	e.mustAPI(e.keys[e.acme][usage.RoleIngest], "POST", "/v1/accounts/"+e.acme+"/events",
		`{"events":[{"id":"alerts-1","activity":"send","source":"sdk","service_sid":"ISa","identity":"alert-user","occurred_at":"2026-11-20T10:00:00Z"}]}`, 200)
	failed := create("", postgres.MetricActiveUsers, "1", recv.URL+"/down")
	step() // fires and gets a 500
	e.clock.add(26 * time.Hour)
	delivered := create("Budget <reached>", postgres.MetricActiveUsers, "1", recv.URL+"/ok")
	retrying := create("Ops", postgres.MetricActiveUsers, "1", recv.URL+"/down")
	quiet := create("Far away", postgres.MetricAmount, "250000.00", "https://203.0.113.10/hook")
	step() // the first is past its retries: failed; the new ones fire
	return []string{failed, delivered, retrying, quiet}
}

// alertRows reads the account page's alerts table: for each row, its
// data-alert and the data-field hooks inside it (a <time>'s datetime,
// else the text; a threshold without thousands separators).
func alertRows(t *testing.T, body []byte) (sids []string, fields map[string]map[string]string) {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	fields = map[string]map[string]string{}
	walk(doc, func(n *html.Node) {
		if n.Type != html.ElementNode || !hasAttr(n, "data-alert") {
			return
		}
		sid := attr(n, "data-alert")
		sids = append(sids, sid)
		fields[sid] = map[string]string{}
		walk(n, func(f *html.Node) {
			if f.Type != html.ElementNode || !hasAttr(f, "data-field") {
				return
			}
			v := strings.TrimSpace(text(f))
			switch {
			case f.Data == "time":
				v = attr(f, "datetime")
			case attr(f, "data-field") == "threshold":
				v = strings.ReplaceAll(v, ",", "") // thousands separators, as §12's figures
			}
			fields[sid][attr(f, "data-field")] = v
		})
	})
	return sids, fields
}

// hasElement tells whether the page has an element with the attribute.
func hasElement(t *testing.T, body []byte, name string) bool {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	walk(doc, func(n *html.Node) { found = found || (n.Type == html.ElementNode && hasAttr(n, name)) })
	return found
}

// apiAlertRows is what the page must show, from the API: each alert in the
// API's order with its threshold and its newest delivery (the first the
// API lists), with next_attempt_at only while pending, as the API has it.
func (e *env) apiAlertRows(c cred, account string) (sids []string, fields map[string]map[string]string) {
	t := e.t
	t.Helper()
	var list struct {
		Alerts []struct {
			SID       string          `json:"sid"`
			Threshold json.RawMessage `json:"threshold"`
		}
	}
	if err := json.Unmarshal(e.mustAPI(c, "GET", "/v1/accounts/"+account+"/alerts", "", 200).body, &list); err != nil {
		t.Fatal(err)
	}
	fields = map[string]map[string]string{}
	for _, a := range list.Alerts {
		sids = append(sids, a.SID)
		f := map[string]string{"threshold": strings.Trim(string(a.Threshold), `"`)}
		var ds struct{ Deliveries []map[string]any }
		if err := json.Unmarshal(e.mustAPI(c, "GET", "/v1/accounts/"+account+"/alerts/"+a.SID+"/deliveries", "", 200).body, &ds); err != nil {
			t.Fatal(err)
		}
		if len(ds.Deliveries) > 0 {
			d := ds.Deliveries[0]
			for _, k := range []string{"id", "month", "status", "attempts", "last_status_code", "last_error", "next_attempt_at", "delivered_at"} {
				if d[k] != nil {
					f[k] = fmt.Sprint(d[k])
				}
			}
		}
		fields[a.SID] = f
	}
	return sids, fields
}

// TestAccountPageListsAlerts: an admin's account page lists every alert of
// the account with its newest webhook — status, attempts, the receiver's
// last answer and error, when it fired, was delivered or is tried next —
// exactly as the API's alerts and deliveries say; finance, who may not list
// alerts on the API, sees no alert.
func TestAccountPageListsAlerts(t *testing.T) {
	e := newEnv(t, console.Config{})
	sids := e.seedAlerts()
	failed, delivered, retrying, quiet := sids[0], sids[1], sids[2], sids[3]
	page := "/console/accounts/" + e.acme

	for _, who := range []struct {
		name string
		key  cred
	}{{"acme admin", e.keys[e.acme][usage.RoleAdmin]}, {"platform admin", e.keys[e.platform][usage.RoleAdmin]}} {
		t.Run(who.name, func(t *testing.T) {
			e := e.with(t)
			r := e.signedIn(who.key).get(page)
			if r.status != 200 {
				t.Fatalf("page: %d %s", r.status, r.body)
			}
			gotSIDs, got := alertRows(t, r.body)
			wantSIDs, want := e.apiAlertRows(who.key, e.acme)
			// The API's order (oldest first; those created at one instant by
			// SID), and every alert created.
			if fmt.Sprint(gotSIDs) != fmt.Sprint(wantSIDs) || fmt.Sprint(slices.Sorted(slices.Values(gotSIDs))) != fmt.Sprint(slices.Sorted(slices.Values(sids))) {
				t.Fatalf("alerts on the page %v, API %v, created %v", gotSIDs, wantSIDs, sids)
			}
			// When it fired is not in the API's deliveries: the seed's clock
			// at the step that fired it.
			for sid, at := range map[string]string{failed: "2026-11-23T12:00:00Z", delivered: "2026-11-24T14:00:00Z",
				retrying: "2026-11-24T14:00:00Z"} {
				if got[sid]["created_at"] != at {
					t.Errorf("alert %s fired at %q, want %s", sid, got[sid]["created_at"], at)
				}
				delete(got[sid], "created_at")
			}
			for _, sid := range sids {
				if fmt.Sprint(got[sid]) != fmt.Sprint(want[sid]) {
					t.Errorf("alert %s on the page:\n got %v\nwant %v", sid, got[sid], want[sid])
				}
			}
			// The states the seed made, so that the comparison above
			// covers each of them.
			for sid, status := range map[string]string{failed: "failed", delivered: "delivered", retrying: "pending"} {
				if got[sid]["status"] != status {
					t.Errorf("alert %s: status %q, want %q", sid, got[sid]["status"], status)
				}
			}
			if got[retrying]["next_attempt_at"] == "" || got[retrying]["last_status_code"] != "500" || got[retrying]["last_error"] == "" {
				t.Errorf("the retrying alert shows no next attempt, status code or error: %v", got[retrying])
			}
			if got[delivered]["delivered_at"] == "" || got[failed]["next_attempt_at"] != "" {
				t.Errorf("delivered %v, failed %v", got[delivered], got[failed])
			}
			if len(got[quiet]) != 1 || got[quiet]["threshold"] != "250000.00" || !bytes.Contains(r.body, []byte("Not fired yet.")) {
				t.Errorf("the alert that never fired: %v", got[quiet])
			}
			if !bytes.Contains(r.body, []byte("Budget &lt;reached&gt;")) {
				t.Error("the friendly name is not shown, or not escaped")
			}
		})
	}

	t.Run("finance", func(t *testing.T) {
		e := e.with(t)
		finance := e.keys[e.acme][usage.RoleFinance]
		e.mustAPI(finance, "GET", "/v1/accounts/"+e.acme+"/alerts", "", 403)
		r := e.signedIn(finance).get(page)
		if r.status != 200 {
			t.Fatalf("page: %d", r.status)
		}
		if hasElement(t, r.body, "data-alerts") || hasElement(t, r.body, "data-alert") {
			t.Error("finance sees the alerts, which its key may not list on the API")
		}
		// The alerts add no figure to the page's §12 hooks.
		admin := e.signedIn(e.keys[e.acme][usage.RoleAdmin]).get(page)
		if fmt.Sprint(metrics(t, admin.body)) != fmt.Sprint(metrics(t, r.body)) {
			t.Errorf("figures differ between admin and finance:\n%v\n%v", metrics(t, admin.body), metrics(t, r.body))
		}
	})

	t.Run("no alerts", func(t *testing.T) {
		e := e.with(t)
		r := e.signedIn(e.keys[e.other][usage.RoleAdmin]).get("/console/accounts/" + e.other)
		if r.status != 200 || !hasElement(t, r.body, "data-alerts") || hasElement(t, r.body, "data-alert") ||
			!bytes.Contains(r.body, []byte("No alerts.")) {
			t.Errorf("an account without alerts: %d %s", r.status, r.body)
		}
	})
}
