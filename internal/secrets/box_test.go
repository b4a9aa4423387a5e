package secrets

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	key, err := ParseMasterKey(NewMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	box, err := NewBox(key)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "abcdefghijABCDEFGHIJ0123456789xy"
	sealed := box.Seal(secret, "SK1")
	if bytes.Contains(sealed, []byte(secret)) {
		t.Fatal("sealed value contains the secret in clear")
	}
	got, err := box.Open(sealed, "SK1")
	if err != nil || got != secret {
		t.Fatalf("Open = %q, %v; want %q", got, err, secret)
	}
	if _, err := box.Open(sealed, "SK2"); err == nil {
		t.Error("Open with another key's context succeeded")
	}
	other, _ := NewBox(bytes.Repeat([]byte{7}, 32))
	if _, err := other.Open(sealed, "SK1"); err == nil {
		t.Error("Open under another master key succeeded")
	}
	if _, err := box.Open(sealed[:10], "SK1"); err == nil {
		t.Error("Open of a truncated value succeeded")
	}
	if bytes.Equal(box.Seal(secret, "SK1"), sealed) {
		t.Error("two seals of one secret are equal: nonce reused")
	}
}

func TestParseMasterKey(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	tests := []struct {
		name, in string
		wantErr  string
	}{
		{"std", good, ""},
		{"raw url", base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)), ""},
		{"empty", "", "empty"},
		{"short", base64.StdEncoding.EncodeToString(make([]byte, 16)), "16 bytes"},
		{"not base64", "not base64 at all!", "not base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseMasterKey(tt.in)
			if tt.wantErr == "" {
				if err != nil || len(k) != 32 {
					t.Fatalf("got %d bytes, %v; want 32 bytes", len(k), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKey := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	old, _ := NewBox(oldKey)
	sealed := old.Seal("s3cret", "SK1")
	both, err := NewBox(newKey, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := both.Open(sealed, "SK1"); err != nil || got != "s3cret" {
		t.Fatalf("open an old secret during rotation: %q %v", got, err)
	}
	rewrapped, err := both.Rewrap(sealed, "SK1")
	if err != nil {
		t.Fatal(err)
	}
	onlyNew, _ := NewBox(newKey)
	if got, err := onlyNew.Open(rewrapped, "SK1"); err != nil || got != "s3cret" {
		t.Fatalf("open a rewrapped secret with the new key only: %q %v", got, err)
	}
	if _, err := onlyNew.Open(sealed, "SK1"); err == nil {
		t.Fatal("the new key alone opened a secret sealed under the old one")
	}
}
