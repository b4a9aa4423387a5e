package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
	"github.com/tallyhq/tally/reports"
)

// home sends a platform key to the accounts table, any other to its
// account's month.
func (h *Handler) home(c echo.Context) error {
	p := principal(c)
	if p.Platform {
		return c.Redirect(http.StatusSeeOther, Prefix+"/accounts")
	}
	return c.Redirect(http.StatusSeeOther, Prefix+"/accounts/"+p.AccountSID)
}

type accountsPage struct {
	Month string
	Rows  []postgres.AccountMonth
}

// accounts is the platform's table of every account with this month's
// active users; like GET /v1/reports/{month}, platform keys only.
func (h *Handler) accounts(c echo.Context) error {
	p := principal(c)
	if !p.Platform {
		return fmt.Errorf("accounts table for a key of %s: %w", p.AccountSID, usage.ErrForbidden)
	}
	if err := h.authorize(c, p.AccountSID, usage.RoleFinance, usage.RoleAdmin); err != nil {
		return err
	}
	m := usage.MonthOf(h.now())
	rows, err := h.store.AccountsMonth(c.Request().Context(), m)
	if err != nil {
		return err
	}
	if err := h.setNav(c, "", m.String(), "accounts"); err != nil {
		return err
	}
	return h.render(c, http.StatusOK, "accounts", accountsPage{Month: m.String(), Rows: rows})
}

// monthQuery reads ?month=YYYY-MM, by default the current UTC month.
func (h *Handler) monthQuery(c echo.Context) (usage.Month, error) {
	v := c.QueryParam("month")
	if v == "" {
		return usage.MonthOf(h.now()), nil
	}
	m, err := usage.ParseMonth(v)
	if err != nil {
		return usage.Month{}, usage.Invalid("month", "must be YYYY-MM, not %q", v)
	}
	return m, nil
}

// report is the API's choice of report: the stored version asked for,
// else the latest stored version, else the figures computed now.
func (h *Handler) report(c echo.Context, accountSID string, m usage.Month, version *int) (usage.Report, error) {
	ctx := c.Request().Context()
	r, err := h.store.Version(ctx, accountSID, m, version)
	if err == nil || version != nil || !errors.Is(err, usage.ErrNotFound) {
		return r, err
	}
	return h.store.ProvisionalReport(ctx, accountSID, m)
}

// reportView is a report as the API renders it, with its billing read back
// from the API's own JSON, so every amount is the API's string.
type reportView struct {
	reports.Report
	Bill *billView
}

type billView struct {
	Currency      string `json:"currency"`
	FreeUsers     int64  `json:"free_users"`
	BillableUsers int64  `json:"billable_users"`
	Amount        string `json:"amount"`
	Lines         []struct {
		From      int64  `json:"from"`
		To        int64  `json:"to"`
		Users     int64  `json:"users"`
		UnitPrice string `json:"unit_price"`
		Amount    string `json:"amount"`
	} `json:"lines"`
}

func newReportView(r usage.Report) (reportView, error) {
	out, err := reports.NewReport(r)
	if err != nil {
		return reportView{}, err
	}
	v := reportView{Report: out}
	if out.Billing != nil {
		b, err := json.Marshal(out.Billing)
		if err != nil {
			return reportView{}, fmt.Errorf("billing of %s %s: %w", r.AccountSID, r.Month, err)
		}
		v.Bill = new(billView)
		if err := json.Unmarshal(b, v.Bill); err != nil {
			return reportView{}, fmt.Errorf("billing of %s %s: %w", r.AccountSID, r.Month, err)
		}
	}
	return v, nil
}

type monthPage struct {
	AccountSID string
	Month      string
	Prev, Next string
	Report     reportView
	Chart      chart
	// Alerts is the account's usage alerts, for admins only (nil else).
	Alerts *alertsView
}

// accountMonth is an account's month: the report's figures, one row per
// service, the chart of the 13 months ending with it and, for admins, the
// account's usage alerts with their newest webhook.
func (h *Handler) accountMonth(c echo.Context) error {
	account := c.Param("account_sid")
	if err := h.authorize(c, account, usage.RoleFinance, usage.RoleAdmin); err != nil {
		return err
	}
	m, err := h.monthQuery(c)
	if err != nil {
		return err
	}
	r, err := h.report(c, account, m, nil)
	if err != nil {
		return err
	}
	rv, err := newReportView(r)
	if err != nil {
		return err
	}
	months, err := h.store.Months(c.Request().Context(), account)
	if err != nil {
		return err
	}
	as, err := h.accountAlerts(c, account)
	if err != nil {
		return err
	}
	if err := h.setNav(c, account, m.String(), "month"); err != nil {
		return err
	}
	return h.render(c, http.StatusOK, "month", monthPage{AccountSID: account, Month: m.String(),
		Prev: m.Prev().String(), Next: m.Next().String(), Report: rv, Chart: newChart(m, usage.MonthOf(h.now()), months),
		Alerts: as})
}
