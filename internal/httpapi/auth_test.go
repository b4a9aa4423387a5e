package httpapi_test

import (
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/usage"
)

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	admin := e.keys[e.acme][usage.RoleAdmin]
	path := "/v1/accounts/" + e.acme + "/keys"
	tests := []struct {
		name string
		c    cred
	}{
		{"no credentials", cred{}},
		{"wrong secret", cred{admin.sid, strings.Repeat("x", 32)}},
		{"unknown key", cred{usage.NewKeySID(), admin.secret}},
		{"not a key sid", cred{"bob", admin.secret}},
		{"another key's secret", cred{admin.sid, e.keys[e.acme][usage.RoleIngest].secret}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.get(tt.c, path)
			if r.status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", r.status)
			}
			if got := r.header.Get("WWW-Authenticate"); got != `Basic realm="tally"` {
				t.Errorf("WWW-Authenticate = %q", got)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type = %q", ct)
			}
			p := r.json(t)
			if p["status"] != float64(401) || p["type"] == "" || p["title"] == "" {
				t.Errorf("problem %v", p)
			}
		})
	}
	if r := e.get(admin, path); r.status != http.StatusOK {
		t.Fatalf("good credentials: %d %s", r.status, r.body)
	}
}

// TestAuthorization checks §2: another account's key gets 404 whatever its
// role, a wrong role 403, a platform key may name any account.
func TestAuthorization(t *testing.T) {
	e := newEnv(t)
	ev := batch(eventJSON("e1", "alice", "2026-10-05T12:00:00Z"))
	tests := []struct {
		name    string
		account string // whose key
		role    usage.Role
		method  string
		path    string // %s = acme's SID
		body    string
		want    int
	}{
		{"own ingest posts events", "acme", usage.RoleIngest, "POST", "/v1/accounts/%s/events", ev, 200},
		{"own admin posts events", "acme", usage.RoleAdmin, "POST", "/v1/accounts/%s/events", ev, 200},
		{"own finance posts events", "acme", usage.RoleFinance, "POST", "/v1/accounts/%s/events", ev, 403},
		{"other ingest posts events", "other", usage.RoleIngest, "POST", "/v1/accounts/%s/events", ev, 404},
		{"other finance posts events", "other", usage.RoleFinance, "POST", "/v1/accounts/%s/events", ev, 404},
		{"platform ingest posts events", "platform", usage.RoleIngest, "POST", "/v1/accounts/%s/events", ev, 200},
		{"own admin lists keys", "acme", usage.RoleAdmin, "GET", "/v1/accounts/%s/keys", "", 200},
		{"own ingest lists keys", "acme", usage.RoleIngest, "GET", "/v1/accounts/%s/keys", "", 403},
		{"other admin lists keys", "other", usage.RoleAdmin, "GET", "/v1/accounts/%s/keys", "", 404},
		{"platform admin lists keys", "platform", usage.RoleAdmin, "GET", "/v1/accounts/%s/keys", "", 200},
		{"platform finance lists keys", "platform", usage.RoleFinance, "GET", "/v1/accounts/%s/keys", "", 403},
		{"platform admin, unknown account", "platform", usage.RoleAdmin, "GET", "/v1/accounts/" + usage.NewAccountSID() + "/keys", "", 404},
		{"malformed account", "acme", usage.RoleAdmin, "GET", "/v1/accounts/ACnope/keys", "", 404},
		{"own admin creates key", "acme", usage.RoleAdmin, "POST", "/v1/accounts/%s/keys", `{"role":"finance"}`, 201},
		{"own finance creates key", "acme", usage.RoleFinance, "POST", "/v1/accounts/%s/keys", `{"role":"finance"}`, 403},
		{"platform admin creates account", "platform", usage.RoleAdmin, "POST", "/v1/accounts", `{"name":"New"}`, 201},
		{"platform ingest creates account", "platform", usage.RoleIngest, "POST", "/v1/accounts", `{"name":"New"}`, 403},
		{"account admin creates account", "acme", usage.RoleAdmin, "POST", "/v1/accounts", `{"name":"New"}`, 403},
		{"platform admin lists accounts", "platform", usage.RoleAdmin, "GET", "/v1/accounts", "", 200},
		{"account admin lists accounts", "acme", usage.RoleAdmin, "GET", "/v1/accounts", "", 403},
		{"other admin revokes key", "other", usage.RoleAdmin, "DELETE", "/v1/accounts/%s/keys/" + usage.NewKeySID(), "", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sid := map[string]string{"acme": e.acme, "other": e.other, "platform": e.platform}[tt.account]
			path := tt.path
			if strings.Contains(path, "%s") {
				path = strings.Replace(path, "%s", e.acme, 1)
			}
			var r response
			if tt.body != "" {
				r = e.do(e.srv, e.keys[sid][tt.role], tt.method, path, "application/json", strings.NewReader(tt.body))
			} else {
				r = e.do(e.srv, e.keys[sid][tt.role], tt.method, path, "", nil)
			}
			if r.status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.status, tt.want, r.body)
			}
		})
	}
}

func TestKeysAPIAndRevocation(t *testing.T) {
	e := newEnv(t)
	admin := e.keys[e.acme][usage.RoleAdmin]
	r := e.post(admin, "/v1/accounts/"+e.acme+"/keys", `{"role":"ingest","friendly_name":"backend"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	k := r.json(t)
	sid, secret := k["sid"].(string), k["secret"].(string)
	if !usage.IsKeySID(sid) || len(secret) != 32 || k["role"] != "ingest" || k["friendly_name"] != "backend" || k["created_at"] == nil {
		t.Fatalf("created key %v", k)
	}
	for _, bad := range []string{`{"role":"root"}`, `{}`, `{"role":"admin","x":1}`} {
		if r := e.post(admin, "/v1/accounts/"+e.acme+"/keys", bad); r.status != http.StatusUnprocessableEntity {
			t.Errorf("create %s: %d, want 422", bad, r.status)
		}
	}
	if r := e.post(admin, "/v1/accounts/"+e.acme+"/keys", `{"role":`); r.status != http.StatusBadRequest {
		t.Errorf("malformed: %d, want 400", r.status)
	}

	list := e.get(admin, "/v1/accounts/"+e.acme+"/keys")
	if list.status != http.StatusOK || strings.Contains(string(list.body), secret) || !strings.Contains(string(list.body), sid) {
		t.Fatalf("list: %d %s", list.status, list.body)
	}

	// A second replica with the production TTL: the key works there, then is
	// revoked through the first replica and stops there within 5 seconds.
	replica := e.newServer(2 * time.Second)
	newKey := cred{sid, secret}
	evPath := "/v1/accounts/" + e.acme + "/events"
	postOn := func(srv string) int {
		s := e.srv
		if srv == "replica" {
			s = replica
		}
		return e.do(s, newKey, "POST", evPath, "application/json",
			strings.NewReader(batch(eventJSON("r-"+time.Now().String(), "alice", "2026-10-05T12:00:00Z")))).status
	}
	if st := postOn("replica"); st != http.StatusOK {
		t.Fatalf("new key on replica: %d", st)
	}
	if r := e.do(e.srv, admin, "DELETE", "/v1/accounts/"+e.acme+"/keys/"+sid, "", nil); r.status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	if st := postOn("main"); st != http.StatusUnauthorized {
		t.Fatalf("revoked key on the revoking replica: %d, want 401 at once", st)
	}
	revokedAt := time.Now()
	for postOn("replica") != http.StatusUnauthorized {
		if time.Since(revokedAt) > 5*time.Second {
			t.Fatal("revoked key still works on the other replica after 5 seconds")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("revocation reached the other replica after %v", time.Since(revokedAt).Round(time.Millisecond))
	if r := e.do(e.srv, admin, "DELETE", "/v1/accounts/"+e.acme+"/keys/"+usage.NewKeySID(), "", nil); r.status != http.StatusNotFound {
		t.Fatalf("revoke unknown key: %d, want 404", r.status)
	}
}

// TestSecretNotInDatabase looks at every row of every table as text.
func TestSecretNotInDatabase(t *testing.T) {
	e := newEnv(t)
	r := e.post(e.keys[e.acme][usage.RoleAdmin], "/v1/accounts/"+e.acme+"/keys", `{"role":"ingest"}`)
	secret := r.json(t)["secret"].(string)
	rows, err := e.pool.Query(t.Context(), `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		rows.Scan(&name)
		tables = append(tables, name)
	}
	if len(tables) < 5 {
		t.Fatalf("only %d tables: %v", len(tables), tables)
	}
	all := append([]cred{}, cred{"", secret})
	for _, ks := range e.keys {
		for _, k := range ks {
			all = append(all, k)
		}
	}
	for _, table := range tables {
		var dump string
		if err := e.pool.QueryRow(t.Context(), `SELECT coalesce(string_agg(t::text, E'\n'), '') FROM `+table+` t`).Scan(&dump); err != nil {
			t.Fatal(err)
		}
		for _, k := range all {
			if strings.Contains(dump, k.secret) || strings.Contains(dump, hex.EncodeToString([]byte(k.secret))) {
				t.Fatalf("a secret is stored in clear in %s", table)
			}
		}
	}
	if strings.Contains(e.logs.String(), secret) {
		t.Fatal("a secret is in the logs")
	}
}

// TestVerifiedKeysAreCached shows that authentication costs no database
// round trip while a key is cached: minting (which needs nothing else from
// the database) keeps working with the database gone, until the key TTL
// runs out; then the API answers 503.
func TestVerifiedKeysAreCached(t *testing.T) {
	e := newEnv(t)
	srv := e.newServer(time.Second)
	key := e.keys[e.acme][usage.RoleIngest]
	mint := func() int {
		return e.do(srv, key, "POST", "/v1/accounts/"+e.acme+"/tokens", "application/json",
			strings.NewReader(`{"identity":"alice","grants":{"chat":{"service_sid":"IS1"}}}`)).status
	}
	if st := mint(); st != 201 {
		t.Fatalf("mint: %d", st)
	}
	e.pool.Close() // the database is gone for this server
	if st := mint(); st != 201 {
		t.Fatalf("mint with a cached key and no database: %d, want 201", st)
	}
	time.Sleep(1100 * time.Millisecond)
	if st := mint(); st != 503 {
		t.Fatalf("mint after the key TTL with no database: %d, want 503", st)
	}
}
