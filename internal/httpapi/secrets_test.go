package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tallyhq/tally/internal/usage"
)

// TestNoSecretsInLogsMetricsOrErrors runs what touches secrets — minting,
// verifying, failed authentication — and looks for any secret or token in
// the logs, the metrics and the error bodies.
func TestNoSecretsInLogsMetricsOrErrors(t *testing.T) {
	e := newEnv(t)
	key := e.keys[e.acme][usage.RoleIngest]
	base := "/v1/accounts/" + e.acme + "/tokens"
	tok := e.post(key, base, `{"identity":"alice","grants":{"chat":{"service_sid":"IS1"}}}`).json(t)["token"].(string)
	var bodies []string
	for _, r := range []response{
		e.post(key, base+"/verify", `{"token":"`+tok+`"}`),
		e.post(key, base+"/verify", `{"token":"`+tok+`x"}`),                        // bad signature
		e.post(cred{key.sid, key.secret[:31] + "x"}, base, `{"identity":"a"}`),     // wrong secret
		e.post(cred{key.sid, key.secret}, "/v1/accounts/"+e.other+"/events", `{}`), // another account
		e.post(key, base, `{"identity":"a","grants":{}}`),                          // 422
	} {
		bodies = append(bodies, string(r.body))
	}
	metrics := string(e.get(cred{}, "/metrics").body)
	for _, want := range []string{"tally_http_requests_total", "tally_http_request_duration_seconds", "tally_events_total",
		"tally_tokens_minted_total", `tally_tokens_verified_total{outcome="valid"}`, `tally_tokens_verified_total{outcome="bad_signature"}`,
		"tally_db_pool_acquired_connections", `route="/v1/accounts/:account_sid/tokens"`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	logs := e.logs.String()
	var lines int
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["msg"] == "request" {
			lines++
			for _, f := range []string{"request_id", "method", "route", "path", "status", "latency_ms", "account_sid"} {
				if _, ok := m[f]; !ok {
					t.Errorf("request log line without %s: %s", f, line)
				}
			}
		}
	}
	if lines < 6 {
		t.Fatalf("%d request log lines", lines)
	}
	haystacks := map[string]string{"logs": logs, "metrics": metrics, "error bodies": strings.Join(bodies[1:], "\n")}
	needles := map[string]string{"token": tok, "token signature": tok[strings.LastIndexByte(tok, '.')+1:]}
	for acct, roles := range e.keys {
		for r, c := range roles {
			needles["secret of "+acct+"/"+string(r)] = c.secret
		}
	}
	for where, hay := range haystacks {
		for what, needle := range needles {
			if strings.Contains(hay, needle) {
				t.Errorf("the %s hold a %s", where, what)
			}
		}
	}
}
