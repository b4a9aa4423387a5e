package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"

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
	if got := tokenEvents(t, e); len(got) != 0 {
		t.Fatalf("minting recorded activities %v", got)
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
	if got, want := strings.Join(tokenEvents(t, e), " "), "ISchat/a/b@example.com 用户/authenticate/sdk/ep1 ISsync/a/b@example.com 用户/authenticate/sdk/"; got != want {
		t.Fatalf("events %q, want %q", got, want)
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
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM month_users WHERE service_sid = 'ISsolo'`).Scan(&n); err != nil {
		t.Fatalf("count ISsolo's users: %v", err)
	}
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

// TestVerifyBodies: a verification body is read by decodeJSON's rules.
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
		{" \r\n\t{\"token\":\"" + tok + "\"}\n", 200}, // white space around the JSON, not in the token
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

// tokenEvents lists the stored events as service/identity/activity/source/
// endpoint, in that order, failing the test if the query fails (a failed
// query must not pass for "no events").
func tokenEvents(t *testing.T, e *env) []string {
	t.Helper()
	rows, err := e.pool.Query(t.Context(), `
		SELECT service_sid || '/' || identity || '/' || activity || '/' || source || '/' || coalesce(endpoint_id, '')
		FROM events ORDER BY service_sid, identity, event_id`)
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	return got
}

// verifyBody is a verification body for tok, JSON-escaped, so a token
// with white space or control characters reaches Verify as it is.
func verifyBody(t *testing.T, tok string) string {
	t.Helper()
	b, err := json.Marshal(map[string]string{"token": tok})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTokenSpellingsCountOnce: the same token spelled differently (the
// unused low bits of the signature's last base64url character set) is
// malformed and records nothing, so verifying it counts the user once.
func TestTokenSpellingsCountOnce(t *testing.T) {
	e := newEnv(t)
	key := e.keys[e.acme][usage.RoleIngest]
	base := "/v1/accounts/" + e.acme + "/tokens"
	tok := e.post(key, base, `{"identity":"alice","grants":{"chat":{"service_sid":"IS1"},"sync":{"service_sid":"IS2"}}}`).json(t)["token"].(string)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	sig := tok[strings.LastIndexByte(tok, '.')+1:]
	if len(sig) != 43 { // 32 bytes: the last character carries 4 bits and 2 unused ones
		t.Fatalf("HS256 signature of %d characters, want 43", len(sig))
	}
	last := strings.IndexByte(alphabet, tok[len(tok)-1])
	spellings := []string{tok}
	for low := 1; low <= 3; low++ {
		spellings = append(spellings, tok[:len(tok)-1]+string(alphabet[last&^3|low]))
	}
	for i, sp := range spellings {
		r := e.post(key, base+"/verify", verifyBody(t, sp))
		want, wantReason := http.StatusOK, ""
		if sp != tok {
			want, wantReason = http.StatusUnauthorized, "malformed"
		}
		if r.status != want {
			t.Fatalf("spelling %d (%s): %d %s, want %d", i, sp[len(sp)-3:], r.status, r.body, want)
		}
		if want != http.StatusOK {
			if got := r.json(t)["reason"]; got != wantReason {
				t.Errorf("spelling %d: reason %v, want %s", i, got, wantReason)
			}
		}
	}
	if got, want := strings.Join(tokenEvents(t, e), " "), "IS1/alice/authenticate/sdk/ IS2/alice/authenticate/sdk/"; got != want {
		t.Fatalf("events %q, want %q: one per grant, whatever the spellings", got, want)
	}
}

// TestTokenWhitespace: a token is exactly its characters; white space
// before, after or inside it is malformed, whichever side it is on.
func TestTokenWhitespace(t *testing.T) {
	e := newEnv(t)
	key := e.keys[e.acme][usage.RoleIngest]
	base := "/v1/accounts/" + e.acme + "/tokens"
	tok := e.post(key, base, `{"identity":"alice","grants":{"chat":{"service_sid":"IS1"}}}`).json(t)["token"].(string)
	for _, tt := range []struct {
		name string
		tok  string
	}{
		{"trailing newline", tok + "\n"},
		{"trailing CR LF", tok + "\r\n"},
		{"leading newline", "\n" + tok},
		{"leading space", " " + tok},
		{"trailing space", tok + " "},
		{"trailing tab", tok + "\t"},
		{"newline inside", tok[:20] + "\n" + tok[20:]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.post(key, base+"/verify", verifyBody(t, tt.tok))
			if r.status != http.StatusUnauthorized {
				t.Fatalf("status %d %s, want 401", r.status, r.body)
			}
			if got := r.json(t)["reason"]; got != "malformed" {
				t.Errorf("reason %v, want malformed", got)
			}
		})
	}
	if got := tokenEvents(t, e); len(got) != 0 {
		t.Fatalf("recorded %v", got)
	}
}

// TestTokenGrantsInterop: twilio-node lets a chat grant omit serviceSid
// (Conversations' default service): such a token verifies and counts the
// user in the service "default"; a token with neither a chat nor a sync
// grant verifies and records nothing (§5).
func TestTokenGrantsInterop(t *testing.T) {
	e := newEnv(t)
	key := e.keys[e.acme][usage.RoleIngest]
	path := "/v1/accounts/" + e.acme + "/tokens/verify"
	// What twilio-node's AccessToken.toJwt writes: iat and no nbf, a twr
	// header, grants of its own choosing.
	nodeToken := func(grants map[string]any) string {
		t.Helper()
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"jti": key.sid + "-" + strconv.FormatInt(e.now.Unix(), 10), "iss": key.sid, "sub": e.acme,
			"iat": e.now.Unix(), "exp": e.now.Add(time.Hour).Unix(), "grants": grants})
		tok.Header["cty"] = "twilio-fpa;v=1"
		tok.Header["twr"] = "ie1"
		s, err := tok.SignedString([]byte(key.secret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tt := range []struct {
		name       string
		grants     map[string]any
		wantGrants string // the answer's grants, as JSON
		wantEvents []string
	}{
		{"chat grant without serviceSid",
			map[string]any{"identity": "alice", "chat": map[string]any{"endpoint_id": "alice-web"}},
			`{"identity":"alice","chat":{"service_sid":"default","endpoint_id":"alice-web"}}`,
			[]string{"default/alice/authenticate/sdk/alice-web"}},
		{"empty chat grant beside a sync grant",
			map[string]any{"identity": "bob", "chat": map[string]any{}, "data_sync": map[string]any{"service_sid": "ISsync"}},
			`{"identity":"bob","chat":{"service_sid":"default"},"data_sync":{"service_sid":"ISsync"}}`,
			[]string{"ISsync/bob/authenticate/sdk/", "default/bob/authenticate/sdk/"}},
		{"a video grant only",
			map[string]any{"identity": "carol", "video": map[string]any{"room": "r1"}},
			`{"identity":"carol"}`, nil},
		{"no grant but the identity",
			map[string]any{"identity": "dave"},
			`{"identity":"dave"}`, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tok := nodeToken(tt.grants)
			for i := range 2 { // the second verification records nothing new
				r := e.post(key, path, verifyBody(t, tok))
				if r.status != http.StatusOK {
					t.Fatalf("verify %d: %d %s", i, r.status, r.body)
				}
				var got struct {
					Valid    bool            `json:"valid"`
					Grants   json.RawMessage `json:"grants"`
					NotAfter string          `json:"expires_at"`
				}
				if err := json.Unmarshal(r.body, &got); err != nil {
					t.Fatalf("answer %s: %v", r.body, err)
				}
				if !got.Valid || string(got.Grants) != tt.wantGrants {
					t.Fatalf("valid %v, grants %s; want true, %s", got.Valid, got.Grants, tt.wantGrants)
				}
			}
			var got []string // this case's: each has its own identity
			for _, ev := range tokenEvents(t, e) {
				if strings.Contains(ev, "/"+tt.grants["identity"].(string)+"/") {
					got = append(got, ev)
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.wantEvents, " ") {
				t.Fatalf("events %q, want %q", got, tt.wantEvents)
			}
		})
	}
}

// TestTokenMintTTL: ttl is an integer number of seconds from 180 to
// 86400; a fraction is named as such, not as a wrong type.
func TestTokenMintTTL(t *testing.T) {
	e := newEnv(t)
	key := e.keys[e.acme][usage.RoleIngest]
	path := "/v1/accounts/" + e.acme + "/tokens"
	for _, tt := range []struct {
		ttl     string
		status  int
		wantTTL float64 // for 201
		message string  // a part of the ttl error's message, for 422
	}{
		{`3600`, 201, 3600, ""},
		{`null`, 201, 3600, ""},
		{`180`, 201, 180, ""},
		{`86400`, 201, 86400, ""},
		{`3600.0`, 201, 3600, ""},
		{`3.6e3`, 201, 3600, ""},
		{`3600.5`, 422, 0, "integer number of seconds"},
		{`180.000001`, 422, 0, "integer number of seconds"},
		{`179`, 422, 0, "from 180 to 86400"},
		{`86401`, 422, 0, "from 180 to 86400"},
		{`-3600`, 422, 0, "from 180 to 86400"},
		{`1e400`, 422, 0, "from 180 to 86400"},
		{`"3600"`, 422, 0, "must be a JSON number"},
		{`true`, 422, 0, "must be a JSON number"},
		{`[3600]`, 422, 0, "must be a JSON number"},
		{`36OO`, 400, 0, ""},
	} {
		t.Run(tt.ttl, func(t *testing.T) {
			r := e.post(key, path, `{"identity":"a","ttl":`+tt.ttl+`,"grants":{"chat":{"service_sid":"IS1"}}}`)
			if r.status != tt.status {
				t.Fatalf("status %d %s, want %d", r.status, r.body, tt.status)
			}
			switch tt.status {
			case 201:
				if got := r.json(t)["ttl"]; got != tt.wantTTL {
					t.Errorf("ttl %v, want %v", got, tt.wantTTL)
				}
			case 422:
				var p struct {
					Errors []struct{ Field, Message string } `json:"errors"`
				}
				if err := json.Unmarshal(r.body, &p); err != nil {
					t.Fatalf("problem %s: %v", r.body, err)
				}
				if len(p.Errors) != 1 || p.Errors[0].Field != "ttl" || !strings.Contains(p.Errors[0].Message, tt.message) {
					t.Errorf("errors %+v, want one on ttl saying %q", p.Errors, tt.message)
				}
			}
		})
	}
}
