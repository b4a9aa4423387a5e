package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/tallyhq/tally/internal/alerts"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// AlertsConfig is what the alerts routes (CONTRACT §14) are built from.
type AlertsConfig struct {
	// AllowPrivate accepts webhook URLs that are http or whose host is a
	// private, loopback or link-local address
	// (TALLY_WEBHOOK_ALLOW_PRIVATE=1, for development).
	AllowPrivate bool
	// Metrics, when set, is served on /metrics and counts the alerts that
	// fire on creation.
	Metrics *alerts.Metrics
	// Resolver resolves webhook hosts at creation; nil is the system's.
	Resolver alerts.Resolver
}

// alertState is what the alerts routes share.
type alertState struct {
	cfg  AlertsConfig
	eval *alerts.Evaluator
}

// setupAlerts keeps the alerts' configuration and registers their metrics.
func (s *Server) setupAlerts(cfg AlertsConfig) {
	s.alerts.cfg = cfg
	s.alerts.eval = &alerts.Evaluator{Store: s.store, Now: s.now, Metrics: cfg.Metrics, Log: s.log}
	if cfg.Metrics != nil {
		s.metrics.registry.MustRegister(cfg.Metrics)
	}
}

// alertRoutes declares the routes of §14 with v1, the routes' helper.
func (s *Server) alertRoutes(v1 func(method, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc)) {
	v1(http.MethodPost, "/accounts/:account_sid/alerts", s.createAlert)
	v1(http.MethodGet, "/accounts/:account_sid/alerts", s.listAlerts)
	v1(http.MethodGet, "/accounts/:account_sid/alerts/:alert_sid", s.getAlert)
	v1(http.MethodDelete, "/accounts/:account_sid/alerts/:alert_sid", s.deleteAlert)
	v1(http.MethodGet, "/accounts/:account_sid/alerts/:alert_sid/deliveries", s.listDeliveries)
}

type alertJSON struct {
	SID           string          `json:"sid"`
	FriendlyName  string          `json:"friendly_name"`
	Metric        string          `json:"metric"`
	Threshold     json.RawMessage `json:"threshold"`
	WebhookURL    string          `json:"webhook_url"`
	SigningSecret string          `json:"signing_secret,omitempty"`
	CreatedAt     time.Time       `json:"created_at"`
}

func toAlertJSON(a postgres.Alert) alertJSON {
	return alertJSON{SID: a.SID, FriendlyName: a.FriendlyName, Metric: a.Metric,
		Threshold: alerts.JSONValue(a.Metric, a.Threshold), WebhookURL: a.WebhookURL, CreatedAt: a.CreatedAt.UTC()}
}

type createAlertRequest struct {
	FriendlyName string          `json:"friendly_name"`
	Metric       string          `json:"metric"`
	Threshold    json.RawMessage `json:"threshold"`
	WebhookURL   string          `json:"webhook_url"`
}

func (s *Server) createAlert(c echo.Context) error {
	account := c.Param("account_sid")
	if err := s.authorize(c, account, usage.RoleAdmin); err != nil {
		return err
	}
	var req createAlertRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	var errs []usage.FieldError
	add := func(err error) {
		var verr *usage.ValidationError
		if errors.As(err, &verr) {
			errs = append(errs, verr.Errors...)
		}
	}
	if len(req.FriendlyName) > 256 || !utf8.ValidString(req.FriendlyName) || strings.IndexByte(req.FriendlyName, 0) >= 0 {
		add(usage.Invalid("friendly_name", "must be at most 256 bytes of UTF-8 text"))
	}
	a := postgres.Alert{AccountSID: account, SID: alerts.NewAlertSID(), FriendlyName: req.FriendlyName,
		Metric: req.Metric, WebhookURL: req.WebhookURL}
	switch req.Metric {
	case postgres.MetricActiveUsers, postgres.MetricAmount:
		t, err := alerts.ParseThreshold(req.Metric, req.Threshold)
		add(err)
		a.Threshold = t
	default:
		add(usage.Invalid("metric", `must be "active_users" or "amount"`))
	}
	add(alerts.CheckURL(ctx, req.WebhookURL, s.alerts.cfg.AllowPrivate, s.alerts.cfg.Resolver))
	if len(errs) > 0 {
		return &usage.ValidationError{Errors: errs}
	}
	secret := alerts.NewSigningSecret()
	a, err := s.store.CreateAlert(ctx, a, s.box.Seal(secret, a.SID))
	if errors.Is(err, postgres.ErrTooManyAlerts) {
		return problem(http.StatusUnprocessableEntity, "too-many-alerts", "Too many alerts",
			fmt.Sprintf("account %s already has %d alerts, the most an account may have; delete one before creating another",
				account, postgres.MaxAlertsPerAccount))
	}
	if err != nil {
		return err
	}
	// An alert created past its threshold fires now; if this fails, the
	// background evaluation fires it within its interval.
	if _, err := s.alerts.eval.EvaluateAccount(ctx, account); err != nil {
		s.log.WarnContext(ctx, "evaluate new alert", "request_id", requestID(c), "alert_sid", a.SID, "err", err)
	}
	out := toAlertJSON(a)
	out.SigningSecret = secret
	return c.JSON(http.StatusCreated, out)
}

func (s *Server) listAlerts(c echo.Context) error {
	account := c.Param("account_sid")
	if err := s.authorize(c, account, usage.RoleAdmin); err != nil {
		return err
	}
	as, err := s.store.Alerts(c.Request().Context(), account)
	if err != nil {
		return err
	}
	out := struct {
		Alerts []alertJSON `json:"alerts"`
	}{Alerts: make([]alertJSON, 0, len(as))}
	for _, a := range as {
		out.Alerts = append(out.Alerts, toAlertJSON(a))
	}
	return c.JSON(http.StatusOK, out)
}

// alertScope authorizes an admin of the account and checks the alert SID's
// form.
func (s *Server) alertScope(c echo.Context) (account, sid string, err error) {
	account, sid = c.Param("account_sid"), c.Param("alert_sid")
	if err = s.authorize(c, account, usage.RoleAdmin); err != nil {
		return
	}
	if !alerts.IsAlertSID(sid) {
		err = fmt.Errorf("alert %q: %w", sid, usage.ErrNotFound)
	}
	return
}

func (s *Server) getAlert(c echo.Context) error {
	account, sid, err := s.alertScope(c)
	if err != nil {
		return err
	}
	a, err := s.store.Alert(c.Request().Context(), account, sid)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toAlertJSON(a))
}

func (s *Server) deleteAlert(c echo.Context) error {
	account, sid, err := s.alertScope(c)
	if err != nil {
		return err
	}
	if err := s.store.DeleteAlert(c.Request().Context(), account, sid); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type deliveryJSON struct {
	ID             string     `json:"id"`
	Month          string     `json:"month"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	LastStatusCode *int       `json:"last_status_code"`
	LastError      *string    `json:"last_error"`
	NextAttemptAt  *time.Time `json:"next_attempt_at"`
	DeliveredAt    *time.Time `json:"delivered_at"`
}

func (s *Server) listDeliveries(c echo.Context) error {
	account, sid, err := s.alertScope(c)
	if err != nil {
		return err
	}
	ds, err := s.store.AlertDeliveries(c.Request().Context(), account, sid)
	if err != nil {
		return err
	}
	out := struct {
		Deliveries []deliveryJSON `json:"deliveries"`
	}{Deliveries: make([]deliveryJSON, 0, len(ds))}
	for _, d := range ds {
		next := d.NextAttemptAt
		if d.Status != postgres.DeliveryPending {
			next = nil
		}
		out.Deliveries = append(out.Deliveries, deliveryJSON{ID: d.ID, Month: d.Month.String(), Status: d.Status,
			Attempts: d.Attempts, LastStatusCode: d.LastStatusCode, LastError: d.LastError, NextAttemptAt: next,
			DeliveredAt: d.DeliveredAt})
	}
	return c.JSON(http.StatusOK, out)
}
