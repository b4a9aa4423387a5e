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

// maxMissingKeys bounds the cache of key SIDs the database does not hold, so
// a client spraying random SIDs costs memory only up to here.
const maxMissingKeys = 10_000

// dummyContext seals the stand-in secret that unknown keys are checked
// against; no key SID has this form.
const dummyContext = "tally.unknown-key"

// keyCache verifies API key credentials without a database round trip and a
// decryption on every request. An entry is trusted for at most ttl; after
// that the key is loaded again, so a key revoked on any replica stops
// working everywhere within ttl (the contract allows 5 s).
//
// Unknown key SIDs are cached too, for the same ttl, so that they do not
// cost a query per request; and refusing one does the same work as refusing
// a wrong secret (a decryption when loaded, a hash and a constant-time
// compare on every request), so that the time of a refusal does not tell
// whether a key exists.
type keyCache struct {
	store *postgres.Store
	box   *secrets.Box
	now   func() time.Time
	ttl   time.Duration
	dummy []byte // a sealed stand-in secret, opened when a key is not found

	mu      sync.RWMutex
	entries map[string]cachedKey
	missing map[string]cachedKey // key SIDs the database does not hold
	group   singleflight.Group
}

// cachedKey is the cache's entry for one key SID: the key as loaded
// (postgres.SealedKey) with its secret opened, or a stand-in for a SID the
// database does not hold, and when it was loaded. Basic auth compares
// against secretHash; token minting and verification sign with secret
// (lookupKey turns it into a token.SigningKey).
type cachedKey struct {
	principal  usage.Principal
	revoked    bool
	unknown    bool              // no such key: secretHash is a stand-in nothing matches
	secretHash [sha256.Size]byte // compared in constant time with the presented secret's
	// secret signs and verifies access tokens (HMAC needs it in clear); it
	// lives only in memory and for at most the ttl.
	secret   []byte
	loadedAt time.Time
}

// newKeyCache measures entry age on the wall clock's monotonic reading, not
// on the service's injectable clock: the ttl is about real elapsed time.
func newKeyCache(store *postgres.Store, box *secrets.Box, ttl time.Duration) *keyCache {
	c := &keyCache{store: store, box: box, now: time.Now, ttl: ttl,
		entries: make(map[string]cachedKey), missing: make(map[string]cachedKey)}
	if box != nil { // nil only in tests that never authenticate
		c.dummy = box.Seal(usage.NewSecret(), dummyContext)
	}
	return c
}

// Authenticate returns the principal of a key SID and secret, or an error
// of kind usage.ErrUnauthorized (unknown, wrong or revoked) or
// usage.ErrUnavailable (the database cannot be asked).
func (c *keyCache) Authenticate(ctx context.Context, keySID, secret string) (usage.Principal, error) {
	if !usage.IsKeySID(keySID) {
		return usage.Principal{}, fmt.Errorf("key %q: %w", keySID, usage.ErrUnauthorized)
	}
	e, err := c.lookup(ctx, keySID)
	if err != nil {
		return usage.Principal{}, err
	}
	// Every key, known or not, is compared: the same work either way.
	h := sha256.Sum256([]byte(secret))
	match := subtle.ConstantTimeCompare(h[:], e.secretHash[:]) == 1
	switch {
	case e.unknown:
		return usage.Principal{}, fmt.Errorf("key %s: %w", keySID, usage.ErrUnauthorized)
	case !match:
		return usage.Principal{}, fmt.Errorf("key %s: wrong secret: %w", keySID, usage.ErrUnauthorized)
	case e.revoked:
		return usage.Principal{}, fmt.Errorf("key %s: revoked: %w", keySID, usage.ErrUnauthorized)
	}
	return e.principal, nil
}

// entry returns the cached state of a key, loading it when absent or older
// than the ttl; an unknown key is an error of kind usage.ErrUnauthorized.
func (c *keyCache) entry(ctx context.Context, keySID string) (cachedKey, error) {
	e, err := c.lookup(ctx, keySID)
	if err == nil && e.unknown {
		return cachedKey{}, fmt.Errorf("key %s: %w", keySID, usage.ErrUnauthorized)
	}
	return e, err
}

// lookup returns the cached state of a key, known or not, loading it when
// absent or older than the ttl.
func (c *keyCache) lookup(ctx context.Context, keySID string) (cachedKey, error) {
	now := c.now()
	c.mu.RLock()
	e, ok := c.entries[keySID]
	if !ok {
		e, ok = c.missing[keySID]
	}
	c.mu.RUnlock()
	if ok && now.Sub(e.loadedAt) < c.ttl {
		return e, nil
	}
	// One load per key at a time, however many requests arrive at expiry.
	v, err, _ := c.group.Do(keySID, func() (any, error) {
		rec, err := c.store.KeyForAuth(ctx, keySID)
		if errors.Is(err, usage.ErrNotFound) {
			return c.rememberMissing(keySID), nil
		}
		if err != nil {
			return cachedKey{}, err
		}
		secret, err := c.box.Open(rec.Sealed, keySID)
		if err != nil {
			return cachedKey{}, fmt.Errorf("key %s: %w", keySID, err)
		}
		e := cachedKey{principal: rec.Principal, revoked: rec.Revoked,
			secretHash: sha256.Sum256([]byte(secret)), secret: []byte(secret), loadedAt: c.now()}
		c.mu.Lock()
		c.entries[keySID] = e
		delete(c.missing, keySID)
		c.mu.Unlock()
		return e, nil
	})
	if err != nil {
		return cachedKey{}, err
	}
	return v.(cachedKey), nil
}

// rememberMissing caches that a key SID is unknown, after opening the
// stand-in secret as a found key's secret is opened.
func (c *keyCache) rememberMissing(keySID string) cachedKey {
	var secret string
	if c.box != nil {
		secret, _ = c.box.Open(c.dummy, dummyContext)
	}
	e := cachedKey{unknown: true, secretHash: sha256.Sum256([]byte(secret + keySID)), loadedAt: c.now()}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, keySID)
	if len(c.missing) >= maxMissingKeys {
		// Expired entries go first; if a spray of SIDs filled the cache
		// within one ttl, a tenth of it goes, whichever (those SIDs are
		// asked of the database again).
		for sid, old := range c.missing {
			if e.loadedAt.Sub(old.loadedAt) >= c.ttl {
				delete(c.missing, sid)
			}
		}
		for sid := range c.missing {
			if len(c.missing) < maxMissingKeys*9/10 {
				break
			}
			delete(c.missing, sid)
		}
	}
	c.missing[keySID] = e
	return e
}

// forget drops a key from the cache, for revocation on this replica.
func (c *keyCache) forget(keySID string) {
	c.mu.Lock()
	delete(c.entries, keySID)
	delete(c.missing, keySID)
	c.mu.Unlock()
}
