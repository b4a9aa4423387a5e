package postgres_test

import (
	"errors"
	"testing"

	"github.com/tallyhq/tally/internal/usage"
)

func TestKeysLifecycle(t *testing.T) {
	s, _, ac := newStore(t)
	k, err := s.CreateKey(t.Context(), usage.Key{SID: usage.NewKeySID(), AccountSID: ac, Role: usage.RoleIngest, FriendlyName: "backend"}, []byte("sealed"))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := s.KeyForAuth(t.Context(), k.SID)
	if err != nil || rec.Revoked || rec.Principal.AccountSID != ac || rec.Principal.Role != usage.RoleIngest || string(rec.Sealed) != "sealed" {
		t.Fatalf("KeyForAuth = %+v, %v", rec, err)
	}
	other, _ := s.CreateAccount(t.Context(), "Other", false)
	if err := s.RevokeKey(t.Context(), other.SID, k.SID); !errors.Is(err, usage.ErrNotFound) {
		t.Fatalf("revoke through another account: %v, want not found", err)
	}
	for range 2 { // revoking twice is fine
		if err := s.RevokeKey(t.Context(), ac, k.SID); err != nil {
			t.Fatal(err)
		}
	}
	if rec, _ := s.KeyForAuth(t.Context(), k.SID); !rec.Revoked {
		t.Fatal("key not revoked")
	}
	if _, err := s.KeyForAuth(t.Context(), usage.NewKeySID()); !errors.Is(err, usage.ErrNotFound) {
		t.Fatalf("unknown key: %v, want not found", err)
	}
	ks, err := s.Keys(t.Context(), ac)
	if err != nil || len(ks) != 1 || ks[0].RevokedAt == nil {
		t.Fatalf("Keys = %+v, %v", ks, err)
	}
	if _, err := s.Account(t.Context(), usage.NewAccountSID()); !errors.Is(err, usage.ErrNotFound) {
		t.Fatalf("unknown account: %v", err)
	}
}
