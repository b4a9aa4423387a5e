package token

import (
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// claims are a token's claims on the wire. Mint fills all but iat; Verify
// reads them liberally, since twilio-go sets nbf and no iat and twilio-node
// sets iat and no nbf.
type claims struct {
	JTI    string       `json:"jti,omitempty"`
	Issuer string       `json:"iss"`
	Sub    string       `json:"sub"`
	NBF    *numericDate `json:"nbf,omitempty"`
	IAT    *numericDate `json:"iat,omitempty"`
	Exp    *numericDate `json:"exp,omitempty"`
	Grants *Grants      `json:"grants,omitempty"`
}

// claims satisfies jwt.Claims only so that golang-jwt's Parser can decode
// it and check the signature; its claim validation is turned off
// (WithoutClaimsValidation), because the contract's time rules (iat standing
// in for nbf, the 24-hour lifetime, the leeway inclusive at 60 s) and its
// one-reason-per-refusal are not golang-jwt's, and are checked in Verify.
func (c *claims) GetExpirationTime() (*jwt.NumericDate, error) { return nil, nil }
func (c *claims) GetIssuedAt() (*jwt.NumericDate, error)       { return nil, nil }
func (c *claims) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (c *claims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c *claims) GetSubject() (string, error)                  { return c.Sub, nil }
func (c *claims) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

// maxNumericDate is 9999-12-31T23:59:59Z: later dates, and dates before
// 1970, are taken for garbage rather than for times.
const maxNumericDate = 253402300799

// numericDate is a JWT NumericDate (RFC 7519 §2): seconds since the epoch,
// written here as an integer and read as any JSON number, fractions included,
// since the RFC allows them.
type numericDate struct{ t time.Time }

// MarshalJSON writes whole seconds, as Twilio's libraries do.
func (d numericDate) MarshalJSON() ([]byte, error) {
	return strconv.AppendInt(nil, d.t.Unix(), 10), nil
}

// UnmarshalJSON reads a JSON number of seconds; anything else (a string, a
// date out of range) makes the token malformed.
func (d *numericDate) UnmarshalJSON(b []byte) error {
	s := string(b)
	if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
		if sec < 0 || sec > maxNumericDate {
			return errors.New("numeric date out of range")
		}
		d.t = time.Unix(sec, 0).UTC()
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return errors.New("numeric date is not a number of seconds in range")
	}
	sec, frac := math.Modf(f)
	d.t = time.Unix(int64(sec), int64(frac*1e9)).UTC()
	return nil
}
