// Package token mints and verifies access tokens in the Twilio access-token
// format (a JWT with a "grants" claim), so that tokens minted by Twilio's
// server libraries with a tally key verify here and tokens minted here
// decode in those libraries.
package token

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tallyhq/tally/internal/usage"
)

// Limits of the contract (§5): Twilio's own TTL bounds, the longest lifetime
// accepted on verification, and the leeway for clock skew.
const (
	MinTTL      = 180 * time.Second
	MaxTTL      = 86400 * time.Second
	DefaultTTL  = 3600 * time.Second
	MaxLifetime = 24 * time.Hour
	Leeway      = 60 * time.Second
)

// Grants is the "grants" claim.
type Grants struct {
	Identity string     `json:"identity"`
	Chat     *ChatGrant `json:"chat,omitempty"`
	Sync     *SyncGrant `json:"data_sync,omitempty"`
}

// ChatGrant gives access to a Conversations/Chat service.
type ChatGrant struct {
	ServiceSID        string `json:"service_sid"`
	EndpointID        string `json:"endpoint_id,omitempty"`
	DeploymentRoleSID string `json:"deployment_role_sid,omitempty"`
	PushCredentialSID string `json:"push_credential_sid,omitempty"`
}

// SyncGrant gives access to a Sync service (Twilio's key: data_sync).
type SyncGrant struct {
	ServiceSID string `json:"service_sid"`
	EndpointID string `json:"endpoint_id,omitempty"`
}

// claims are a token's claims as minted here; verification reads them more
// liberally (nbf or iat may be missing).
type claims struct {
	JTI    string  `json:"jti,omitempty"`
	Issuer string  `json:"iss"`
	Sub    string  `json:"sub"`
	NBF    *int64  `json:"nbf,omitempty"`
	IAT    *int64  `json:"iat,omitempty"`
	Exp    *int64  `json:"exp,omitempty"`
	Grants *Grants `json:"grants,omitempty"`
}

// The claims type satisfies jwt.Claims only so that golang-jwt can check
// the signature; the time rules are checked here, with the contract's
// reasons.
func (c *claims) GetExpirationTime() (*jwt.NumericDate, error) { return nil, nil }
func (c *claims) GetIssuedAt() (*jwt.NumericDate, error)       { return nil, nil }
func (c *claims) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (c *claims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c *claims) GetSubject() (string, error)                  { return c.Sub, nil }
func (c *claims) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

// CheckGrants validates what a token is minted for: an identity of §1 and
// at least one grant, each with a valid service SID.
func CheckGrants(g Grants) error {
	var errs []usage.FieldError
	add := func(field, msg string) { errs = append(errs, usage.FieldError{Index: -1, Field: field, Message: msg}) }
	if msg := usage.CheckIdentity(g.Identity); msg != "" {
		add("identity", msg)
	}
	if g.Chat == nil && g.Sync == nil {
		add("grants", "at least one grant (chat or sync) is required")
	}
	if g.Chat != nil {
		if msg := usage.CheckServiceSID(g.Chat.ServiceSID); msg != "" {
			add("grants.chat.service_sid", msg)
		}
		if len(g.Chat.EndpointID) > usage.MaxOptionalBytes {
			add("grants.chat.endpoint_id", "must be at most 256 bytes")
		}
	}
	if g.Sync != nil {
		if msg := usage.CheckServiceSID(g.Sync.ServiceSID); msg != "" {
			add("grants.sync.service_sid", msg)
		}
		if len(g.Sync.EndpointID) > usage.MaxOptionalBytes {
			add("grants.sync.endpoint_id", "must be at most 256 bytes")
		}
	}
	if len(errs) > 0 {
		return &usage.ValidationError{Errors: errs}
	}
	return nil
}

// CheckTTL validates a requested lifetime (Twilio's bounds, 180–86400 s).
func CheckTTL(ttl time.Duration) error {
	if ttl < MinTTL || ttl > MaxTTL {
		return usage.Invalid("ttl", "must be from 180 to 86400 seconds")
	}
	return nil
}

// Mint signs a token for the grants with an API key's secret (HS256), with
// the header and claims of Twilio's libraries: jti "{key}-{nbf}", iss the
// key, sub the account, nbf now, exp nbf+ttl.
func Mint(accountSID, keySID string, secret []byte, g Grants, now time.Time, ttl time.Duration) (tok string, notBefore, expiresAt time.Time, err error) {
	if err := CheckGrants(g); err != nil {
		return "", time.Time{}, time.Time{}, err
	}
	if err := CheckTTL(ttl); err != nil {
		return "", time.Time{}, time.Time{}, err
	}
	if len(secret) == 0 {
		return "", time.Time{}, time.Time{}, errors.New("mint: empty signing secret")
	}
	nbf := now.Unix()
	exp := nbf + int64(ttl/time.Second)
	c := &claims{JTI: keySID + "-" + strconv.FormatInt(nbf, 10), Issuer: keySID, Sub: accountSID,
		NBF: &nbf, Exp: &exp, Grants: &g}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	t.Header["cty"] = "twilio-fpa;v=1"
	s, err := t.SignedString(secret)
	if err != nil {
		return "", time.Time{}, time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return s, time.Unix(nbf, 0).UTC(), time.Unix(exp, 0).UTC(), nil
}

// Reason says why a token is refused (§5).
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

// Invalid is the error of a refused token.
type Invalid struct {
	Reason Reason
	Detail string
}

func (e *Invalid) Error() string { return "invalid token: " + string(e.Reason) + ": " + e.Detail }

func invalid(r Reason, format string, args ...any) error {
	return &Invalid{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// ErrUnknownKey is what a key lookup returns when no key has the SID.
var ErrUnknownKey = errors.New("unknown key")

// Key is what verification needs of the key named by a token's iss.
type Key struct {
	AccountSID string
	Secret     []byte
	Revoked    bool
}

// Claims are what a verified token says.
type Claims struct {
	KeySID     string
	AccountSID string
	Grants     Grants
	NotBefore  time.Time // nbf, else iat, else zero
	ExpiresAt  time.Time
}

// Verify checks a token presented on accountSID's path at time now. The
// checks run in this order, so that nothing about a token's claims is
// revealed unless its signature holds: shape and header (malformed,
// unsupported_algorithm), the key named by iss (unknown_key,
// wrong_account), the signature (bad_signature), revocation (revoked_key),
// then the claims: exp present (malformed), lifetime (lifetime_too_long),
// expiry and start with 60 s leeway (expired, not_yet_valid), identity
// (missing_identity: absent, empty or not a valid identity).
func Verify(ctx context.Context, tok, accountSID string, now time.Time, lookup func(context.Context, string) (Key, error)) (Claims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return Claims{}, invalid(Malformed, "a token has three base64url segments")
	}
	var header struct {
		Alg string `json:"alg"`
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &header) != nil {
		return Claims{}, invalid(Malformed, "the header is not base64url JSON")
	}
	switch header.Alg {
	case "HS256", "HS384", "HS512":
	default:
		return Claims{}, invalid(UnsupportedAlgorithm, "alg %q: only HS256, HS384 and HS512 are accepted", header.Alg)
	}
	var c claims
	cb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(cb, &c) != nil {
		return Claims{}, invalid(Malformed, "the claims are not base64url JSON")
	}
	if c.Issuer == "" {
		return Claims{}, invalid(Malformed, "no iss (the API key SID)")
	}
	key, err := lookup(ctx, c.Issuer)
	if errors.Is(err, ErrUnknownKey) {
		return Claims{}, invalid(UnknownKey, "no API key %s", c.Issuer)
	}
	if err != nil {
		return Claims{}, fmt.Errorf("look up key %s: %w", c.Issuer, err)
	}
	if key.AccountSID != accountSID {
		return Claims{}, invalid(WrongAccount, "key %s belongs to another account", c.Issuer)
	}
	if len(key.Secret) == 0 {
		return Claims{}, invalid(BadSignature, "the key has no secret")
	}
	_, err = jwt.NewParser(jwt.WithValidMethods([]string{"HS256", "HS384", "HS512"}), jwt.WithoutClaimsValidation()).
		ParseWithClaims(tok, &claims{}, func(*jwt.Token) (any, error) { return key.Secret, nil })
	if err != nil {
		return Claims{}, invalid(BadSignature, "the signature does not verify with key %s", c.Issuer)
	}
	if key.Revoked {
		return Claims{}, invalid(RevokedKey, "key %s is revoked", c.Issuer)
	}
	if c.Sub != "" && c.Sub != accountSID {
		return Claims{}, invalid(WrongAccount, "sub names another account")
	}
	if c.Exp == nil {
		return Claims{}, invalid(Malformed, "no exp")
	}
	exp := time.Unix(*c.Exp, 0)
	var start *int64
	switch {
	case c.NBF != nil:
		start = c.NBF
	case c.IAT != nil:
		start = c.IAT
	}
	var notBefore time.Time
	if start != nil {
		notBefore = time.Unix(*start, 0)
		if exp.Sub(notBefore) > MaxLifetime {
			return Claims{}, invalid(LifetimeTooLong, "more than 24 hours between nbf/iat and exp")
		}
	} else if exp.Sub(now) > MaxLifetime {
		return Claims{}, invalid(LifetimeTooLong, "exp is more than 24 hours away")
	}
	if now.Sub(exp) > Leeway {
		return Claims{}, invalid(Expired, "expired at %s", exp.UTC().Format(time.RFC3339))
	}
	if c.NBF != nil && notBefore.Sub(now) > Leeway {
		return Claims{}, invalid(NotYetValid, "not valid before %s", notBefore.UTC().Format(time.RFC3339))
	}
	if c.NBF == nil && c.IAT != nil && notBefore.Sub(now) > Leeway {
		return Claims{}, invalid(NotYetValid, "issued in the future, at %s", notBefore.UTC().Format(time.RFC3339))
	}
	if c.Grants == nil || usage.CheckIdentity(c.Grants.Identity) != "" {
		return Claims{}, invalid(MissingIdentity, "grants.identity is missing or not a valid identity")
	}
	out := Claims{KeySID: c.Issuer, AccountSID: accountSID, Grants: *c.Grants, ExpiresAt: exp.UTC()}
	if start != nil {
		out.NotBefore = notBefore.UTC()
	}
	return out, nil
}

// EventID is the id of the authenticate event recorded when tok is verified
// for one grant ("chat" or "data_sync"): a hash of the whole token and the
// grant. A jti is not unique (two tokens minted in the same second share
// it); the token is, so verifying it again records nothing new.
func EventID(tok, grant string) string {
	h := sha256.New()
	h.Write([]byte(tok))
	h.Write([]byte{0})
	h.Write([]byte(grant))
	return "auth-" + hex.EncodeToString(h.Sum(nil))
}
