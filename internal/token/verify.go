package token

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tallyhq/tally/internal/usage"
)

// Reason says why a token is refused, in the contract's words (§5), so that
// a client can tell a token to re-mint from one that will never work.
type Reason string

// The reasons of the contract.
const (
	Malformed            Reason = "malformed"
	UnsupportedAlgorithm Reason = "unsupported_algorithm"
	BadSignature         Reason = "bad_signature"
	UnknownKey           Reason = "unknown_key"
	RevokedKey           Reason = "revoked_key"
	WrongAccount         Reason = "wrong_account"
	Expired              Reason = "expired"
	NotYetValid          Reason = "not_yet_valid"
	LifetimeTooLong      Reason = "lifetime_too_long"
	MissingIdentity      Reason = "missing_identity"
)

// Invalid is the error of a refused token. It is a separate type from a
// lookup failure so that the HTTP layer answers 401 with Reason for it and
// 5xx for anything else.
type Invalid struct {
	Reason Reason
	Detail string
}

// Error tells the reason and the detail.
func (e *Invalid) Error() string { return "invalid token: " + string(e.Reason) + ": " + e.Detail }

func invalid(r Reason, format string, args ...any) error {
	return &Invalid{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// ErrUnknownKey is what a key lookup returns (or wraps) when no key has the
// SID, so that Verify can tell "no such key" (a refusal) from a store that is
// down (a failure).
var ErrUnknownKey = errors.New("unknown key")

// Key is what Verify needs to know of the key named by a token's iss.
type Key struct {
	AccountSID string
	Secret     []byte
	Revoked    bool
}

// Claims are what a verified token says, for the caller to record
// authenticate events and answer the verify request.
type Claims struct {
	KeySID     string
	AccountSID string
	Grants     Grants
	// NotBefore is nbf, else iat, else the zero time: a token may carry
	// neither, and the caller then reports no start.
	NotBefore time.Time
	ExpiresAt time.Time
}

// Verify checks tok presented on accountSID's path at time now; lookup finds
// the key named by the token's iss. A refusal is an *Invalid; any other error
// is lookup's failure, wrapped.
//
// It accepts what Twilio's server libraries mint: alg HS256, HS384 or HS512
// (and nothing else, "none" least of all), any typ and cty, extra header
// members such as twilio-node's "twr", nbf or iat or neither, and NumericDates
// with fractions. It is strict about what matters: the signature, the key,
// the account, the times and the identity.
//
// The checks run in this order, so that nothing about a token's claims, nor
// about a key of another account, is revealed unless the token's signature
// holds:
//
//  1. shape: three base64url segments, JSON header and claims, an iss
//     (malformed);
//  2. alg (unsupported_algorithm);
//  3. the key named by iss (unknown_key);
//  4. the signature with that key's secret (bad_signature; but unknown_key
//     when the key belongs to another account, which this account must not
//     learn exists; an empty secret verifies nothing);
//  5. the account: the key's account is the path's, and sub, when present,
//     is the key's account (wrong_account: a token that its own key's
//     account signed for another account is no token of this one);
//  6. revocation (revoked_key), after the account so that a key of another
//     account never reveals its state;
//  7. exp present (malformed);
//  8. lifetime: more than 24 h from nbf (or iat) to exp, or with neither,
//     exp more than 24 h from now (lifetime_too_long), before the clock
//     checks because such a token was never acceptable: "expired" would tell
//     its minter to mint another like it;
//  9. exp more than 60 s past (expired), then nbf, or iat without nbf, more
//     than 60 s ahead (not_yet_valid);
//  10. grants.identity present and valid by §1 (missing_identity: a token
//     whose identity breaks §1 names no user that can be counted, and it
//     parsed, so it is not malformed).
func Verify(ctx context.Context, tok, accountSID string, now time.Time, lookup func(ctx context.Context, keySID string) (Key, error)) (Claims, error) {
	alg, err := checkHeader(tok)
	if err != nil {
		return Claims{}, err
	}
	// The token is parsed here rather than by golang-jwt's parser, which
	// decodes the header a second time and allocates a Token: on the verify
	// path that was a fifth of the server's time. golang-jwt still checks
	// the signature, and FuzzVerify holds every acceptance to its parser.
	last := strings.LastIndexByte(tok, '.')
	signed, sigSeg := tok[:last], tok[last+1:]
	claimsSeg := signed[strings.IndexByte(signed, '.')+1:]
	b, err := base64.RawURLEncoding.DecodeString(claimsSeg)
	if err != nil {
		return Claims{}, invalid(Malformed, "the claims are not base64url")
	}
	c, ok := scanClaims(string(b))
	if !ok {
		if err := json.Unmarshal(b, &c); err != nil {
			return Claims{}, invalid(Malformed, "the claims are not a JSON object of valid claims: %v", err)
		}
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigSeg)
	if err != nil {
		return Claims{}, invalid(Malformed, "the signature is not base64url")
	}
	if c.Issuer == "" {
		return Claims{}, invalid(Malformed, "no iss (the API key SID)")
	}
	key, err := lookup(ctx, c.Issuer)
	switch {
	case errors.Is(err, ErrUnknownKey):
		return Claims{}, invalid(UnknownKey, "no API key %s", c.Issuer)
	case err != nil:
		return Claims{}, fmt.Errorf("verify token: look up key %s: %w", c.Issuer, err)
	}
	// An empty secret verifies nothing: anyone can compute an HMAC with it.
	if len(key.Secret) == 0 || alg.Verify(signed, sig, key.Secret) != nil {
		if key.AccountSID != accountSID {
			return Claims{}, invalid(UnknownKey, "no API key %s", c.Issuer)
		}
		return Claims{}, invalid(BadSignature, "the signature does not verify with key %s", c.Issuer)
	}

	if key.AccountSID != accountSID {
		return Claims{}, invalid(WrongAccount, "key %s belongs to another account", c.Issuer)
	}
	if c.Sub != "" && c.Sub != key.AccountSID {
		return Claims{}, invalid(WrongAccount, "sub %s is not the account of key %s", c.Sub, c.Issuer)
	}
	if key.Revoked {
		return Claims{}, invalid(RevokedKey, "key %s is revoked", c.Issuer)
	}
	if c.Exp == nil {
		return Claims{}, invalid(Malformed, "no exp")
	}
	exp := c.Exp.t
	var start *numericDate
	switch {
	case c.NBF != nil:
		start = c.NBF
	case c.IAT != nil:
		start = c.IAT
	}
	if start != nil && exp.Sub(start.t) > MaxLifetime {
		return Claims{}, invalid(LifetimeTooLong, "more than 24 hours from %s to exp", startName(c))
	}
	if start == nil && exp.Sub(now) > MaxLifetime {
		return Claims{}, invalid(LifetimeTooLong, "no nbf nor iat, and exp is more than 24 hours away")
	}
	if now.Sub(exp) > Leeway {
		return Claims{}, invalid(Expired, "expired at %s", exp.Format(time.RFC3339))
	}
	if start != nil && start.t.Sub(now) > Leeway {
		return Claims{}, invalid(NotYetValid, "not valid before %s (%s)", start.t.Format(time.RFC3339), startName(c))
	}
	if c.Grants == nil || usage.CheckIdentity(c.Grants.Identity) != "" {
		return Claims{}, invalid(MissingIdentity, "grants.identity is missing or not a valid identity")
	}
	out := Claims{KeySID: c.Issuer, AccountSID: key.AccountSID, Grants: *c.Grants, ExpiresAt: exp}
	if start != nil {
		out.NotBefore = start.t
	}
	return out, nil
}

func startName(c claims) string {
	if c.NBF != nil {
		return "nbf"
	}
	return "iat"
}

// checkHeader checks the token's shape and header and returns the HMAC
// method its alg names, so that an algorithm other than HMAC is
// unsupported_algorithm. It reads the header into a map, as golang-jwt does,
// so that both agree on "alg" (JSON keys match exactly here, not
// case-insensitively as with a struct).
func checkHeader(tok string) (*jwt.SigningMethodHMAC, error) {
	if strings.Count(tok, ".") != 2 {
		return nil, invalid(Malformed, "a token is three base64url segments joined by dots")
	}
	seg, _, _ := strings.Cut(tok, ".")
	if alg, ok := knownHeaders.Load(seg); ok {
		return alg.(*jwt.SigningMethodHMAC), nil
	}
	alg, err := readHeader(seg)
	if err == nil && knownHeaders.n.Add(1) <= maxKnownHeaders {
		knownHeaders.Store(seg, alg)
	}
	return alg, err
}

// knownHeaders remembers the method of header segments that passed
// readHeader. A platform's library writes the same header into every
// token, and decoding it into a map was a tenth of a verification. The
// verdict depends on the segment alone; the bound keeps made-up headers
// from growing the map.
var knownHeaders struct {
	sync.Map // header segment → *jwt.SigningMethodHMAC
	n        atomic.Int64
}

const maxKnownHeaders = 256

func readHeader(seg string) (*jwt.SigningMethodHMAC, error) {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return nil, invalid(Malformed, "the header is not base64url")
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil || h == nil {
		return nil, invalid(Malformed, "the header is not a JSON object")
	}
	var alg *jwt.SigningMethodHMAC
	switch h["alg"] {
	case "HS256":
		alg = jwt.SigningMethodHS256
	case "HS384":
		alg = jwt.SigningMethodHS384
	case "HS512":
		alg = jwt.SigningMethodHS512
	default:
		return nil, invalid(UnsupportedAlgorithm, "alg %v: only HS256, HS384 and HS512 are accepted", h["alg"])
	}
	if _, ok := h["crit"]; ok {
		// RFC 7515 §4.1.11: extensions that must be understood, and no
		// Twilio library uses any.
		return nil, invalid(Malformed, "the header names critical extensions (crit), none of which is supported")
	}
	return alg, nil
}
