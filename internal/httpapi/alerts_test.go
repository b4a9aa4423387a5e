package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/alerts"
	"github.com/tallyhq/tally/internal/httpapi"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// seedAlert creates an alert on acme, as its admin, and returns its SID.
func seedAlert(t *testing.T, e *env) string {
	t.Helper()
	r := e.post(e.keys[e.acme][usage.RoleAdmin], "/v1/accounts/"+e.acme+"/alerts",
		`{"friendly_name":"seed","metric":"active_users","threshold":1000000,"webhook_url":"https://203.0.113.10/hook"}`)
	if r.status != 201 {
		t.Fatalf("create alert: %d %s", r.status, r.body)
	}
	return r.json(t)["sid"].(string)
}

var (
	alertSIDShape = regexp.MustCompile(`^AL[0-9a-f]{32}$`)
	secretShape   = regexp.MustCompile(`^whsec_[A-Za-z0-9]{32}$`)
)

func TestAlertLifecycle(t *testing.T) {
	e := newEnv(t)
	admin := e.keys[e.acme][usage.RoleAdmin]
	base := "/v1/accounts/" + e.acme + "/alerts"
	r := e.post(admin, base, `{"friendly_name":"budget","metric":"amount","threshold":"250.50","webhook_url":"https://203.0.113.10/hook"}`)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	created := r.json(t)
	sid, _ := created["sid"].(string)
	secret, _ := created["signing_secret"].(string)
	if !alertSIDShape.MatchString(sid) || !secretShape.MatchString(secret) || created["threshold"] != "250.50" ||
		created["metric"] != "amount" || created["friendly_name"] != "budget" || created["webhook_url"] != "https://203.0.113.10/hook" {
		t.Fatalf("created %s", r.body)
	}
	// The secret is stored sealed under the master key, bound to the alert.
	var sealed []byte
	if err := e.pool.QueryRow(t.Context(), `SELECT secret_sealed FROM alerts WHERE alert_sid = $1`, sid).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sealed), secret) {
		t.Fatal("the signing secret is stored in clear")
	}
	if got, err := e.box.Open(sealed, sid); err != nil || got != secret {
		t.Fatalf("open sealed secret: %q, %v", got, err)
	}
	// A threshold of active users is a JSON integer.
	r = e.post(admin, base, `{"metric":"active_users","threshold":500,"webhook_url":"https://203.0.113.10/users"}`)
	if r.status != 201 || !strings.Contains(string(r.body), `"threshold":500,`) {
		t.Fatalf("create active_users: %d %s", r.status, r.body)
	}
	r = e.get(admin, base)
	if r.status != 200 || strings.Contains(string(r.body), "signing_secret") || strings.Contains(string(r.body), secret) {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	var list struct{ Alerts []map[string]any }
	if err := json.Unmarshal(r.body, &list); err != nil || len(list.Alerts) != 2 || (list.Alerts[0]["sid"] != sid && list.Alerts[1]["sid"] != sid) {
		t.Fatalf("list %s", r.body)
	}
	r = e.get(admin, base+"/"+sid)
	if r.status != 200 || strings.Contains(string(r.body), "signing_secret") || r.json(t)["threshold"] != "250.50" {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	r = e.get(admin, base+"/"+sid+"/deliveries")
	if r.status != 200 || string(r.body) != `{"deliveries":[]}`+"\n" {
		t.Fatalf("deliveries: %d %q", r.status, r.body)
	}
	// Another account's admin does not see it.
	if r := e.get(e.keys[e.other][usage.RoleAdmin], "/v1/accounts/"+e.other+"/alerts/"+sid); r.status != 404 {
		t.Fatalf("other account's get: %d", r.status)
	}
	if r := e.do(e.srv, admin, "DELETE", base+"/"+sid, "", nil); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	for _, path := range []string{base + "/" + sid, base + "/" + sid + "/deliveries", base + "/ALnotasid"} {
		if r := e.get(admin, path); r.status != 404 {
			t.Fatalf("GET %s after delete: %d", path, r.status)
		}
	}
	if r := e.do(e.srv, admin, "DELETE", base+"/"+sid, "", nil); r.status != 404 {
		t.Fatalf("second delete: %d", r.status)
	}
}

func TestAlertValidation(t *testing.T) {
	e := newEnv(t)
	admin := e.keys[e.acme][usage.RoleAdmin]
	base := "/v1/accounts/" + e.acme + "/alerts"
	for body, fields := range map[string][]string{
		`{"metric":"users","threshold":5,"webhook_url":"https://203.0.113.10/h"}`:                                          {"metric"},
		`{"metric":"active_users","threshold":"5","webhook_url":"https://203.0.113.10/h"}`:                                 {"threshold"},
		`{"metric":"active_users","threshold":0,"webhook_url":"https://203.0.113.10/h"}`:                                   {"threshold"},
		`{"metric":"active_users","threshold":-3,"webhook_url":"https://203.0.113.10/h"}`:                                  {"threshold"},
		`{"metric":"active_users","threshold":1.5,"webhook_url":"https://203.0.113.10/h"}`:                                 {"threshold"},
		`{"metric":"active_users","webhook_url":"https://203.0.113.10/h"}`:                                                 {"threshold"},
		`{"metric":"amount","threshold":250,"webhook_url":"https://203.0.113.10/h"}`:                                       {"threshold"},
		`{"metric":"amount","threshold":"0.00","webhook_url":"https://203.0.113.10/h"}`:                                    {"threshold"},
		`{"metric":"amount","threshold":"1e3","webhook_url":"https://203.0.113.10/h"}`:                                     {"threshold"},
		`{"metric":"amount","threshold":"-5","webhook_url":"https://203.0.113.10/h"}`:                                      {"threshold"},
		`{"metric":"amount","threshold":"5","webhook_url":"http://203.0.113.10/h"}`:                                        {"webhook_url"},
		`{"metric":"amount","threshold":"5","webhook_url":"https://127.0.0.1/h"}`:                                          {"webhook_url"},
		`{"metric":"amount","threshold":"5","webhook_url":"https://10.0.0.8/h"}`:                                           {"webhook_url"},
		`{"metric":"amount","threshold":"5","webhook_url":"https://169.254.169.254/latest/meta-data"}`:                     {"webhook_url"},
		`{"metric":"amount","threshold":"5","webhook_url":"https://[::1]:8443/h"}`:                                         {"webhook_url"},
		`{"metric":"amount","threshold":"5","webhook_url":"https://localhost/h"}`:                                          {"webhook_url"},
		`{"metric":"amount","threshold":"5"}`:                                                                              {"webhook_url"},
		`{"friendly_name":"` + strings.Repeat("x", 257) + `","metric":"x","threshold":0,"webhook_url":"http://10.0.0.1/"}`: {"friendly_name", "metric", "webhook_url"},
	} {
		r := e.post(admin, base, body)
		if r.status != 422 {
			t.Errorf("%.80s: %d %s, want 422", body, r.status, r.body)
			continue
		}
		var p struct{ Errors []usage.FieldError }
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, fe := range p.Errors {
			got = append(got, fe.Field)
		}
		if strings.Join(got, ",") != strings.Join(fields, ",") {
			t.Errorf("%.80s: errors on %v, want %v: %s", body, got, fields, r.body)
		}
	}
	if r := e.post(admin, base, `{"metric":"amount","threshold":"5","webhook_url":"https://203.0.113.10/h","extra":1}`); r.status != 422 {
		t.Errorf("unknown field: %d", r.status)
	}
	if r := e.get(admin, base); string(r.body) != `{"alerts":[]}`+"\n" {
		t.Errorf("something was stored: %s", r.body)
	}
	// With private addresses allowed (tally dev), http and loopback are fine.
	dev := e.newServerWith(httpapi.Config{Alerts: httpapi.AlertsConfig{AllowPrivate: true}})
	r := e.do(dev, admin, "POST", base, "application/json",
		strings.NewReader(`{"metric":"amount","threshold":"5","webhook_url":"http://127.0.0.1:9/h"}`))
	if r.status != 201 {
		t.Errorf("allow private: %d %s", r.status, r.body)
	}
}

// TestAlertFiresAndIsDelivered: from outside, an alert created when the
// month is past its threshold fires at once, and its webhook arrives signed
// with the secret the creation showed; deliveries shows it.
func TestAlertFiresAndIsDelivered(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	var bodies [][]byte
	var sigs []string
	recv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies, sigs = append(bodies, b), append(sigs, r.Header.Get("Tally-Signature"))
		mu.Unlock()
		if r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(400)
		}
	}))
	defer recv.Close()
	metrics := alerts.NewMetrics(e.store)
	srv := e.newServerWith(httpapi.Config{Alerts: httpapi.AlertsConfig{AllowPrivate: true, Metrics: metrics}})
	admin := e.keys[e.acme][usage.RoleAdmin]
	r := e.do(srv, e.keys[e.acme][usage.RoleIngest], "POST", "/v1/accounts/"+e.acme+"/events", "application/json", strings.NewReader(batch(
		eventJSON("m1", "alice", "2026-11-23T11:00:00Z"), eventJSON("m2", "bob", "2026-11-23T11:00:01Z"))))
	if r.status != 200 {
		t.Fatalf("events: %d %s", r.status, r.body)
	}
	r = e.do(srv, admin, "POST", "/v1/accounts/"+e.acme+"/alerts", "application/json",
		strings.NewReader(`{"metric":"active_users","threshold":2,"webhook_url":"`+recv.URL+`/hook"}`))
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	a := r.json(t)
	sid, secret := a["sid"].(string), a["signing_secret"].(string)
	deliveries := func() []map[string]any {
		r := e.do(srv, admin, "GET", "/v1/accounts/"+e.acme+"/alerts/"+sid+"/deliveries", "", nil)
		var out struct{ Deliveries []map[string]any }
		if err := json.Unmarshal(r.body, &out); err != nil {
			t.Fatal(err)
		}
		return out.Deliveries
	}
	ds := deliveries()
	if len(ds) != 1 || ds[0]["status"] != "pending" || ds[0]["month"] != "2026-11" || ds[0]["attempts"] != 0.0 {
		t.Fatalf("deliveries right after creation: %v", ds)
	}
	w := &alerts.Worker{Store: e.store, Box: e.box, Now: func() time.Time { return e.now }, AllowPrivate: true, Metrics: metrics,
		RootCAs: recv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, Timeout: 2 * time.Second}
	if n, err := w.RunOnce(t.Context()); err != nil || n != 1 {
		t.Fatalf("RunOnce: %d, %v", n, err)
	}
	ds = deliveries()
	if ds[0]["status"] != "delivered" || ds[0]["attempts"] != 1.0 || ds[0]["last_status_code"] != 200.0 ||
		ds[0]["delivered_at"] == nil || ds[0]["next_attempt_at"] != nil || ds[0]["last_error"] != nil {
		t.Fatalf("deliveries after sending: %v", ds)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 1 {
		t.Fatalf("%d webhooks", len(bodies))
	}
	if err := alerts.Verify(secret, sigs[0], bodies[0], e.now, 5*time.Minute); err != nil {
		t.Fatalf("signature %q: %v", sigs[0], err)
	}
	var body map[string]any
	if err := json.Unmarshal(bodies[0], &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": ds[0]["id"], "type": "usage.threshold_reached", "alert_sid": sid, "account_sid": e.acme,
		"month": "2026-11", "metric": "active_users", "threshold": 2.0, "value": 2.0, "reached_at": "2026-11-23T12:00:00Z"}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("body[%s] = %v, want %v (%s)", k, body[k], v, bodies[0])
		}
	}
	if len(body) != len(want) {
		t.Errorf("body has %d members, want %d: %s", len(body), len(want), bodies[0])
	}
	r = e.do(srv, cred{}, "GET", "/metrics", "", nil)
	for _, series := range []string{"tally_alerts_fired_total 1", `tally_alert_delivery_attempts_total{outcome="delivered"} 1`,
		"tally_alert_outbox_pending 0", "tally_alert_delivery_latency_seconds_count 1"} {
		if !strings.Contains(string(r.body), series) {
			t.Errorf("/metrics lacks %q", series)
		}
	}
}

// TestAlertCap: an account may have postgres.MaxAlertsPerAccount alerts;
// one more is a 422 problem that says so and stores nothing, and deleting
// one makes room again. (The cap under concurrent creates is
// internal/postgres's TestAlertCapHoldsUnderConcurrentCreates.)
func TestAlertCap(t *testing.T) {
	e := newEnv(t)
	admin := e.keys[e.acme][usage.RoleAdmin]
	base := "/v1/accounts/" + e.acme + "/alerts"
	body := `{"metric":"active_users","threshold":1000000,"webhook_url":"https://203.0.113.10/hook"}`
	var last string
	for i := range postgres.MaxAlertsPerAccount {
		r := e.post(admin, base, body)
		if r.status != 201 {
			t.Fatalf("create %d: %d %s", i+1, r.status, r.body)
		}
		last = r.json(t)["sid"].(string)
	}
	r := e.post(admin, base, body)
	if r.status != 422 || r.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("create %d: %d %s, want a 422 problem", postgres.MaxAlertsPerAccount+1, r.status, r.body)
	}
	p := r.json(t)
	want := fmt.Sprintf("account %s already has %d alerts, the most an account may have; delete one before creating another",
		e.acme, postgres.MaxAlertsPerAccount)
	if p["type"] != "https://tally.dev/problems/too-many-alerts" || p["title"] != "Too many alerts" || p["detail"] != want || p["status"] != 422.0 {
		t.Errorf("problem %s", r.body)
	}
	var list struct{ Alerts []map[string]any }
	if err := json.Unmarshal(e.get(admin, base).body, &list); err != nil || len(list.Alerts) != postgres.MaxAlertsPerAccount {
		t.Fatalf("after the refused create: %d alerts, %v", len(list.Alerts), err)
	}
	// A platform key is held to the same cap.
	if r := e.post(e.keys[e.platform][usage.RoleAdmin], base, body); r.status != 422 {
		t.Errorf("platform key's create: %d %s", r.status, r.body)
	}
	// Another account is not limited by this one's alerts.
	if r := e.post(e.keys[e.other][usage.RoleAdmin], "/v1/accounts/"+e.other+"/alerts", body); r.status != 201 {
		t.Errorf("other account's create: %d %s", r.status, r.body)
	}
	if r := e.do(e.srv, admin, "DELETE", base+"/"+last, "", nil); r.status != 204 {
		t.Fatalf("delete: %d", r.status)
	}
	if r := e.post(admin, base, body); r.status != 201 {
		t.Fatalf("create after a delete: %d %s", r.status, r.body)
	}
}
