package keys_test

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/keys"
	"github.com/tallyhq/tally/internal/pgtest"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/secrets"
	"github.com/tallyhq/tally/internal/usage"
)

func TestMain(m *testing.M) { pgtest.MainOn(m, pgtest.Postgres) }

// TestCreateStoresOnlyTheSealedSecret: the secret comes back once in
// clear; the store holds it sealed, and it opens to the same secret.
func TestCreateStoresOnlyTheSealedSecret(t *testing.T) {
	pool, _ := pgtest.NewDB(t)
	store := postgres.New(pool, time.Now)
	master := make([]byte, 32)
	rand.Read(master)
	box, err := secrets.NewBox(master)
	if err != nil {
		t.Fatal(err)
	}
	a, err := store.CreateAccount(t.Context(), "Acme", false)
	if err != nil {
		t.Fatal(err)
	}
	k, secret, err := keys.Create(t.Context(), store, box, a.SID, usage.RoleFinance, "books")
	if err != nil {
		t.Fatal(err)
	}
	if k.AccountSID != a.SID || k.Role != usage.RoleFinance || k.FriendlyName != "books" || len(secret) != 32 {
		t.Fatalf("key %+v, secret of %d characters", k, len(secret))
	}
	var sealed []byte
	if err := pool.QueryRow(t.Context(), `SELECT secret_sealed FROM api_keys WHERE key_sid = $1`, k.SID).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if string(sealed) == secret || len(sealed) <= len(secret) {
		t.Fatalf("the stored secret is not sealed: %q", sealed)
	}
	opened, err := box.Open(sealed, k.SID)
	if err != nil || opened != secret {
		t.Fatalf("the sealed secret opens to %q (%v), want the one given once", opened, err)
	}
}
