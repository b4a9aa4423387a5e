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
	ok := p.Fields(claimKeys, func(i int) bool {
		var ok bool
		switch claimKeys[i] {
		case "jti":
			c.JTI, ok = p.Str()
		case "iss":
			c.Issuer, ok = p.Str()
		case "sub":
			c.Sub, ok = p.Str()
		case "nbf":
			c.NBF, ok = scanDate(p)
		case "iat":
			c.IAT, ok = scanDate(p)
		case "exp":
			c.Exp, ok = scanDate(p)
		case "grants":
			c.Grants = new(Grants)
			ok = scanGrants(p, c.Grants)
		}
		return ok
	})
	if !ok || !p.End() {
		return claims{}, false // nothing half-read for encoding/json to merge into
	}
	return c, true
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

var (
	claimKeys = []string{"jti", "iss", "sub", "nbf", "iat", "exp", "grants"}
	grantKeys = []string{"identity", "chat", "data_sync"}
	chatKeys  = []string{"service_sid", "endpoint_id", "deployment_role_sid", "push_credential_sid"}
	syncKeys  = []string{"service_sid", "endpoint_id"}
)

func scanGrants(p *jsonscan.Scanner, g *Grants) bool {
	return p.Fields(grantKeys, func(i int) bool {
		switch grantKeys[i] {
		case "identity":
			var ok bool
			g.Identity, ok = p.Str()
			return ok
		case "chat":
			ch := new(ChatGrant)
			g.Chat = ch
			return scanStrings(p, chatKeys, &ch.ServiceSID, &ch.EndpointID, &ch.DeploymentRoleSID, &ch.PushCredentialSID)
		default: // data_sync
			sy := new(SyncGrant)
			g.Sync = sy
			return scanStrings(p, syncKeys, &sy.ServiceSID, &sy.EndpointID)
		}
	})
}

// scanStrings reads an object of plain strings, keys[i] into to[i].
func scanStrings(p *jsonscan.Scanner, keys []string, to ...*string) bool {
	return p.Fields(keys, func(i int) bool {
		var ok bool
		*to[i], ok = p.Str()
		return ok
	})
}
