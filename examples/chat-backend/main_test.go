package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/internal/httpapi"
	"github.com/tallyhq/tally/internal/keys"
	"github.com/tallyhq/tally/internal/pgtest"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/secrets"
	"github.com/tallyhq/tally/internal/usage"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestChatBackend: a user signs in and gets a token that tally verifies
// with both grants, refreshes it, and sends a message that tally counts.
func TestChatBackend(t *testing.T) {
	pool, _ := pgtest.NewDB(t)
	store := postgres.New(pool, time.Now)
	box, _ := secrets.NewBox(bytes.Repeat([]byte{5}, 32))
	acct, err := store.CreateAccount(t.Context(), "Chat", false)
	if err != nil {
		t.Fatal(err)
	}
	ingest, secret, err := keys.Create(t.Context(), store, box, acct.SID, usage.RoleIngest, "backend")
	if err != nil {
		t.Fatal(err)
	}
	admin, adminSecret, err := keys.Create(t.Context(), store, box, acct.SID, usage.RoleAdmin, "test")
	if err != nil {
		t.Fatal(err)
	}
	tallySrv := httptest.NewServer(httpapi.New(httpapi.Config{Store: store, Box: box}))
	defer tallySrv.Close()

	tc, err := client.New(client.Config{BaseURL: tallySrv.URL, KeySID: ingest.SID, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{tally: tc, chatService: "ISchat", syncService: "ISsync", sessions: map[string]session{}}
	srv := httptest.NewServer(b.routes())
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}

	post := func(path, body string) *http.Response {
		t.Helper()
		resp, err := browser.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	tokenOf := func(resp *http.Response) string {
		t.Helper()
		defer resp.Body.Close()
		var out struct{ Identity, Token string }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.Identity != "alice" {
			t.Fatalf("answer %d %+v %v", resp.StatusCode, out, err)
		}
		return out.Token
	}

	first := tokenOf(post("/signin", `{"name":"alice","device":"laptop"}`))
	refreshed := tokenOf(post("/token", ``))
	if resp := post("/messages", `{"conversation":"CH1","body":"hi"}`); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("message: %d", resp.StatusCode)
	}

	verifier, err := client.New(client.Config{BaseURL: tallySrv.URL, KeySID: admin.SID, Secret: adminSecret})
	if err != nil {
		t.Fatal(err)
	}
	defer verifier.Close(context.Background())
	for _, tok := range []string{first, refreshed} {
		v, err := verifier.VerifyToken(t.Context(), tok)
		if err != nil {
			t.Fatal(err)
		}
		if v.Grants.Chat == nil || v.Grants.Chat.ServiceSID != "ISchat" || v.Grants.Chat.EndpointID != "alice:laptop" ||
			v.Grants.Sync == nil || v.Grants.Sync.ServiceSID != "ISsync" {
			t.Errorf("grants %+v %+v", v.Grants.Chat, v.Grants.Sync)
		}
	}
	if err := tc.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := tc.Stats(); st.Accepted != 1 {
		t.Errorf("backend's client: %+v, want the message's send accepted", st)
	}
	r, err := verifier.Report(t.Context(), time.Now().UTC().Format("2006-01"))
	if err != nil {
		t.Fatal(err)
	}
	// alice in the chat service (send, authenticate) and in sync (authenticate).
	if r.ActiveUsers != 2 {
		t.Errorf("active users %d, want 2", r.ActiveUsers)
	}
}
