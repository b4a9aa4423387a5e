package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tallyhq/tally/internal/billing/pricing"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// monthQuery reads the required ?month=YYYY-MM.
func monthQuery(c echo.Context) (usage.Month, error) {
	v := c.QueryParam("month")
	if v == "" {
		return usage.Month{}, usage.Invalid("month", "is required (YYYY-MM)")
	}
	m, err := usage.ParseMonth(v)
	if err != nil {
		return usage.Month{}, usage.Invalid("month", "must be YYYY-MM, not %q", v)
	}
	return m, nil
}

// serviceQuery reads the optional ?service_sid=.
func serviceQuery(c echo.Context) (*string, error) {
	v := c.QueryParam("service_sid")
	if v == "" {
		return nil, nil
	}
	if msg := usage.CheckServiceSID(v); msg != "" {
		return nil, usage.Invalid("service_sid", "%s", msg)
	}
	return &v, nil
}

// identityScope authorizes an admin request and reads the month and the
// optional service it is about. A month that has not begun has no figures
// (and "churned" would count every identity of the current month): 422 for
// the statistics, the listing and the lookalikes alike (§7).
func (s *Server) identityScope(c echo.Context) (account string, m usage.Month, svc *string, err error) {
	account = c.Param("account_sid")
	if err = s.authorize(c, account, usage.RoleAdmin); err != nil {
		return
	}
	if m, err = monthQuery(c); err != nil {
		return
	}
	if current := usage.MonthOf(s.now()); m.Start().After(current.Start()) {
		err = usage.Invalid("month", "must not be after the current month, %s", current)
		return
	}
	svc, err = serviceQuery(c)
	return
}

// AvoidableAmount is what a month's bill would be lower by without its
// authenticate-only and update-only users (§7): the billing amount of the
// month's users under its rate card, minus the amount the same card gives
// for that many fewer users, in the currency's decimals. Users are numbered
// within the month, so removing users removes the most expensive ones
// first, which is what pricing the smaller count does. nil without a card.
func AvoidableAmount(st usage.IdentityStats) (*string, error) {
	if st.RateCard == nil {
		return nil, nil
	}
	var rc pricing.RateCard
	if err := json.Unmarshal(st.RateCard, &rc); err != nil {
		return nil, fmt.Errorf("rate card: %w", err)
	}
	full := pricing.Price(st.BilledUsers, rc)
	without := pricing.Price(max(st.BilledUsers-st.AvoidableUsers(), 0), rc)
	a := full.Amount.Sub(without.Amount).StringFixed(pricing.MinorUnits(rc.Currency))
	return &a, nil
}

type identityEventsJSON struct {
	ServiceSID string `json:"service_sid"`
	Identity   string `json:"identity"`
	Events     int64  `json:"events"`
}

type identityStatsJSON struct {
	Month                       string               `json:"month"`
	ServiceSID                  *string              `json:"service_sid"`
	ActiveIdentities            int64                `json:"active_identities"`
	NewIdentities               int64                `json:"new_identities"`
	ReturningIdentities         int64                `json:"returning_identities"`
	ChurnedIdentities           int64                `json:"churned_identities"`
	OneTimeIdentities           int64                `json:"one_time_identities"`
	RESTOnlyIdentities          int64                `json:"rest_only_identities"`
	MultiEndpointIdentities     int64                `json:"multi_endpoint_identities"`
	ReservedCharacterIdentities int64                `json:"reserved_character_identities"`
	RandomLikeIdentities        int64                `json:"random_like_identities"`
	AuthenticateOnlyIdentities  int64                `json:"authenticate_only_identities"`
	UpdateOnlyIdentities        int64                `json:"update_only_identities"`
	AvoidableAmount             *string              `json:"avoidable_amount"`
	LookalikeIdentities         int64                `json:"lookalike_identities"`
	ReservedCharacters          map[string]int64     `json:"reserved_characters"`
	Events                      int64                `json:"events"`
	EventsPerIdentity           float64              `json:"events_per_identity"`
	TopIdentities               []identityEventsJSON `json:"top_identities"`
}

func (s *Server) identityStats(c echo.Context) error {
	account, m, svc, err := s.identityScope(c)
	if err != nil {
		return err
	}
	st, err := s.store.IdentityStats(c.Request().Context(), account, m, svc)
	if err != nil {
		return err
	}
	avoidable, err := AvoidableAmount(st)
	if err != nil {
		return fmt.Errorf("avoidable amount of %s %s: %w", account, m, err)
	}
	out := identityStatsJSON{
		Month: m.String(), ServiceSID: svc,
		ActiveIdentities: st.ActiveIdentities, NewIdentities: st.NewIdentities,
		ReturningIdentities: st.ReturningIdentities, ChurnedIdentities: st.ChurnedIdentities,
		OneTimeIdentities: st.OneTimeIdentities, RESTOnlyIdentities: st.RESTOnlyIdentities,
		MultiEndpointIdentities: st.MultiEndpointIdentities, ReservedCharacterIdentities: st.ReservedCharacterIdentities,
		RandomLikeIdentities: st.RandomLikeIdentities, Events: st.Events, EventsPerIdentity: st.EventsPerIdentity(),
		AuthenticateOnlyIdentities: st.AuthenticateOnlyIdentities, UpdateOnlyIdentities: st.UpdateOnlyIdentities,
		AvoidableAmount: avoidable, LookalikeIdentities: st.LookalikeIdentities, ReservedCharacters: st.ReservedCharacters,
		TopIdentities: make([]identityEventsJSON, 0, len(st.TopIdentities)),
	}
	for _, t := range st.TopIdentities {
		out.TopIdentities = append(out.TopIdentities, identityEventsJSON(t))
	}
	return c.JSON(http.StatusOK, out)
}

type identityMonthJSON struct {
	ServiceSID    string    `json:"service_sid"`
	Identity      string    `json:"identity"`
	Events        int64     `json:"events"`
	FirstActiveAt time.Time `json:"first_active_at"`
	LastActiveAt  time.Time `json:"last_active_at"`
	Endpoints     []string  `json:"endpoints"`
}

func (s *Server) listIdentities(c echo.Context) error {
	account, m, svc, err := s.identityScope(c)
	if err != nil {
		return err
	}
	size, err := pageSize(c)
	if err != nil {
		return err
	}
	q := postgres.IdentityQuery{AccountSID: account, Month: m, ServiceSID: svc, Prefix: c.QueryParam("prefix"), Limit: size + 1,
		Flag: c.QueryParam("flag")}
	if len(q.Prefix) > usage.MaxIdentityBytes {
		return usage.Invalid("prefix", "must be at most 256 bytes")
	}
	if q.Flag != "" && !slices.Contains(postgres.IdentityFlags(), q.Flag) {
		return usage.Invalid("flag", "must be one of %s", strings.Join(postgres.IdentityFlags(), ", "))
	}
	if tok := c.QueryParam("page_token"); tok != "" {
		t, err := decodeToken(tok)
		if err != nil {
			return err
		}
		q.AfterService, q.AfterIdentity = t.Service, t.Identity
	}
	rows, err := s.store.Identities(c.Request().Context(), q)
	if err != nil {
		return err
	}
	out := struct {
		Identities    []identityMonthJSON `json:"identities"`
		NextPageToken *string             `json:"next_page_token"`
	}{Identities: make([]identityMonthJSON, 0, min(len(rows), size))}
	for i, r := range rows {
		if i == size {
			t := encodeToken(pageToken{Service: rows[i-1].ServiceSID, Identity: rows[i-1].Identity})
			out.NextPageToken = &t
			break
		}
		out.Identities = append(out.Identities, identityMonthJSON{ServiceSID: r.ServiceSID, Identity: r.Identity,
			Events: r.Events, FirstActiveAt: r.FirstActiveAt, LastActiveAt: r.LastActiveAt, Endpoints: r.Endpoints})
	}
	return c.JSON(http.StatusOK, out)
}

// lookalikeToken is the position after the last group of a page: its size,
// service and key; opaque to clients.
type lookalikeToken struct {
	Size    int64  `json:"n"`
	Service string `json:"s"`
	Key     string `json:"k"`
}

type lookalikeGroupJSON struct {
	ServiceSID string   `json:"service_sid"`
	Key        string   `json:"key"`
	Identities []string `json:"identities"`
	Events     int64    `json:"events"`
}

// lookalikes lists the month's groups of identities of one service that
// share a lookalike key, largest first, then by service and key (§7).
func (s *Server) lookalikes(c echo.Context) error {
	account, m, svc, err := s.identityScope(c)
	if err != nil {
		return err
	}
	size, err := pageSize(c)
	if err != nil {
		return err
	}
	q := postgres.LookalikeQuery{AccountSID: account, Month: m, ServiceSID: svc, Limit: size + 1}
	if tok := c.QueryParam("page_token"); tok != "" {
		var t lookalikeToken
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || json.Unmarshal(b, &t) != nil || t.Size < 2 {
			return usage.Invalid("page_token", "is not a token this API returned")
		}
		q.After = &postgres.LookalikeGroupPosition{Size: t.Size, ServiceSID: t.Service, Key: t.Key}
	}
	groups, err := s.store.LookalikeGroups(c.Request().Context(), q)
	if err != nil {
		return err
	}
	out := struct {
		Groups        []lookalikeGroupJSON `json:"groups"`
		NextPageToken *string              `json:"next_page_token"`
	}{Groups: make([]lookalikeGroupJSON, 0, min(len(groups), size))}
	for i, g := range groups {
		if i == size {
			last := groups[i-1]
			b, _ := json.Marshal(lookalikeToken{Size: int64(len(last.Identities)), Service: last.ServiceSID, Key: last.Key})
			t := base64.RawURLEncoding.EncodeToString(b)
			out.NextPageToken = &t
			break
		}
		out.Groups = append(out.Groups, lookalikeGroupJSON(g))
	}
	return c.JSON(http.StatusOK, out)
}

// identityFromPath decodes the last path segment from the escaped path, so
// %2F (/) and %25 (%) in an identity survive: echo routes on the raw path
// when the path holds escapes, and the segment is unescaped exactly once.
func identityFromPath(r *http.Request) (string, error) {
	p := r.URL.EscapedPath()
	seg := p[strings.LastIndexByte(p, '/')+1:]
	id, err := url.PathUnescape(seg)
	if err != nil {
		return "", fmt.Errorf("identity %q: %w", seg, usage.ErrNotFound)
	}
	if msg := usage.CheckIdentity(id); msg != "" {
		return "", fmt.Errorf("identity: %s: %w", msg, usage.ErrNotFound)
	}
	return id, nil
}

func (s *Server) userHistory(c echo.Context) error {
	account := c.Param("account_sid")
	if err := s.authorize(c, account, usage.RoleAdmin); err != nil {
		return err
	}
	svc := c.Param("service_sid")
	if msg := usage.CheckServiceSID(svc); msg != "" {
		return fmt.Errorf("service %q: %w", svc, usage.ErrNotFound)
	}
	identity, err := identityFromPath(c.Request())
	if err != nil {
		return err
	}
	h, err := s.store.UserHistory(c.Request().Context(), account, svc, identity)
	if err != nil {
		return err
	}
	type monthJSON struct {
		Month      string           `json:"month"`
		Events     int64            `json:"events"`
		Activities []usage.Activity `json:"activities"`
		Sources    []usage.Source   `json:"sources"`
		Endpoints  []string         `json:"endpoints"`
	}
	out := struct {
		ServiceSID    string      `json:"service_sid"`
		Identity      string      `json:"identity"`
		FirstActiveAt time.Time   `json:"first_active_at"`
		LastActiveAt  time.Time   `json:"last_active_at"`
		Months        []monthJSON `json:"months"`
	}{ServiceSID: h.ServiceSID, Identity: h.Identity, FirstActiveAt: h.FirstActiveAt, LastActiveAt: h.LastActiveAt,
		Months: make([]monthJSON, 0, len(h.Months))}
	for _, m := range h.Months {
		out.Months = append(out.Months, monthJSON{Month: m.Month.String(), Events: m.Events,
			Activities: m.Activities, Sources: m.Sources, Endpoints: m.Endpoints})
	}
	return c.JSON(http.StatusOK, out)
}
