package usage

import "time"

// IdentityStats are an admin's view of how an account's identities behave in
// one month (§7). With a service, every figure is over the identities of
// that service; without, over users (service, identity) of all services, as
// billed.
type IdentityStats struct {
	// ActiveIdentities had at least one activity this month.
	ActiveIdentities int64
	// NewIdentities had their first activity ever this month.
	NewIdentities int64
	// ReturningIdentities are active this month and were active in some
	// earlier month: ActiveIdentities = NewIdentities + ReturningIdentities.
	ReturningIdentities int64
	// ChurnedIdentities were active in the previous month and not in this one.
	ChurnedIdentities int64
	// OneTimeIdentities had exactly one event this month.
	OneTimeIdentities int64
	// RESTOnlyIdentities had only create/update this month: billed without
	// ever using an SDK, the cost an admin can most easily avoid.
	RESTOnlyIdentities int64
	// MultiEndpointIdentities used 3 or more distinct endpoint_ids this
	// month: a hint that one identity is shared by several people.
	MultiEndpointIdentities int64
	// ReservedCharacterIdentities contain a reserved character (HasReserved).
	ReservedCharacterIdentities int64
	// RandomLikeIdentities look machine generated (RandomLike).
	RandomLikeIdentities int64
	// AuthenticateOnlyIdentities were active this month only through
	// authenticate: a chat client created for a user who never used it.
	AuthenticateOnlyIdentities int64
	// UpdateOnlyIdentities were active this month only through update: a
	// REST update of a user who did nothing else.
	UpdateOnlyIdentities int64
	// LookalikeIdentities share their lookalike key (LookalikeKey) with
	// another identity of the same service this month.
	LookalikeIdentities int64
	// ReservedCharacters counts, per reserved character present, the
	// identities holding it.
	ReservedCharacters map[string]int64
	// Events is the number of events this month.
	Events int64
	// BilledUsers is the month's active users over every service, as billed
	// (the report's active_users), whatever service the figures are about.
	BilledUsers int64
	// RateCard is the card the month is billed with: its latest stored
	// version's, or the account's card while none is stored; nil without
	// one.
	RateCard []byte
	// TopIdentities are the 10 identities with the most events, by events
	// descending, then service_sid, then identity (byte order).
	TopIdentities []IdentityEvents
}

// EventsPerIdentity is Events / ActiveIdentities, 0 with no identity.
func (s IdentityStats) EventsPerIdentity() float64 {
	if s.ActiveIdentities == 0 {
		return 0
	}
	return float64(s.Events) / float64(s.ActiveIdentities)
}

// AvoidableUsers are the users the bill would not count without
// authenticate-only and update-only identities.
func (s IdentityStats) AvoidableUsers() int64 {
	return s.AuthenticateOnlyIdentities + s.UpdateOnlyIdentities
}

// LookalikeGroup is two or more identities of one service that share a
// lookalike key in a month.
type LookalikeGroup struct {
	ServiceSID string
	Key        string
	Identities []string // in byte order
	Events     int64
}

// IdentityEvents is one line of the top identities.
type IdentityEvents struct {
	ServiceSID string
	Identity   string
	Events     int64
}

// IdentityMonth is one identity's figures in one month.
type IdentityMonth struct {
	ServiceSID    string
	Identity      string
	Month         Month
	Events        int64
	FirstActiveAt time.Time
	LastActiveAt  time.Time
	Activities    []Activity
	Sources       []Source
	Endpoints     []string
}

// UserHistory is one user's activity over every month.
type UserHistory struct {
	ServiceSID    string
	Identity      string
	FirstActiveAt time.Time
	LastActiveAt  time.Time
	Months        []IdentityMonth
}
