package console

import (
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/tallyhq/tally/internal/alerts"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// alertsView is the account page's table of usage alerts (CONTRACT §14):
// each alert with its newest webhook, so that an admin sees at a glance
// whether the receiver gets them, and if not, why and when tally tries
// again.
type alertsView struct {
	Rows []alertRow
	Max  int
}

// alertRow is one alert. ThresholdText is its threshold as the API writes
// it (an integer, or the amount's decimal string without quotes).
type alertRow struct {
	postgres.Alert
	ThresholdText string
	Last          *postgres.AlertDelivery
}

// accountAlerts returns the alerts of the account for the page, or nil
// when the signed-in key may not list them: like GET …/alerts, admins only.
func (h *Handler) accountAlerts(c echo.Context, accountSID string) (*alertsView, error) {
	if principal(c).Role != usage.RoleAdmin {
		return nil, nil
	}
	as, err := h.store.AlertsWithLastDelivery(c.Request().Context(), accountSID)
	if err != nil {
		return nil, err
	}
	v := &alertsView{Rows: make([]alertRow, len(as)), Max: postgres.MaxAlertsPerAccount}
	for i, a := range as {
		v.Rows[i] = alertRow{Alert: a.Alert, Last: a.Last,
			ThresholdText: strings.Trim(string(alerts.JSONValue(a.Metric, a.Threshold)), `"`)}
	}
	return v, nil
}
