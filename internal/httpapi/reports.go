package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/tallyhq/tally/internal/billing/pricing"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
	"github.com/tallyhq/tally/reports"
)

const csvType = "text/csv; charset=utf-8"

// wantsCSV reports whether the client asked for CSV (?format=csv or Accept).
func wantsCSV(c echo.Context) bool {
	if f := c.QueryParam("format"); f != "" {
		return f == "csv"
	}
	return strings.Contains(c.Request().Header.Get(echo.HeaderAccept), "text/csv")
}

func monthParam(c echo.Context) (usage.Month, error) {
	m, err := usage.ParseMonth(c.Param("month"))
	if err != nil {
		return usage.Month{}, usage.Invalid("month", "must be YYYY-MM, not %q", c.Param("month"))
	}
	return m, nil
}

// intParam reads an optional positive integer query parameter.
func intParam(c echo.Context, name string) (*int, error) {
	v := c.QueryParam(name)
	if v == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return nil, usage.Invalid(name, "must be a positive integer")
	}
	return &n, nil
}

// report returns the stored version asked for, else the latest stored
// version, else the provisional figures computed now (a GET never writes).
func (s *Server) report(c echo.Context, accountSID string, m usage.Month, version *int) (usage.Report, error) {
	ctx := c.Request().Context()
	r, err := s.store.Version(ctx, accountSID, m, version)
	if err == nil || version != nil || !errors.Is(err, usage.ErrNotFound) {
		return r, err
	}
	return s.store.ProvisionalReport(ctx, accountSID, m)
}

// reportScope authorizes a finance read and reads the month and the
// optional ?version.
func (s *Server) reportScope(c echo.Context) (account string, m usage.Month, version *int, err error) {
	account = c.Param("account_sid")
	if err = s.authorize(c, account, usage.RoleFinance, usage.RoleAdmin); err != nil {
		return
	}
	if m, err = monthParam(c); err != nil {
		return
	}
	version, err = intParam(c, "version")
	return
}

func (s *Server) getReport(c echo.Context) error {
	account, m, version, err := s.reportScope(c)
	if err != nil {
		return err
	}
	r, err := s.report(c, account, m, version)
	if err != nil {
		return err
	}
	return s.respondReport(c, r)
}

func (s *Server) respondReport(c echo.Context, r usage.Report) error {
	out, err := reports.NewReport(r)
	if err != nil {
		return err
	}
	if wantsCSV(c) {
		return stream(c, http.StatusOK, csvType, func(w io.Writer) error { return reports.WriteReportCSV(w, out) })
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) runReport(c echo.Context) error {
	account := c.Param("account_sid")
	if err := s.authorize(c, account, usage.RoleAdmin); err != nil {
		return err
	}
	m, err := monthParam(c)
	if err != nil {
		return err
	}
	res, err := s.job.Run(c.Request().Context(), account, m)
	if err != nil {
		return err
	}
	return s.respondReport(c, res.Report)
}

func (s *Server) listReports(c echo.Context) error {
	account := c.Param("account_sid")
	if err := s.authorize(c, account, usage.RoleFinance, usage.RoleAdmin); err != nil {
		return err
	}
	months, err := s.store.Months(c.Request().Context(), account)
	if err != nil {
		return err
	}
	type line struct {
		Month       string `json:"month"`
		Version     *int   `json:"version"`
		Status      string `json:"status"`
		ActiveUsers int64  `json:"active_users"`
	}
	out := struct {
		Reports []line `json:"reports"`
	}{Reports: make([]line, 0, len(months))}
	for _, m := range months {
		status := usage.StatusProvisional
		if m.Version != nil {
			status = usage.StatusFinal
		}
		out.Reports = append(out.Reports, line{Month: m.Month.String(), Version: m.Version, Status: status, ActiveUsers: m.ActiveUsers})
	}
	return c.JSON(http.StatusOK, out)
}

// Roster paging.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// pageToken is the keyset position after the last row of a page; opaque
// to clients.
type pageToken struct {
	Service  string `json:"s"`
	Identity string `json:"i"`
}

func encodeToken(t pageToken) string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeToken(s string) (pageToken, error) {
	var t pageToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &t) != nil {
		return t, usage.Invalid("page_token", "is not a token this API returned")
	}
	return t, nil
}

func pageSize(c echo.Context) (int, error) {
	n, err := intParam(c, "page_size")
	if err != nil {
		return 0, err
	}
	if n == nil {
		return defaultPageSize, nil
	}
	if *n > maxPageSize {
		return 0, usage.Invalid("page_size", "must be at most %d", maxPageSize)
	}
	return *n, nil
}

func (s *Server) getRoster(c echo.Context) error {
	account, m, version, err := s.reportScope(c)
	if err != nil {
		return err
	}
	addedSince, err := intParam(c, "added_since")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	q := postgres.RosterQuery{AccountSID: account, Month: m, Version: version, AddedSince: addedSince}
	// The roster of the version the report shows: the one asked for, else
	// the latest, else the provisional roster.
	latest, err := s.store.Version(ctx, account, m, version)
	switch {
	case err == nil:
		q.Version = latest.Version
	case !errors.Is(err, usage.ErrNotFound) || version != nil:
		return err
	case addedSince != nil:
		return fmt.Errorf("added_since without a stored version: %w", usage.ErrNotFound)
	}
	if addedSince != nil {
		if _, err := s.store.Version(ctx, account, m, addedSince); err != nil {
			return err
		}
	}

	if wantsCSV(c) {
		return stream(c, http.StatusOK, csvType, func(out io.Writer) error {
			w, err := reports.NewRosterCSV(out)
			if err != nil {
				return err
			}
			if err := s.store.Roster(ctx, q, w.Write); err != nil {
				return err
			}
			return w.Flush()
		})
	}

	size, err := pageSize(c)
	if err != nil {
		return err
	}
	if tok := c.QueryParam("page_token"); tok != "" {
		t, err := decodeToken(tok)
		if err != nil {
			return err
		}
		q.AfterService, q.AfterIdentity = t.Service, t.Identity
	}
	q.Limit = size + 1 // one more tells whether there is a next page
	users := make([]reports.RosterEntry, 0, size)
	var more bool
	err = s.store.Roster(ctx, q, func(e usage.RosterEntry) error {
		if len(users) == size {
			more = true
			return nil
		}
		users = append(users, reports.NewRosterEntry(e))
		return nil
	})
	if err != nil {
		return err
	}
	out := struct {
		Users         []reports.RosterEntry `json:"users"`
		NextPageToken *string               `json:"next_page_token"`
	}{Users: users}
	if more {
		last := users[len(users)-1]
		t := encodeToken(pageToken{Service: last.ServiceSID, Identity: last.Identity})
		out.NextPageToken = &t
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) getRateCard(c echo.Context) error {
	account := c.Param("account_sid")
	if err := s.authorize(c, account, usage.RoleFinance, usage.RoleAdmin); err != nil {
		return err
	}
	card, err := s.store.RateCard(c.Request().Context(), account)
	if err != nil {
		return err
	}
	return c.JSONBlob(http.StatusOK, card)
}

func (s *Server) putRateCard(c echo.Context) error {
	account := c.Param("account_sid")
	if err := s.authorize(c, account, usage.RoleFinance, usage.RoleAdmin); err != nil {
		return err
	}
	if !principal(c).Platform || principal(c).Role != usage.RoleAdmin {
		return fmt.Errorf("rate cards are set by platform admins: %w", usage.ErrForbidden)
	}
	var rc pricing.RateCard
	if err := decodeJSON(c, &rc); err != nil {
		return err
	}
	if err := rc.Validate(); err != nil {
		return err
	}
	card, err := json.Marshal(rc)
	if err != nil {
		return err
	}
	if err := s.store.SetRateCard(c.Request().Context(), account, card); err != nil {
		return err
	}
	return c.JSONBlob(http.StatusOK, card)
}

func (s *Server) platformReport(c echo.Context) error {
	if err := s.authorizePlatform(c, usage.RoleFinance, usage.RoleAdmin); err != nil {
		return err
	}
	m, err := monthParam(c)
	if err != nil {
		return err
	}
	accounts, err := s.store.Accounts(c.Request().Context())
	if err != nil {
		return err
	}
	sids := make([]string, len(accounts))
	for i, a := range accounts {
		sids[i] = a.SID
	}
	// Every account's month at once: one report per account would fold,
	// open a transaction and read a roster for each (~2 s at 1 000 accounts).
	all, err := s.store.MonthReports(c.Request().Context(), sids, m)
	if err != nil {
		return err
	}
	lines := make([]reports.AccountLine, 0, len(accounts))
	for _, a := range accounts {
		out, err := reports.NewReport(all[a.SID])
		if err != nil {
			return err
		}
		lines = append(lines, reports.NewAccountLine(a.Name, out))
	}
	if wantsCSV(c) {
		return stream(c, http.StatusOK, csvType, func(w io.Writer) error { return reports.WriteAccountLinesCSV(w, lines) })
	}
	return c.JSON(http.StatusOK, struct {
		Accounts []reports.AccountLine `json:"accounts"`
	}{lines})
}
