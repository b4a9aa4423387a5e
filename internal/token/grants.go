package token

import (
	"github.com/tallyhq/tally/internal/usage"
)

// Grants is the "grants" claim: who the token's holder is and which services
// they may use. The JSON keys are Twilio's ("data_sync" for Sync), so that
// Twilio's SDKs and server libraries read tokens minted here. Grants of other
// products (video, voice…) in a token minted elsewhere are ignored.
type Grants struct {
	Identity string     `json:"identity"`
	Chat     *ChatGrant `json:"chat,omitempty"`
	Sync     *SyncGrant `json:"data_sync,omitempty"`
}

// ChatGrant gives access to a Conversations/Chat service. Members that were
// not given are left out of the token, as Twilio's libraries do.
type ChatGrant struct {
	ServiceSID        string `json:"service_sid"`
	EndpointID        string `json:"endpoint_id,omitempty"`
	DeploymentRoleSID string `json:"deployment_role_sid,omitempty"`
	PushCredentialSID string `json:"push_credential_sid,omitempty"`
}

// SyncGrant gives access to a Sync service; Twilio's claim key for it is
// "data_sync".
type SyncGrant struct {
	ServiceSID string `json:"service_sid"`
	EndpointID string `json:"endpoint_id,omitempty"`
}

// CheckGrants validates what a token is about to be minted for: an identity
// of §1 and at least one grant, each naming a valid service. It reports every
// problem at once as a *usage.ValidationError (422 at the HTTP layer), so a
// bad request is never turned into a token that verifies but records nothing.
func CheckGrants(g Grants) error {
	var errs []usage.FieldError
	add := func(field, msg string) {
		errs = append(errs, usage.FieldError{Index: -1, Field: field, Message: msg})
	}
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
