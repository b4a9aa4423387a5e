package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/secrets"
	"github.com/tallyhq/tally/internal/usage"
)

// keyCache verifies API key credentials without a database round trip and a
// decryption on every request. An entry is trusted for at most ttl; after
// that the key is loaded again, so a key revoked on any replica stops
// working everywhere within ttl (the contract allows 5 s).
type keyCache struct {
	store *postgres.Store
	box   *secrets.Box
	now   func() time.Time
	ttl   time.Duration

	mu      sync.RWMutex
	entries map[string]keyEntry
	group   singleflight.Group
}

type keyEntry struct {
	principal  usage.Principal
	revoked    bool
	secretHash [sha256.Size]byte // compared in constant time with the presented secret's
	// secret signs and verifies access tokens (HMAC needs it in clear); it
	// lives only in memory and for at most the ttl.
	secret   []byte
	loadedAt time.Time
}

// newKeyCache measures entry age on the wall clock's monotonic reading, not
// on the service's injectable clock: the ttl is about real elapsed time.
func newKeyCache(store *postgres.Store, box *secrets.Box, ttl time.Duration) *keyCache {
	return &keyCache{store: store, box: box, now: time.Now, ttl: ttl, entries: make(map[string]keyEntry)}
}

// Authenticate returns the principal of a key SID and secret, or an error
// of kind usage.ErrUnauthorized (unknown, wrong or revoked) or
// usage.ErrUnavailable (the database cannot be asked).
func (c *keyCache) Authenticate(ctx context.Context, keySID, secret string) (usage.Principal, error) {
	if !usage.IsKeySID(keySID) {
		return usage.Principal{}, fmt.Errorf("key %q: %w", keySID, usage.ErrUnauthorized)
	}
	e, err := c.entry(ctx, keySID)
	if err != nil {
		return usage.Principal{}, err
	}
	h := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(h[:], e.secretHash[:]) != 1 {
		return usage.Principal{}, fmt.Errorf("key %s: wrong secret: %w", keySID, usage.ErrUnauthorized)
	}
	if e.revoked {
		return usage.Principal{}, fmt.Errorf("key %s: revoked: %w", keySID, usage.ErrUnauthorized)
	}
	return e.principal, nil
}

// entry returns the cached state of a key, loading it when absent or older
// than the ttl.
func (c *keyCache) entry(ctx context.Context, keySID string) (keyEntry, error) {
	c.mu.RLock()
	e, ok := c.entries[keySID]
	c.mu.RUnlock()
	if ok && c.now().Sub(e.loadedAt) < c.ttl {
		return e, nil
	}
	// One load per key at a time, however many requests arrive at expiry.
	v, err, _ := c.group.Do(keySID, func() (any, error) {
		rec, err := c.store.KeyForAuth(ctx, keySID)
		if errors.Is(err, usage.ErrNotFound) {
			c.forget(keySID)
			return keyEntry{}, fmt.Errorf("key %s: %w", keySID, usage.ErrUnauthorized)
		}
		if err != nil {
			return keyEntry{}, err
		}
		secret, err := c.box.Open(rec.Sealed, keySID)
		if err != nil {
			return keyEntry{}, fmt.Errorf("key %s: %w", keySID, err)
		}
		e := keyEntry{principal: rec.Principal, revoked: rec.Revoked,
			secretHash: sha256.Sum256([]byte(secret)), secret: []byte(secret), loadedAt: c.now()}
		c.mu.Lock()
		c.entries[keySID] = e
		c.mu.Unlock()
		return e, nil
	})
	if err != nil {
		return keyEntry{}, err
	}
	return v.(keyEntry), nil
}

// forget drops a key from the cache, for revocation on this replica.
func (c *keyCache) forget(keySID string) {
	c.mu.Lock()
	delete(c.entries, keySID)
	c.mu.Unlock()
}
