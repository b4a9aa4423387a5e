package main

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/alerts"
)

// webhook is one request the test's receiver got.
type webhook struct {
	at        time.Time
	signature string
	body      []byte
}

// TestDevDeliversAWebhook drives the built binary: `tally dev` (which lets
// webhooks go to loopback, TALLY_WEBHOOK_ALLOW_PRIVATE=1) sends the webhook
// of an alert that two events take past its threshold to a local HTTPS
// receiver, signed with the secret its creation showed, within the 60 s of
// CONTRACT §14; then /metrics shows the alert series with their labels.
//
// tally has no setting of its own for a custom CA: the webhook client uses
// the system's roots, which Go on Linux reads from SSL_CERT_FILE, so the
// receiver's certificate is handed to the binary that way.
//
// TALLY_ALERT_INTERVAL is an hour (held to 30 s, alerts.MaxEvaluateEvery):
// a webhook sent well before the first pass over every alert, 30 s after
// the evaluator started (just before the API was ready), came from the
// evaluation that follows the background fold of the account's events.
func TestDevDeliversAWebhook(t *testing.T) {
	bin := buildTally(t)
	var mu sync.Mutex
	var got []webhook
	recv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, webhook{time.Now(), r.Header.Get(alerts.SignatureHeader), b})
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	caFile := filepath.Join(t.TempDir(), "receiver.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: recv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	received := func() []webhook {
		mu.Lock()
		defer mu.Unlock()
		return append([]webhook(nil), got...)
	}

	dataDir := filepath.Join(t.TempDir(), "d")
	dev, creds := startDevEnv(t, bin, dataDir, []string{"SSL_CERT_FILE=" + caFile, "TALLY_ALERT_INTERVAL=1h"})
	// The evaluator started just before the API answered /readyz.
	ready := time.Now()
	defer dev.stop(t, dataDir)
	acct := creds.Account
	call := func(method, path, body string) (int, []byte) {
		t.Helper()
		return callAPI(t, creds.BaseURL, acct, method, path, body)
	}
	st, b := call("POST", "/v1/accounts/"+acct.AccountSID+"/alerts",
		`{"friendly_name":"two users","metric":"active_users","threshold":2,"webhook_url":"`+recv.URL+`/hook"}`)
	if st != 201 {
		t.Fatalf("create alert: %d %s", st, b)
	}
	var created struct {
		SID           string `json:"sid"`
		SigningSecret string `json:"signing_secret"`
	}
	if err := json.Unmarshal(b, &created); err != nil || created.SigningSecret == "" {
		t.Fatalf("create alert: %v %s", err, b)
	}
	now := time.Now().UTC()
	event := func(id, identity string) {
		t.Helper()
		st, b := call("POST", "/v1/accounts/"+acct.AccountSID+"/events", fmt.Sprintf(
			`{"events":[{"id":%q,"activity":"send","source":"sdk","service_sid":"IS1","identity":%q,"occurred_at":%q}]}`,
			id, identity, now.Add(-time.Second).Format(time.RFC3339Nano)))
		if st != 200 {
			t.Fatalf("events: %d %s", st, b)
		}
	}
	event("a1", "alice@example.com") // one user: below the threshold
	time.Sleep(3 * time.Second)      // folds and evaluations come and go
	if n := len(received()); n != 0 {
		t.Fatalf("%d webhooks one user below the threshold", n)
	}
	event("b1", "bob@example.com") // reaches it
	crossed := time.Now()
	for len(received()) == 0 && time.Since(crossed) < 60*time.Second {
		time.Sleep(50 * time.Millisecond)
	}
	hooks := received()
	if len(hooks) == 0 {
		t.Fatalf("no webhook within 60 s of the crossing; tally dev's log:\n%s", dev.stderr)
	}
	took := hooks[0].at.Sub(crossed)
	t.Logf("webhook %s after the crossing, %s after tally dev was ready", took.Round(time.Millisecond), hooks[0].at.Sub(ready).Round(time.Millisecond))
	if after := hooks[0].at.Sub(ready); after >= 25*time.Second {
		t.Errorf("webhook %s after tally dev was ready: it waited for the pass over every alert, not the fold of the account's events", after.Round(time.Millisecond))
	}
	h := hooks[0]
	if err := alerts.Verify(created.SigningSecret, h.signature, h.body, time.Now(), 5*time.Minute); err != nil {
		t.Errorf("Tally-Signature %q: %v", h.signature, err)
	}
	var body map[string]any
	if err := json.Unmarshal(h.body, &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"type": alerts.EventType, "alert_sid": created.SID, "account_sid": acct.AccountSID,
		"month": now.Format("2006-01"), "metric": "active_users", "threshold": 2.0, "value": 2.0}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("body[%s] = %v, want %v (%s)", k, body[k], v, h.body)
		}
	}

	// The attempt is recorded after the receiver answered: wait for it.
	series := []string{"tally_alerts_fired_total 1", `tally_alert_delivery_attempts_total{outcome="delivered"} 1`,
		`tally_alert_delivery_attempts_total{outcome="retry"} 0`, `tally_alert_delivery_attempts_total{outcome="failed"} 0`,
		"tally_alert_delivery_attempt_seconds_count 1", `tally_alert_delivery_attempt_seconds_bucket{le="10"} 1`,
		"tally_alert_delivery_latency_seconds_count 1", "tally_alert_outbox_pending 0"}
	var metrics string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(creds.BaseURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		metrics = string(b)
		missing := 0
		for _, s := range series {
			if !strings.Contains(metrics, "\n"+s+"\n") {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, s := range series {
				if !strings.Contains(metrics, "\n"+s+"\n") {
					t.Errorf("/metrics lacks %q", s)
				}
			}
			break
		}
	}
	st, b = call("GET", "/v1/accounts/"+acct.AccountSID+"/alerts/"+created.SID+"/deliveries", "")
	var ds struct{ Deliveries []map[string]any }
	if err := json.Unmarshal(b, &ds); st != 200 || err != nil || len(ds.Deliveries) != 1 ||
		ds.Deliveries[0]["status"] != "delivered" || ds.Deliveries[0]["id"] != body["id"] {
		t.Errorf("deliveries: %d %s", st, b)
	}
	if len(received()) != 1 {
		t.Errorf("%d webhooks, want 1", len(received()))
	}
}
