package console

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
	"github.com/tallyhq/tally/reports"
)

type versionsPage struct {
	AccountSID string
	Month      string
	// Versions are the stored versions, newest first, or the provisional
	// figures alone when none is stored.
	Versions []reportView
}

// monthParam reads the month of the path.
func monthParam(c echo.Context) (usage.Month, error) {
	m, err := usage.ParseMonth(c.Param("month"))
	if err != nil {
		return usage.Month{}, usage.Invalid("month", "must be YYYY-MM, not %q", c.Param("month"))
	}
	return m, nil
}

// reportVersions lists every stored version of a month with its checksum
// and added users, and the links to download each.
func (h *Handler) reportVersions(c echo.Context) error {
	account := c.Param("account_sid")
	if err := h.authorize(c, account, usage.RoleFinance, usage.RoleAdmin); err != nil {
		return err
	}
	m, err := monthParam(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	stored, err := h.store.Versions(ctx, account, m)
	if err != nil {
		return err
	}
	if len(stored) == 0 {
		r, err := h.store.ProvisionalReport(ctx, account, m)
		if err != nil {
			return err
		}
		stored = append(stored, r)
	}
	page := versionsPage{AccountSID: account, Month: m.String()}
	for _, r := range stored {
		v, err := newReportView(r)
		if err != nil {
			return err
		}
		page.Versions = append(page.Versions, v)
	}
	if err := h.setNav(c, account, m.String(), "reports"); err != nil {
		return err
	}
	return h.render(c, http.StatusOK, "reports", page)
}

// export answers with the very bytes of the API's report JSON, report CSV
// or roster CSV (§6), rendered by the same code (package reports, echo's
// JSON encoder), as a download.
func (h *Handler) export(c echo.Context) error {
	account := c.Param("account_sid")
	if err := h.authorize(c, account, usage.RoleFinance, usage.RoleAdmin); err != nil {
		return err
	}
	m, err := monthParam(c)
	if err != nil {
		return err
	}
	var version *int
	if v := c.QueryParam("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return usage.Invalid("version", "must be a positive integer")
		}
		version = &n
	}
	format := c.QueryParam("format")
	switch format {
	case "json", "csv":
		return h.exportReport(c, account, m, version, format)
	case "roster":
		return h.exportRoster(c, account, m, version)
	}
	return usage.Invalid("format", "must be json, csv or roster")
}

// attachment names the download: report-AC…-2026-10-v2.json, or -provisional.
func attachment(c echo.Context, account string, m usage.Month, version *int, kind, ext string) {
	v := "provisional"
	if version != nil {
		v = "v" + strconv.Itoa(*version)
	}
	c.Response().Header().Set(echo.HeaderContentDisposition,
		fmt.Sprintf(`attachment; filename="%s-%s-%s-%s.%s"`, kind, account, m, v, ext))
}

func (h *Handler) exportReport(c echo.Context, account string, m usage.Month, version *int, format string) error {
	r, err := h.report(c, account, m, version)
	if err != nil {
		return err
	}
	out, err := reports.NewReport(r)
	if err != nil {
		return err
	}
	if format == "csv" {
		attachment(c, account, m, r.Version, "report", "csv")
		c.Response().Header().Set(echo.HeaderContentType, "text/csv; charset=utf-8")
		c.Response().WriteHeader(http.StatusOK)
		return reports.WriteReportCSV(c.Response(), out)
	}
	attachment(c, account, m, r.Version, "report", "json")
	return c.JSON(http.StatusOK, out)
}

// exportRoster is the roster CSV of the version the report shows: the one
// asked for, else the latest, else the provisional roster.
func (h *Handler) exportRoster(c echo.Context, account string, m usage.Month, version *int) error {
	ctx := c.Request().Context()
	q := postgres.RosterQuery{AccountSID: account, Month: m, Version: version}
	latest, err := h.store.Version(ctx, account, m, version)
	switch {
	case err == nil:
		q.Version = latest.Version
	case !errors.Is(err, usage.ErrNotFound) || version != nil:
		return err
	}
	attachment(c, account, m, q.Version, "roster", "csv")
	c.Response().Header().Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	c.Response().WriteHeader(http.StatusOK)
	w, err := reports.NewRosterCSV(c.Response())
	if err != nil {
		return err
	}
	if err := h.store.Roster(ctx, q, w.Write); err != nil {
		return err // the status is sent: renderErrors only logs
	}
	return w.Flush()
}
