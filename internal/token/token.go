// Package token mints and verifies access tokens in the Twilio access-token
// format (a JWT whose "grants" claim names an identity and the services it
// may use), so that tokens minted by Twilio's server libraries with a tally
// key verify here and tokens minted here decode in those libraries.
//
// The package is pure logic: the clock and the key store are passed in, so
// the HTTP layer decides what "now" is and where keys live.
package token

import "time"

// Limits of the contract (§5). The TTL bounds are Twilio's own, so a client
// that works against Twilio works here; MaxLifetime bounds what is accepted
// on verification whoever minted the token; Leeway absorbs clock skew
// between the minting server, the SDK client and tally.
const (
	MinTTL      = 180 * time.Second
	MaxTTL      = 86400 * time.Second
	DefaultTTL  = 3600 * time.Second
	MaxLifetime = 24 * time.Hour
	Leeway      = 60 * time.Second
)

// ContentType is the "cty" header member of an access token: it is what
// tells Twilio's services that the JWT is a first-party access token.
const ContentType = "twilio-fpa;v=1"
