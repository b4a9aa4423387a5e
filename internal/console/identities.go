package console

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/tallyhq/tally/internal/httpapi"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// stat is one §7 statistic: its API name (the data-metric hook), a label
// and its value.
type stat struct {
	Name  string
	Label string
	Value int64
}

// advice is a plain-words suggestion that the figures call for.
type advice struct {
	Topic string
	Text  string
}

type identitiesPage struct {
	AccountSID        string
	Month             string
	ServiceSID        string
	Stats             []stat
	EventsPerIdentity float64
	Top               []usage.IdentityEvents
	Advice            []advice
	// AvoidableAmount is the §7 avoidable_amount, nil without a rate card.
	AvoidableAmount *string
	// Reserved lists each reserved character present with its count.
	Reserved []reservedCount
	// Lookalikes are the largest lookalike groups (at most maxLookalikes).
	Lookalikes []usage.LookalikeGroup
	// MoreLookalikes says there are more groups than shown.
	MoreLookalikes bool
}

type reservedCount struct {
	Char  string
	Count int64
}

// maxLookalikes bounds the lookalike groups shown; the API lists them all.
const maxLookalikes = 50

// Shares of active identities above which a kind of identity is worth a
// word of advice: below them, the cost is noise.
const (
	randomLikeShare = 0.05
	oneTimeShare    = 0.20
)

// identities is the admin's view of a month's identities (§7): the
// statistics, the top identities, and advice where the figures call for it.
func (h *Handler) identities(c echo.Context) error {
	account := c.Param("account_sid")
	if err := h.authorize(c, account, usage.RoleAdmin); err != nil {
		return err
	}
	m, err := h.monthQuery(c)
	if err != nil {
		return err
	}
	var svc *string
	if v := c.QueryParam("service_sid"); v != "" {
		if msg := usage.CheckServiceSID(v); msg != "" {
			return usage.Invalid("service_sid", "%s", msg)
		}
		svc = &v
	}
	// As the API: a month that has not begun has no figures, and "churned"
	// would count every identity of the current month (§7).
	if current := usage.MonthOf(h.now()); m.Start().After(current.Start()) {
		return usage.Invalid("month", "must not be after the current month, %s", current)
	}
	st, err := h.store.IdentityStats(c.Request().Context(), account, m, svc)
	if err != nil {
		return err
	}
	avoidable, err := httpapi.AvoidableAmount(st)
	if err != nil {
		return err
	}
	groups, err := h.store.LookalikeGroups(c.Request().Context(),
		postgres.LookalikeQuery{AccountSID: account, Month: m, ServiceSID: svc, Limit: maxLookalikes + 1})
	if err != nil {
		return err
	}
	page := identitiesPage{AccountSID: account, Month: m.String(), EventsPerIdentity: st.EventsPerIdentity(),
		Top: st.TopIdentities, Advice: adviceFor(st, avoidable), AvoidableAmount: avoidable,
		Lookalikes: groups[:min(len(groups), maxLookalikes)], MoreLookalikes: len(groups) > maxLookalikes}
	for i := range len(usage.ReservedCharacters) {
		if n := st.ReservedCharacters[usage.ReservedCharacters[i:i+1]]; n > 0 {
			page.Reserved = append(page.Reserved, reservedCount{usage.ReservedCharacters[i : i+1], n})
		}
	}
	if svc != nil {
		page.ServiceSID = *svc
	}
	page.Stats = []stat{
		{"active_identities", "Active identities", st.ActiveIdentities},
		{"new_identities", "New this month", st.NewIdentities},
		{"returning_identities", "Returning", st.ReturningIdentities},
		{"churned_identities", "Churned (active last month, not this one)", st.ChurnedIdentities},
		{"one_time_identities", "One event only", st.OneTimeIdentities},
		{"rest_only_identities", "Active only through REST create/update", st.RESTOnlyIdentities},
		{"multi_endpoint_identities", "On 3 or more endpoints", st.MultiEndpointIdentities},
		{"reserved_character_identities", "With reserved characters", st.ReservedCharacterIdentities},
		{"random_like_identities", "Look machine generated", st.RandomLikeIdentities},
		{"authenticate_only_identities", "Active only through authenticate", st.AuthenticateOnlyIdentities},
		{"update_only_identities", "Active only through REST update", st.UpdateOnlyIdentities},
		{"lookalike_identities", "Look like another identity of their service", st.LookalikeIdentities},
		{"events", "Events", st.Events},
	}
	if err := h.setNav(c, account, m.String(), "identities"); err != nil {
		return err
	}
	return h.render(c, http.StatusOK, "identities", page)
}

// adviceFor turns the figures into the seeds' advice: every unique identity
// is billed, so identities that are generated, used once or touched only by
// REST calls cost money for nothing.
func adviceFor(st usage.IdentityStats, avoidable *string) []advice {
	var out []advice
	active := st.ActiveIdentities
	share := func(n int64) float64 {
		if active == 0 {
			return 0
		}
		return float64(n) / float64(active)
	}
	ids := func(n int64) string { return count(n, "identity", "identities") + " (" + percent(n, active) + ")" }
	verb := func(n int64, one, many string) string {
		if n == 1 {
			return one
		}
		return many
	}
	if st.RandomLikeIdentities > 0 && share(st.RandomLikeIdentities) >= randomLikeShare {
		out = append(out, advice{"random_like_identities", ids(st.RandomLikeIdentities) + " " +
			verb(st.RandomLikeIdentities, "looks", "look") + " machine generated: UUIDs, long hex or base64 runs. " +
			"Every unique identity is billed as a user, so an identity made per install, device or session " +
			"bills one person many times. Give each person one stable identity."})
	}
	if st.OneTimeIdentities > 0 && share(st.OneTimeIdentities) >= oneTimeShare {
		out = append(out, advice{"one_time_identities", ids(st.OneTimeIdentities) + " had a single event this month, and each is billed in full. " +
			"Create the chat client only when the user is about to use chat, not at every app start."})
	}
	if n := st.AuthenticateOnlyIdentities + st.UpdateOnlyIdentities; n > 0 {
		text := ids(n) + " " + verb(n, "was", "were") + " active only through authenticate (" +
			count(st.AuthenticateOnlyIdentities, "identity", "identities") + ") or only through a REST update (" +
			count(st.UpdateOnlyIdentities, "identity", "identities") + "). Create the chat client only when the user " +
			"will read or send, and avoid needless REST updates of users."
		if avoidable != nil {
			text += " Without them this month's bill would be lower by " + *avoidable + "."
		}
		out = append(out, advice{"avoidable_amount", text})
	}
	if st.LookalikeIdentities > 0 {
		out = append(out, advice{"lookalike_identities", ids(st.LookalikeIdentities) + " look like another identity " +
			"of the same service (they differ only in case, width, invisible characters or spaces around them), and each " +
			"is billed as its own user. Normalize identities before you send them, and merge the groups below."})
	}
	if st.RESTOnlyIdentities > 0 {
		out = append(out, advice{"rest_only_identities", ids(st.RESTOnlyIdentities) + " " +
			verb(st.RESTOnlyIdentities, "was", "were") + " active only because your backend created or updated " +
			"them through REST, and billed without using chat. Avoid needless REST updates of users, " +
			"and create users when they first need chat."})
	}
	if st.ReservedCharacterIdentities > 0 {
		out = append(out, advice{"reserved_character_identities", count(st.ReservedCharacterIdentities, "identity", "identities") + " " +
			verb(st.ReservedCharacterIdentities, "contains", "contain") + " reserved characters such as @ / : or %. They work, but must be percent-encoded " +
			"in URLs; make sure every system spells them the same way, or one person becomes two users."})
	}
	if st.MultiEndpointIdentities > 0 {
		out = append(out, advice{"multi_endpoint_identities", count(st.MultiEndpointIdentities, "identity", "identities") + " " +
			verb(st.MultiEndpointIdentities, "was", "were") + " used from 3 or more endpoints. That can be one person with several devices, " +
			"or one identity shared by several people: check that shared logins are intended."})
	}
	return out
}
