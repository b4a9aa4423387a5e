package token

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
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

// DefaultService is the service a chat grant without service_sid counts its
// user in: twilio-node lets a chat grant omit it, meaning the
// Conversations default service of the account (§5).
const DefaultService = "default"

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

// SigningKey is the API key named by a token's iss, as Verify needs it: its
// account, its secret in clear (the HMAC key a token is signed with) and
// whether it is revoked. The caller looks it up (Verify's lookup), so that
// this package knows nothing of where keys are stored or cached.
type SigningKey struct {
	AccountSID string
	Secret     []byte
	Revoked    bool
}

// Claims are what a verified token says, for the caller to record
// authenticate events and answer the verify request.
type Claims struct {
	KeySID     string
	AccountSID string
	// Grants are the token's; a chat grant without service_sid reads as
	// DefaultService.
	Grants Grants
	// NotBefore is nbf, else iat, else the zero time: a token may carry
	// neither, and the caller then reports no start.
	NotBefore time.Time
	ExpiresAt time.Time

	// canonical is the token re-encoded from its decoded segments: what
	// EventID hashes.
	canonical string
}

// EventID is the idempotency id of the authenticate event recorded for one
// grant ("chat" or "data_sync") of the verified token. It hashes the whole
// token rather than using the jti, because a jti is not unique: two tokens
// of one key minted in the same second share it. It hashes the token
// re-encoded from its decoded header, claims and signature, so that it
// depends on what the token says and not on how it is spelled (§5); for the
// canonical spelling, the only one Verify accepts, that is the token itself,
// so the ids of events recorded before strict decoding are unchanged. The id
// is "auth-" and 64 hex digits (69 bytes), well under the 128-byte limit on
// event ids; the NUL keeps token and grant apart, as neither holds one.
func (c Claims) EventID(grant string) string {
	h := sha256.New()
	h.Write([]byte(c.canonical))
	h.Write([]byte{0})
	h.Write([]byte(grant))
	return "auth-" + hex.EncodeToString(h.Sum(nil))
}

// hmacAlgs are the algorithms Twilio's server libraries sign with.
var hmacAlgs = []string{"HS256", "HS384", "HS512"}

// Verify checks tok presented on accountSID's path at time now; lookup finds
// the key named by the token's iss. A refusal is an *Invalid; any other error
// is lookup's failure, wrapped.
//
// It accepts what Twilio's server libraries mint: alg HS256, HS384 or HS512
// (and nothing else, "none" least of all), any typ and cty, extra header
// members such as twilio-node's "twr", nbf or iat or neither, NumericDates
// with fractions, and a chat grant without service_sid. It is strict about
// what matters: the spelling, the signature, the key, the account, the times
// and the identity.
//
// The token is parsed and its signature checked by golang-jwt's Parser,
// limited to the HMAC algorithms and decoding strictly; the contract's time
// rules (iat standing in for nbf, the 24-hour lifetime, leeway inclusive at
// exactly 60 s, one reason per refusal) are not golang-jwt's validator's,
// so they are checked here. The checks run in this order, so that nothing
// about a token's claims, nor about a key of another account, is revealed
// unless the token's signature holds:
//
//  1. shape: exactly three segments of the base64url alphabet, each decoded
//     strictly as RFC 7515 requires (no padding, no white space, no line
//     breaks, unused bits zero: one spelling per token), a JSON object as
//     header, JSON claims of the right types (malformed);
//  2. alg (unsupported_algorithm);
//  3. no crit header, an iss (malformed);
//  4. the key named by iss (unknown_key);
//  5. the signature with that key's secret (bad_signature; but unknown_key
//     when the key belongs to another account, which this account must not
//     learn exists; an empty secret verifies nothing);
//  6. the account: the key's account is the path's, and sub, when present,
//     is the key's account (wrong_account: a token that its own key's
//     account signed for another account is no token of this one);
//  7. revocation (revoked_key), after the account so that a key of another
//     account never reveals its state;
//  8. exp present (malformed);
//  9. lifetime: more than 24 h from nbf (or iat) to exp, or with neither,
//     exp more than 24 h from now (lifetime_too_long), before the clock
//     checks because such a token was never acceptable: "expired" would tell
//     its minter to mint another like it;
//  10. exp more than 60 s past (expired), then nbf, or iat without nbf, more
//     than 60 s ahead (not_yet_valid);
//  11. grants.identity present and valid by §1 (missing_identity: a token
//     whose identity breaks §1 names no user that can be counted, and it
//     parsed, so it is not malformed).
func Verify(ctx context.Context, tok, accountSID string, now time.Time, lookup func(ctx context.Context, keySID string) (SigningKey, error)) (Claims, error) {
	if err := checkAlphabet(tok); err != nil {
		return Claims{}, err
	}
	p := jwt.NewParser(jwt.WithValidMethods(hmacAlgs), jwt.WithStrictDecoding(), jwt.WithoutClaimsValidation())
	var (
		c      claims
		key    SigningKey
		keyRan bool // the header and claims parsed and alg is HMAC
	)
	t, err := p.ParseWithClaims(tok, &c, func(t *jwt.Token) (any, error) {
		keyRan = true
		if _, ok := t.Header["crit"]; ok {
			// RFC 7515 §4.1.11: extensions that must be understood, and no
			// Twilio library uses any.
			return nil, invalid(Malformed, "the header names critical extensions (crit), none of which is supported")
		}
		if c.Issuer == "" {
			return nil, invalid(Malformed, "no iss (the API key SID)")
		}
		k, err := lookup(ctx, c.Issuer)
		switch {
		case errors.Is(err, ErrUnknownKey):
			return nil, invalid(UnknownKey, "no API key %s", c.Issuer)
		case err != nil:
			return nil, fmt.Errorf("look up key %s: %w", c.Issuer, err)
		}
		key = k
		if len(key.Secret) == 0 {
			// Anyone can compute an HMAC with an empty secret.
			return nil, badSignature(c.Issuer, key, accountSID)
		}
		return key.Secret, nil
	})
	if err != nil {
		var inv *Invalid
		switch {
		case errors.As(err, &inv):
			return Claims{}, inv
		case errors.Is(err, jwt.ErrTokenMalformed), t == nil, t.Header == nil:
			return Claims{}, invalid(Malformed, "%v", err)
		case !keyRan:
			// Parsed, but alg is missing, not a string, unknown to
			// golang-jwt, or not one of hmacAlgs.
			return Claims{}, invalid(UnsupportedAlgorithm, "alg %v: only HS256, HS384 and HS512 are accepted", t.Header["alg"])
		case errors.Is(err, jwt.ErrTokenSignatureInvalid):
			return Claims{}, badSignature(c.Issuer, key, accountSID)
		}
		return Claims{}, fmt.Errorf("verify token: %w", err)
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
	if err := checkTimes(c, now); err != nil {
		return Claims{}, err
	}
	if c.Grants == nil || usage.CheckIdentity(c.Grants.Identity) != "" {
		return Claims{}, invalid(MissingIdentity, "grants.identity is missing or not a valid identity")
	}
	if ch := c.Grants.Chat; ch != nil && ch.ServiceSID == "" {
		ch.ServiceSID = DefaultService
	}
	canonical, err := reencode(p, tok)
	if err != nil {
		return Claims{}, err
	}
	out := Claims{KeySID: c.Issuer, AccountSID: key.AccountSID, Grants: *c.Grants, ExpiresAt: c.Exp.t, canonical: canonical}
	if start := c.start(); start != nil {
		out.NotBefore = start.t
	}
	return out, nil
}

// checkAlphabet refuses any byte outside the base64url alphabet and the
// two dots. Go's base64 decoders skip CR and LF even when strict, so
// without it a line break anywhere, or a trailing newline, would be another
// spelling of the same token; RFC 7515 §2 allows none. Surrounding white
// space is refused too: a token is exactly its characters.
func checkAlphabet(tok string) error {
	for i := 0; i < len(tok); i++ {
		switch b := tok[i]; {
		case 'A' <= b && b <= 'Z', 'a' <= b && b <= 'z', '0' <= b && b <= '9', b == '-', b == '_', b == '.':
		default:
			return invalid(Malformed, "byte %q at offset %d: a token is three base64url segments (RFC 7515, no padding) joined by dots", b, i)
		}
	}
	return nil
}

// badSignature refuses a token whose signature does not hold: unknown_key
// when the key belongs to another account, which this one must not learn.
func badSignature(iss string, key SigningKey, accountSID string) error {
	if key.AccountSID != accountSID {
		return invalid(UnknownKey, "no API key %s", iss)
	}
	return invalid(BadSignature, "the signature does not verify with key %s", iss)
}

// start is nbf, else iat, else nil: what the lifetime and not_yet_valid
// are measured from.
func (c claims) start() *numericDate {
	if c.NBF != nil {
		return c.NBF
	}
	return c.IAT
}

// checkTimes applies §5's time rules to the claims of a token whose
// signature holds. The leeway is inclusive: a token 60 s past its exp, or
// 60 s before its nbf, is valid; 24 h exactly from start to exp is valid.
func checkTimes(c claims, now time.Time) error {
	if c.Exp == nil {
		return invalid(Malformed, "no exp")
	}
	exp := c.Exp.t
	start := c.start()
	name := "iat"
	if c.NBF != nil {
		name = "nbf"
	}
	if start != nil && exp.Sub(start.t) > MaxLifetime {
		return invalid(LifetimeTooLong, "more than 24 hours from %s to exp", name)
	}
	if start == nil && exp.Sub(now) > MaxLifetime {
		return invalid(LifetimeTooLong, "no nbf nor iat, and exp is more than 24 hours away")
	}
	if now.Sub(exp) > Leeway {
		return invalid(Expired, "expired at %s", exp.Format(time.RFC3339))
	}
	if start != nil && start.t.Sub(now) > Leeway {
		return invalid(NotYetValid, "not valid before %s (%s)", start.t.Format(time.RFC3339), name)
	}
	return nil
}

// reencode is tok decoded segment by segment and encoded again, the form
// EventID hashes. Verify has parsed tok already, so no segment fails here.
func reencode(p *jwt.Parser, tok string) (string, error) {
	segs := strings.Split(tok, ".")
	for i, s := range segs {
		b, err := p.DecodeSegment(s)
		if err != nil {
			return "", invalid(Malformed, "segment %d: %v", i, err)
		}
		segs[i] = base64.RawURLEncoding.EncodeToString(b)
	}
	return strings.Join(segs, "."), nil
}
