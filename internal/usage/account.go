package usage

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Role is what an API key may do (§2).
type Role string

// The three roles.
const (
	RoleAdmin   Role = "admin"
	RoleIngest  Role = "ingest"
	RoleFinance Role = "finance"
)

// Valid reports whether r is one of the three roles.
func (r Role) Valid() bool { return r == RoleAdmin || r == RoleIngest || r == RoleFinance }

// Account is a tenant of the platform.
type Account struct {
	SID       string
	Name      string
	Platform  bool
	CreatedAt time.Time
}

// Key is an API key of an account as its admins list it: SID, role, name
// and lifecycle. It never carries the secret, which is shown once, when the
// key is created, and is stored only sealed; what checks a credential or a
// token signature loads the key with its secret, as a type of its own.
type Key struct {
	SID          string
	AccountSID   string
	Role         Role
	FriendlyName string
	CreatedAt    time.Time
	RevokedAt    *time.Time
}

// Principal is who a request acts as: a verified, unrevoked API key.
type Principal struct {
	KeySID     string
	AccountSID string
	Role       Role
	Platform   bool
}

// NewAccountSID returns "AC" and 32 random lowercase hex digits.
func NewAccountSID() string { return "AC" + randomHex(16) }

// NewKeySID returns "SK" and 32 random lowercase hex digits.
func NewKeySID() string { return "SK" + randomHex(16) }

// IsAccountSID reports whether s has the form of an account SID.
func IsAccountSID(s string) bool { return isSID(s, "AC") }

// IsKeySID reports whether s has the form of an API key SID.
func IsKeySID(s string) bool { return isSID(s, "SK") }

func isSID(s, prefix string) bool {
	if len(s) != 34 || s[:2] != prefix {
		return false
	}
	for i := 2; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

const secretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// NewSecret returns 32 characters of [A-Za-z0-9] from crypto/rand, without
// modulo bias (about 190 bits).
func NewSecret() string {
	out := make([]byte, 0, 32)
	var buf [64]byte
	for len(out) < 32 {
		if _, err := rand.Read(buf[:]); err != nil {
			panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on Linux
		}
		for _, b := range buf {
			// 248 = 4*62: rejecting larger bytes keeps every character equally likely.
			if b < 248 && len(out) < 32 {
				out = append(out, secretAlphabet[b%62])
			}
		}
	}
	return string(out)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on Linux
	}
	return hex.EncodeToString(b)
}

// MaxAccountNameBytes is the longest account name.
const MaxAccountNameBytes = 256

// CheckAccountName returns why s is not a valid account name, or "" when it
// is. The rule of identities (§1) applies: 1–256 bytes of valid UTF-8
// without control characters. A name is stored as given, never trimmed, so
// a name is refused rather than silently changed.
func CheckAccountName(s string) string {
	if s != "" && strings.TrimSpace(s) == "" {
		return "must not be blank"
	}
	return CheckIdentity(s)
}
