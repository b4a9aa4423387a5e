package httpapi_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/httpapi"
	"github.com/tallyhq/tally/internal/usage"
)

func TestTokenMintVerifyRecordsOneAuthentication(t *testing.T) {
	e := newEnv(t)
	e.now = time.Date(2026, 10, 5, 12, 0, 0, 0, time.UTC)
	key := e.keys[e.acme][usage.RoleIngest]
	base := "/v1/accounts/" + e.acme + "/tokens"
	r := e.post(key, base, `{"identity":"a/b@example.com 用户","ttl":600,"grants":{"chat":{"service_sid":"ISchat","endpoint_id":"ep1"},"sync":{"service_sid":"ISsync"}}}`)
	if r.status != http.StatusCreated {
		t.Fatalf("mint: %d %s", r.status, r.body)
	}
	m := r.json(t)
	if m["identity"] != "a/b@example.com 用户" || m["ttl"] != float64(600) || m["expires_at"] != "2026-10-05T12:10:00Z" {
		t.Fatalf("minted %v", m)
	}
	var events int
	e.pool.QueryRow(t.Context(), `SELECT count(*) FROM events`).Scan(&events)
	if events != 0 {
		t.Fatal("minting recorded an activity")
	}
	body := `{"token":"` + m["token"].(string) + `"}`
	for i := 0; i < 2; i++ { // verifying twice records the events once
		v := e.post(key, base+"/verify", body)
		if v.status != 200 {
			t.Fatalf("verify %d: %d %s", i, v.status, v.body)
		}
		got := v.json(t)
		if got["valid"] != true || got["identity"] != "a/b@example.com 用户" || got["account_sid"] != e.acme || got["api_key_sid"] != key.sid ||
			got["not_before"] != "2026-10-05T12:00:00Z" || got["expires_at"] != "2026-10-05T12:10:00Z" {
			t.Fatalf("verified %v", got)
		}
	}
	rows, _ := e.pool.Query(t.Context(), `SELECT service_sid, activity, source, coalesce(endpoint_id, '') FROM events ORDER BY service_sid`)
	var got []string
	for rows.Next() {
		var s, a, src, ep string
		rows.Scan(&s, &a, &src, &ep)
		got = append(got, s+"/"+a+"/"+src+"/"+ep)
	}
	if strings.Join(got, " ") != "ISchat/authenticate/sdk/ep1 ISsync/authenticate/sdk/" {
		t.Fatalf("events %v", got)
	}
	report := e.get(e.keys[e.acme][usage.RoleFinance], "/v1/accounts/"+e.acme+"/reports/2026-10").json(t)
	if report["active_users"] != float64(2) || report["distinct_identities"] != float64(1) {
		t.Fatalf("report %v", report)
	}
	// Chat only: the month's active-user count of that service is 1.
	only := e.post(key, base, `{"identity":"solo","grants":{"chat":{"service_sid":"ISsolo"}}}`).json(t)["token"].(string)
	for i := 0; i < 2; i++ {
		e.post(key, base+"/verify", `{"token":"`+only+`"}`)
	}
	var n int
	e.fold(t)
	e.pool.QueryRow(t.Context(), `SELECT count(*) FROM month_users WHERE service_sid = 'ISsolo'`).Scan(&n)
	if n != 1 {
		t.Fatalf("ISsolo has %d active users, want 1", n)
	}
}

func TestTokenErrors(t *testing.T) {
	e := newEnv(t)
	key := e.keys[e.acme][usage.RoleIngest]
	base := "/v1/accounts/" + e.acme + "/tokens"
	for _, body := range []string{
		`{"identity":"a","grants":{}}`,
		`{"identity":"","grants":{"chat":{"service_sid":"IS1"}}}`,
		`{"identity":"a","ttl":179,"grants":{"chat":{"service_sid":"IS1"}}}`,
		`{"identity":"a","ttl":86401,"grants":{"chat":{"service_sid":"IS1"}}}`,
		`{"identity":"a","grants":{"chat":{"service_sid":"IS 1"}}}`,
		`{"identity":"a","grants":{"video":{}}}`,
	} {
		if r := e.post(key, base, body); r.status != 422 {
			t.Errorf("mint %s: %d, want 422", body, r.status)
		}
	}
	r := e.post(key, base+"/verify", `{"token":"not.a.token"}`)
	if r.status != 401 || r.header.Get("WWW-Authenticate") != "" {
		t.Fatalf("bad token: %d, WWW-Authenticate %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	p := r.json(t)
	if p["reason"] != "malformed" || !strings.HasSuffix(p["type"].(string), "/invalid-token") {
		t.Fatalf("problem %v", p)
	}
	// A token of another account's key, verified on this account's path.
	otherTok := e.post(e.keys[e.other][usage.RoleIngest], "/v1/accounts/"+e.other+"/tokens",
		`{"identity":"a","grants":{"chat":{"service_sid":"IS1"}}}`).json(t)["token"].(string)
	if p := e.post(key, base+"/verify", `{"token":"`+otherTok+`"}`).json(t); p["reason"] != "wrong_account" {
		t.Fatalf("other account's token: %v", p)
	}
}

// TestVerifyBodies: a verification body is read by decodeJSON's rules,
// whether it takes the hand-read form or encoding/json.
func TestVerifyBodies(t *testing.T) {
	e := newEnv(t)
	key := e.keys[e.acme][usage.RoleIngest]
	base := "/v1/accounts/" + e.acme + "/tokens"
	tok := e.post(key, base, `{"identity":"a","grants":{"chat":{"service_sid":"IS1"}}}`).json(t)["token"].(string)
	escaped := `\u00` + strconv.FormatInt(int64(tok[0]), 16) + tok[1:]
	for _, c := range []struct {
		body   string
		status int
	}{
		{`{"token":"` + tok + `"}`, 200},
		{" \r\n\t{\"token\":\"" + tok + "\"}\n", 200},
		{`{ "token" : "` + tok + `" }`, 200},
		{`{"token":"` + escaped + `"}`, 200},
		{`{"Token":"` + tok + `"}`, 200}, // encoding/json matches keys without case
		{`{"token":"` + tok + `","x":1}`, 422},
		{`{"token":"` + tok + `"}{}`, 400},
		{`{"token":"` + tok + `"} x`, 400},
		{`{"token":"` + tok + `"`, 400},
		{`{"token":"` + tok + "\x01" + `"}`, 400},
		{`{"token":"` + tok + "\xff" + `"}`, 401}, // decoded to U+FFFD: a token that does not verify
		{`{"token":"` + tok + `x"}`, 401},
		{`{"token":1}`, 422},
		{`{"token":""}`, 422},
		{`{}`, 422},
		{``, 400},
		{`{"token":"` + strings.Repeat("a", httpapi.MaxJSONBody) + `"}`, 413},
	} {
		if r := e.post(key, base+"/verify", c.body); r.status != c.status {
			t.Errorf("verify %.80q: %d, want %d: %s", c.body, r.status, c.status, r.body)
		}
	}
}

// TestKeyRotationAndRevocation: an account holds two keys; tokens of each
// verify until that key is revoked, and then stop within 5 seconds on a
// replica that had cached the key.
func TestKeyRotationAndRevocation(t *testing.T) {
	e := newEnv(t)
	admin := e.keys[e.acme][usage.RoleAdmin]
	newKey := e.post(admin, "/v1/accounts/"+e.acme+"/keys", `{"role":"ingest"}`).json(t)
	k2 := cred{newKey["sid"].(string), newKey["secret"].(string)}
	k1 := e.keys[e.acme][usage.RoleIngest]
	base := "/v1/accounts/" + e.acme + "/tokens"
	mint := func(c cred) string {
		return e.post(c, base, `{"identity":"alice","grants":{"chat":{"service_sid":"IS1"}}}`).json(t)["token"].(string)
	}
	t1, t2 := mint(k1), mint(k2)
	replica := e.newServer(2 * time.Second)
	verifyOn := func(srv string, tok string) response {
		s := e.srv
		if srv == "replica" {
			s = replica
		}
		return e.do(s, admin, "POST", base+"/verify", "application/json", strings.NewReader(`{"token":"`+tok+`"}`))
	}
	for _, tok := range []string{t1, t2} {
		if r := verifyOn("replica", tok); r.status != 200 {
			t.Fatalf("before revocation: %d %s", r.status, r.body)
		}
	}
	if r := e.do(e.srv, admin, "DELETE", "/v1/accounts/"+e.acme+"/keys/"+k1.sid, "", nil); r.status != 204 {
		t.Fatal(r.status)
	}
	start := time.Now()
	for {
		r := verifyOn("replica", t1)
		if r.status == 401 {
			if reason := r.json(t)["reason"]; reason != "revoked_key" {
				t.Fatalf("reason %v", reason)
			}
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("a revoked key's token still verifies after 5 seconds")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := verifyOn("replica", t2); r.status != 200 {
		t.Fatalf("the other key's token after rotation: %d %s", r.status, r.body)
	}
}
