package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/internal/httpapi"
	"github.com/tallyhq/tally/internal/keys"
	"github.com/tallyhq/tally/internal/pgtest"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/secrets"
	"github.com/tallyhq/tally/internal/usage"
)

// exampleServer is a real tally for the examples, started once, on its own
// database of the test server: its URL and an ingest, an admin and a
// finance key of one account.
var exampleServer = sync.OnceValue(func() (s struct {
	url                    string
	ingest, admin, finance key
}) {
	ctx := context.Background()
	b := make([]byte, 6)
	rand.Read(b)
	db := "tally_example_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, pgtest.ServerURL())
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		log.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(pgtest.ServerURL())
	if err != nil {
		log.Fatal(err)
	}
	cfg.ConnConfig.Database = db
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := postgres.Migrate(ctx, pool); err != nil {
		log.Fatal(err)
	}
	store := postgres.New(pool, time.Now)
	box, _ := secrets.NewBox(bytes.Repeat([]byte{3}, 32))
	acct, err := store.CreateAccount(ctx, "Example", false)
	if err != nil {
		log.Fatal(err)
	}
	for _, k := range []struct {
		role usage.Role
		into *key
	}{{usage.RoleIngest, &s.ingest}, {usage.RoleAdmin, &s.admin}, {usage.RoleFinance, &s.finance}} {
		sk, secret, err := keys.Create(ctx, store, box, acct.SID, k.role, string(k.role))
		if err != nil {
			log.Fatal(err)
		}
		*k.into = key{sk.SID, secret}
	}
	s.url = httptest.NewServer(httpapi.New(httpapi.Config{Store: store, Box: box})).URL
	return s
})

// A backend tracks what its users do and closes the client before it
// exits; an event tracked twice counts once.
func Example() {
	tally := exampleServer()
	ctx := context.Background()
	c, err := client.New(client.Config{BaseURL: tally.url, KeySID: tally.ingest.sid, Secret: tally.ingest.secret})
	if err != nil {
		log.Fatal(err)
	}
	at := time.Date(2026, 9, 14, 9, 30, 0, 0, time.UTC)
	for _, e := range []client.Event{
		{ID: "msg-1", Activity: "send", Source: "sdk", ServiceSID: "IS1", Identity: "alice@example.com", OccurredAt: at},
		{ID: "msg-2", Activity: "send", Source: "sdk", ServiceSID: "IS1", Identity: "bob@example.com", OccurredAt: at},
		{ID: "msg-2", Activity: "send", Source: "sdk", ServiceSID: "IS1", Identity: "bob@example.com", OccurredAt: at}, // a retry
		{Activity: "join", Source: "sdk", ServiceSID: "IS1", Identity: "alice@example.com", ChannelSID: "CH1"},         // id and time given here
	} {
		if err := c.Track(ctx, e); err != nil {
			log.Fatal(err)
		}
	}
	if err := c.Close(ctx); err != nil {
		log.Fatal(err)
	}
	st := c.Stats()
	fmt.Printf("accepted %d, duplicates %d, failed %d\n", st.Accepted, st.Duplicates, st.Failed)
	// Output: accepted 3, duplicates 1, failed 0
}

// Track refuses at once what the server would refuse, naming the field.
func ExampleClient_Track() {
	tally := exampleServer()
	ctx := context.Background()
	c, err := client.New(client.Config{BaseURL: tally.url, KeySID: tally.ingest.sid, Secret: tally.ingest.secret})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(ctx)
	err = c.Track(ctx, client.Event{Activity: "create", Source: "sdk", ServiceSID: "IS1", Identity: "carol"})
	var ce *client.Error
	if errors.As(err, &ce) {
		for _, fe := range ce.Errors {
			fmt.Printf("%d %s: %s\n", ce.Status, fe.Field, fe.Message)
		}
	}
	// Output: 422 source: activity create cannot come from source sdk
}

// Flush returns what the server refused since the previous Flush: here a
// finance key, which may not post events.
func ExampleClient_Flush() {
	tally := exampleServer()
	ctx := context.Background()
	c, err := client.New(client.Config{BaseURL: tally.url, KeySID: tally.finance.sid, Secret: tally.finance.secret})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(ctx)
	if err := c.Track(ctx, client.Event{Activity: "send", Source: "rest", ServiceSID: "IS1", Identity: "dave"}); err != nil {
		log.Fatal(err)
	}
	err = c.Flush(ctx)
	var ce *client.Error
	if errors.As(err, &ce) {
		fmt.Println(ce.Status, ce.Title)
	}
	fmt.Println("failed:", c.Stats().Failed)
	// Output:
	// 403 Forbidden
	// failed: 1
}

// A backend mints a token when its user signs in, and the SDK connects with
// it; the token is a Twilio-format JWT.
func ExampleClient_MintToken() {
	tally := exampleServer()
	ctx := context.Background()
	c, err := client.New(client.Config{BaseURL: tally.url, KeySID: tally.ingest.sid, Secret: tally.ingest.secret})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(ctx)
	tok, err := c.MintToken(ctx, client.TokenRequest{
		Identity: "alice@example.com",
		TTL:      30 * time.Minute,
		Chat:     &client.ChatGrant{ServiceSID: "IS1", EndpointID: "alice-laptop"},
		Sync:     &client.SyncGrant{ServiceSID: "IS2"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.Identity, tok.TTL, "JWT segments:", len(strings.Split(tok.Token, ".")))
	// Output: alice@example.com 30m0s JWT segments: 3
}

// Verifying a token records that its user authenticated; a token that is
// not valid says why in Reason.
func ExampleClient_VerifyToken() {
	tally := exampleServer()
	ctx := context.Background()
	c, err := client.New(client.Config{BaseURL: tally.url, KeySID: tally.ingest.sid, Secret: tally.ingest.secret})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(ctx)
	tok, err := c.MintToken(ctx, client.TokenRequest{Identity: "erin", Chat: &client.ChatGrant{ServiceSID: "IS1"}})
	if err != nil {
		log.Fatal(err)
	}
	v, err := c.VerifyToken(ctx, tok.Token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v.Identity, v.Grants.Chat.ServiceSID)

	_, err = c.VerifyToken(ctx, tok.Token+"x")
	var ce *client.Error
	if errors.As(err, &ce) {
		fmt.Println(ce.Status, ce.Reason)
	}
	// Output:
	// erin IS1
	// 401 bad_signature
}

// Report reads a month's report: its active users, and its billing when the
// account has a rate card. It needs a finance or admin key.
func ExampleClient_Report() {
	tally := exampleServer()
	ctx := context.Background()
	backend, err := client.New(client.Config{BaseURL: tally.url, KeySID: tally.ingest.sid, Secret: tally.ingest.secret})
	if err != nil {
		log.Fatal(err)
	}
	at := time.Date(2026, 8, 3, 0, 0, 0, 0, time.UTC)
	for _, who := range []string{"frank", "grace", "frank"} {
		backend.Track(ctx, client.Event{Activity: "send", Source: "sdk", ServiceSID: "IS1", Identity: who, OccurredAt: at})
	}
	if err := backend.Close(ctx); err != nil {
		log.Fatal(err)
	}

	finance, err := client.New(client.Config{BaseURL: tally.url, KeySID: tally.finance.sid, Secret: tally.finance.secret})
	if err != nil {
		log.Fatal(err)
	}
	defer finance.Close(ctx)
	r, err := finance.Report(ctx, "2026-08")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d active users (%s), billing %v\n", r.Month, r.ActiveUsers, r.Status, r.Billing)
	// Output: 2026-08: 2 active users (provisional), billing <nil>
}
