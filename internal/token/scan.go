package token

import (
	"time"
	"unicode/utf8"

	"github.com/tallyhq/tally/internal/jsonscan"
)

// scanClaims reads claims of the shape Twilio's libraries and Mint write
// (see jsonscan): the members of claims and of its grants, each once and
// spelled exactly, plain strings, NumericDates in whole seconds. It gives up
// (ok false) on anything else (another product's grant, a fraction, null, an
// escape) and Verify decodes with encoding/json, which reads every valid
// claims object. What it accepts, encoding/json decodes to the same claims
// (FuzzScanClaims); decoding the claims with encoding/json was a third of
// a verification's handler.
func scanClaims(b string) (claims, bool) {
	var c claims
	if !utf8.ValidString(b) {
		return c, false
	}
	p := jsonscan.New(b)
	var seen uint8
	ok := p.Object(func(key string) bool {
		var bit uint8
		var ok bool
		switch key {
		case "jti":
			bit = 1 << 0
			c.JTI, ok = p.Str()
		case "iss":
			bit = 1 << 1
			c.Issuer, ok = p.Str()
		case "sub":
			bit = 1 << 2
			c.Sub, ok = p.Str()
		case "nbf":
			bit = 1 << 3
			c.NBF, ok = scanDate(p)
		case "iat":
			bit = 1 << 4
			c.IAT, ok = scanDate(p)
		case "exp":
			bit = 1 << 5
			c.Exp, ok = scanDate(p)
		case "grants":
			bit = 1 << 6
			c.Grants = new(Grants)
			ok = scanGrants(p, c.Grants)
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	})
	return c, ok && p.End()
}

// scanDate reads whole seconds in range; a date out of range is left to
// encoding/json to refuse.
func scanDate(p *jsonscan.Scanner) (*numericDate, bool) {
	sec, ok := p.Uint()
	if !ok || sec > maxNumericDate {
		return nil, false
	}
	return &numericDate{time.Unix(sec, 0).UTC()}, true
}

func scanGrants(p *jsonscan.Scanner, g *Grants) bool {
	var seen uint8
	return p.Object(func(key string) bool {
		var bit uint8
		var ok bool
		switch key {
		case "identity":
			bit = 1 << 0
			g.Identity, ok = p.Str()
		case "chat":
			bit = 1 << 1
			ch := new(ChatGrant)
			g.Chat = ch
			ok = scanStrings(p, []field{{"service_sid", &ch.ServiceSID}, {"endpoint_id", &ch.EndpointID},
				{"deployment_role_sid", &ch.DeploymentRoleSID}, {"push_credential_sid", &ch.PushCredentialSID}})
		case "data_sync":
			bit = 1 << 2
			sy := new(SyncGrant)
			g.Sync = sy
			ok = scanStrings(p, []field{{"service_sid", &sy.ServiceSID}, {"endpoint_id", &sy.EndpointID}})
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	})
}

// field is a member of a grant and where its string goes.
type field struct {
	key string
	to  *string
}

// scanStrings reads an object of plain strings, each of fields at most
// once and nothing else.
func scanStrings(p *jsonscan.Scanner, fields []field) bool {
	var seen uint8
	return p.Object(func(key string) bool {
		for i, f := range fields {
			if f.key != key {
				continue
			}
			if seen&(1<<i) != 0 {
				return false
			}
			seen |= 1 << i
			v, ok := p.Str()
			*f.to = v
			return ok
		}
		return false
	})
}
