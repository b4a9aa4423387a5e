package client

import "time"

// Event is one activity of one user (§3, §4). ID, Actor, ChannelSID and
// EndpointID are optional here: Track gives an event without an ID a fresh
// one, and dates an event without OccurredAt now.
type Event struct {
	// ID is the event's idempotency key within the account: an event whose
	// ID was already sent counts as a duplicate, never twice.
	ID string
	// Activity is one of create, update, authenticate, send, join, add,
	// invite, remove; Source is rest or sdk, as the pairs of §3 allow.
	Activity string
	Source   string
	// ServiceSID and Identity name the user who becomes active.
	ServiceSID string
	Identity   string
	// Actor, ChannelSID and EndpointID are optional context.
	Actor      string
	ChannelSID string
	EndpointID string
	// OccurredAt is when it happened; the month it falls in (UTC) is the
	// month the user is counted in.
	OccurredAt time.Time
}

// Stats counts what became of the events tracked so far.
type Stats struct {
	// Accepted, Duplicates and Late are as the server counted them (§4):
	// a batch sent again after its answer was lost counts as duplicates.
	Accepted, Duplicates, Late int64
	// Failed counts the events given up on: refused by the server, or not
	// acknowledged before retries stopped.
	Failed int64
}

// TokenRequest asks for an access token for one identity. At least one of
// Chat and Sync is required.
type TokenRequest struct {
	Identity string
	// TTL is the token's lifetime, in whole seconds from 3 minutes to 24
	// hours; zero means the server's default, one hour.
	TTL  time.Duration
	Chat *ChatGrant
	Sync *SyncGrant
}

// ChatGrant gives access to a Conversations (chat) service.
type ChatGrant struct {
	ServiceSID string `json:"service_sid,omitempty"`
	EndpointID string `json:"endpoint_id,omitempty"`
}

// SyncGrant gives access to a Sync service.
type SyncGrant struct {
	ServiceSID string `json:"service_sid,omitempty"`
}

// Token is a minted access token, to hand to the SDK.
type Token struct {
	Identity  string        `json:"identity"`
	Token     string        `json:"token"`
	TTL       time.Duration `json:"-"`
	ExpiresAt time.Time     `json:"expires_at"`
}

// Grants are what a verified token grants.
type Grants struct {
	Identity string     `json:"identity"`
	Chat     *ChatGrant `json:"chat,omitempty"`
	Sync     *SyncGrant `json:"data_sync,omitempty"`
}

// Verification is a valid token's content. Verifying a token records an
// authenticate activity for its identity in each granted service.
type Verification struct {
	Identity   string     `json:"identity"`
	AccountSID string     `json:"account_sid"`
	APIKeySID  string     `json:"api_key_sid"`
	Grants     Grants     `json:"grants"`
	NotBefore  *time.Time `json:"not_before"`
	ExpiresAt  time.Time  `json:"expires_at"`
}

// Report is a month's report of the account (§6).
type Report struct {
	AccountSID string `json:"account_sid"`
	Month      string `json:"month"`
	// Version is nil, and Status provisional, while no version is stored.
	Version            *int            `json:"version"`
	Status             string          `json:"status"`
	Supersedes         *int            `json:"supersedes"`
	AddedUsers         *int64          `json:"added_users"`
	GeneratedAt        time.Time       `json:"generated_at"`
	EventsThrough      *time.Time      `json:"events_through"`
	Checksum           string          `json:"checksum"`
	ActiveUsers        int64           `json:"active_users"`
	DistinctIdentities int64           `json:"distinct_identities"`
	Services           []ServiceReport `json:"services"`
	// Billing is nil when the account has no rate card.
	Billing *Billing `json:"billing"`
}

// ServiceReport is one service's figures in a Report.
type ServiceReport struct {
	ServiceSID      string           `json:"service_sid"`
	ActiveUsers     int64            `json:"active_users"`
	NewUsers        int64            `json:"new_users"`
	RESTOnlyUsers   int64            `json:"rest_only_users"`
	ByFirstActivity map[string]int64 `json:"by_first_activity"`
}

// Billing prices a report's active users by the account's rate card.
// Amounts are exact decimals written as strings.
type Billing struct {
	Currency      string        `json:"currency"`
	FreeUsers     int64         `json:"free_users"`
	BillableUsers int64         `json:"billable_users"`
	Amount        string        `json:"amount"`
	Lines         []BillingLine `json:"lines"`
}

// BillingLine is the users of one tier of the rate card.
type BillingLine struct {
	From      int64  `json:"from"`
	To        int64  `json:"to"`
	Users     int64  `json:"users"`
	UnitPrice string `json:"unit_price"`
	Amount    string `json:"amount"`
}
