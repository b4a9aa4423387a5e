package usage

// Activity is one of the eight things a user does that make it active.
type Activity string

// The eight activities of the contract (§3).
const (
	Create       Activity = "create"
	Update       Activity = "update"
	Authenticate Activity = "authenticate"
	Send         Activity = "send"
	Join         Activity = "join"
	Add          Activity = "add"
	Invite       Activity = "invite"
	Remove       Activity = "remove"
)

// Activities lists every activity in bit order.
var Activities = []Activity{Create, Update, Authenticate, Send, Join, Add, Invite, Remove}

// Source says where an activity came from.
type Source string

// The two sources.
const (
	REST Source = "rest"
	SDK  Source = "sdk"
)

// Sources lists every source in bit order.
var Sources = []Source{REST, SDK}

// Bit returns the activity's bit in the rollup's activity set, or 0 when the
// activity is unknown. The order of Activities is stored in the database and
// must never change.
func (a Activity) Bit() int16 {
	for i, x := range Activities {
		if x == a {
			return 1 << i
		}
	}
	return 0
}

// RESTOnlyActivities is the bit set of create and update: a user whose month
// holds nothing else was billed without ever using an SDK.
var RESTOnlyActivities = Create.Bit() | Update.Bit()

// Bit returns the source's bit in the rollup's source set, or 0 when unknown.
func (s Source) Bit() int16 {
	for i, x := range Sources {
		if x == s {
			return 1 << i
		}
	}
	return 0
}

// allowed is the activity/source matrix of §3: any other pair is invalid.
var allowed = map[Activity][]Source{
	Create:       {REST},
	Update:       {REST},
	Authenticate: {SDK},
	Send:         {SDK, REST},
	Join:         {SDK},
	Add:          {REST, SDK},
	Invite:       {REST, SDK},
	Remove:       {REST, SDK},
}

// Allows reports whether source s may report activity a.
func (a Activity) Allows(s Source) bool {
	for _, x := range allowed[a] {
		if x == s {
			return true
		}
	}
	return false
}

// Valid reports whether a is one of the eight activities.
func (a Activity) Valid() bool { return a.Bit() != 0 }

// Valid reports whether s is one of the two sources.
func (s Source) Valid() bool { return s.Bit() != 0 }

// ActivitiesOf expands a bit set into activities, in bit order.
func ActivitiesOf(bits int16) []Activity {
	var out []Activity
	for i, a := range Activities {
		if bits&(1<<i) != 0 {
			out = append(out, a)
		}
	}
	return out
}

// SourcesOf expands a bit set into sources, in bit order.
func SourcesOf(bits int16) []Source {
	var out []Source
	for i, s := range Sources {
		if bits&(1<<i) != 0 {
			out = append(out, s)
		}
	}
	return out
}
