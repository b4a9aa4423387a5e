package token

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tallyhq/tally/internal/usage"
)

// CheckTTL validates a requested token lifetime against Twilio's bounds
// (180–86400 s, whole seconds, since nbf and exp are whole seconds). It
// returns a *usage.ValidationError, so the HTTP layer answers 422.
func CheckTTL(ttl time.Duration) error {
	if ttl < MinTTL || ttl > MaxTTL {
		return usage.Invalid("ttl", "must be from 180 to 86400 seconds")
	}
	if ttl%time.Second != 0 {
		return usage.Invalid("ttl", "must be a whole number of seconds")
	}
	return nil
}

// Mint signs a token for g with an API key's secret, in exactly the shape
// Twilio's libraries mint (§5): header {"alg":"HS256","typ":"JWT",
// "cty":"twilio-fpa;v=1"}, claims jti "{keySID}-{nbf}", iss keySID, sub
// accountSID, nbf now (whole seconds), exp nbf+ttl and grants. It returns the
// token with its nbf and exp in UTC.
//
// A bad identity, no grant, a bad service SID or a TTL out of bounds is the
// caller's mistake and comes back as a *usage.ValidationError; malformed SIDs
// or an empty secret are the program's and come back as plain errors, since a
// token that no lookup can verify must never be handed out.
func Mint(accountSID, keySID string, secret []byte, g Grants, now time.Time, ttl time.Duration) (tok string, notBefore, expiresAt time.Time, err error) {
	if err := CheckGrants(g); err != nil {
		return "", time.Time{}, time.Time{}, fmt.Errorf("mint token: %w", err)
	}
	if err := CheckTTL(ttl); err != nil {
		return "", time.Time{}, time.Time{}, fmt.Errorf("mint token: %w", err)
	}
	if !usage.IsAccountSID(accountSID) || !usage.IsKeySID(keySID) {
		return "", time.Time{}, time.Time{}, fmt.Errorf("mint token for account %q with key %q: malformed SID", accountSID, keySID)
	}
	if len(secret) == 0 {
		return "", time.Time{}, time.Time{}, errors.New("mint token: empty signing secret")
	}
	nbf := time.Unix(now.Unix(), 0).UTC()
	exp := nbf.Add(ttl)
	c := &claims{
		JTI:    keySID + "-" + strconv.FormatInt(nbf.Unix(), 10),
		Issuer: keySID,
		Sub:    accountSID,
		NBF:    &numericDate{nbf},
		Exp:    &numericDate{exp},
		Grants: &g,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	t.Header["cty"] = ContentType
	s, err := t.SignedString(secret)
	if err != nil {
		return "", time.Time{}, time.Time{}, fmt.Errorf("sign token with key %s: %w", keySID, err)
	}
	return s, nbf, exp, nil
}
