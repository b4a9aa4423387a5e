// Package secrets seals API key secrets at rest with AES-256-GCM under the
// deployment's master key.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of a master key in bytes.
const KeySize = 32

// version prefixes every sealed value so the format can change later.
const version = 1

// Box seals secrets under the current master key and opens them under the
// current or a previous one, so a master key can be rotated without
// downtime: deploy with the new key and the old one as previous, rewrap the
// stored secrets (tally keys rewrap), then drop the old key.
type Box struct {
	aead     cipher.AEAD
	previous []cipher.AEAD
}

// ParseMasterKey decodes a base64 (standard or URL, padded or not) master key
// and checks that it is 32 bytes.
func ParseMasterKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("master key is empty")
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("master key is %d bytes, want %d", len(k), KeySize)
			}
			return k, nil
		}
	}
	return nil, errors.New("master key is not base64")
}

// NewMasterKey returns a fresh random master key, base64-encoded.
func NewMasterKey() string {
	k := make([]byte, KeySize)
	rand.Read(k)
	return base64.StdEncoding.EncodeToString(k)
}

// NewBox returns a Box for a 32-byte master key, also opening what any of
// the previous keys sealed.
func NewBox(key []byte, previous ...[]byte) (*Box, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	b := &Box{aead: aead}
	for _, k := range previous {
		a, err := newAEAD(k)
		if err != nil {
			return nil, fmt.Errorf("previous %w", err)
		}
		b.previous = append(b.previous, a)
	}
	return b, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("master key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("new cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("new gcm: %w", err)
	}
	return aead, nil
}

// Seal encrypts plaintext bound to context (the key SID), so a sealed secret
// copied onto another key's row does not open.
func (b *Box) Seal(plaintext, context string) []byte {
	nonce := make([]byte, b.aead.NonceSize(), 1+b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	rand.Read(nonce)
	out := append([]byte{version}, nonce...)
	return b.aead.Seal(out, nonce, []byte(plaintext), []byte(context))
}

// Open decrypts what Seal returned for the same context.
func (b *Box) Open(sealed []byte, context string) (string, error) {
	n := b.aead.NonceSize()
	if len(sealed) < 1+n+b.aead.Overhead() || sealed[0] != version {
		return "", errors.New("open secret: malformed sealed value")
	}
	pt, err := b.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(context))
	for _, a := range b.previous {
		if err == nil {
			break
		}
		pt, err = a.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(context))
	}
	if err != nil {
		return "", fmt.Errorf("open secret: %w", err)
	}
	return string(pt), nil
}

// Rewrap returns sealed re-sealed under the current master key.
func (b *Box) Rewrap(sealed []byte, context string) ([]byte, error) {
	pt, err := b.Open(sealed, context)
	if err != nil {
		return nil, err
	}
	return b.Seal(pt, context), nil
}
