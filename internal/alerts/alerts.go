// Package alerts tells an account when its month's usage reaches a
// threshold (CONTRACT §14): the Evaluator compares the current UTC month's
// figures with each alert and fires an alert at most once per month,
// writing the firing and its webhook into a durable outbox in one
// transaction; the Worker sends the outbox's webhooks, signed, at least
// once, with retries and backoff, to public HTTPS addresses only.
//
// Nothing here runs on the ingest path: evaluation reads the rollup on its
// own schedule, and delivery reads only the outbox.
package alerts

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tallyhq/tally/internal/billing/pricing"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
	"github.com/tallyhq/tally/reports"
)

// EventType is the type of every webhook tally sends for an alert.
const EventType = "usage.threshold_reached"

// SignatureHeader carries a webhook's signature.
const SignatureHeader = "Tally-Signature"

// NewAlertSID returns "AL" and 32 random lowercase hex digits.
func NewAlertSID() string { return "AL" + randomHex(16) }

// NewDeliveryID returns "WH" and 32 random lowercase hex digits.
func NewDeliveryID() string { return "WH" + randomHex(16) }

// IsAlertSID reports whether s has the form of an alert SID.
func IsAlertSID(s string) bool {
	if len(s) != 34 || s[:2] != "AL" {
		return false
	}
	for i := 2; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// NewSigningSecret returns a fresh signing secret: "whsec_" and 32
// characters of [A-Za-z0-9].
func NewSigningSecret() string { return "whsec_" + usage.NewSecret() }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Sign returns the Tally-Signature header value of body sent at t:
// "t=<unix seconds>,v1=<lowercase hex HMAC-SHA256 of "<t>.<body>">".
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a Tally-Signature header against body and secret, with a
// tolerance on its timestamp: what a receiver does (docs/alerts.md).
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("signature: no valid timestamp")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("signature: timestamp outside the tolerance")
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range sigs {
		if got, err := hex.DecodeString(s); err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("signature: no v1 signature matches")
}

// maxAmountLen bounds an amount threshold's length.
const maxAmountLen = 40

// ParseThreshold reads an alert's threshold as the contract writes it: a
// positive JSON integer for active_users, a positive decimal string
// ("250.00") for amount.
func ParseThreshold(metric string, raw json.RawMessage) (decimal.Decimal, error) {
	s := strings.TrimSpace(string(raw))
	switch metric {
	case postgres.MetricActiveUsers:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return decimal.Decimal{}, usage.Invalid("threshold", "must be a positive integer (a JSON number) of active users, not %.40s", describe(s))
		}
		return decimal.NewFromInt(n), nil
	case postgres.MetricAmount:
		var str string
		if !strings.HasPrefix(s, `"`) || json.Unmarshal(raw, &str) != nil {
			return decimal.Decimal{}, usage.Invalid("threshold", `must be a positive decimal string such as "250.00", not %.40s`, describe(s))
		}
		if len(str) > maxAmountLen || !plainDecimal(str) {
			return decimal.Decimal{}, usage.Invalid("threshold", `%.40q is not a plain decimal such as "250.00"`, str)
		}
		d, err := decimal.NewFromString(str)
		if err != nil || !d.IsPositive() {
			return decimal.Decimal{}, usage.Invalid("threshold", "must be positive, got %q", str)
		}
		return d, nil
	}
	return decimal.Decimal{}, usage.Invalid("threshold", "depends on metric, which is not valid")
}

func describe(s string) string {
	if s == "" {
		return "missing"
	}
	return s
}

// plainDecimal reports whether s is digits with an optional point followed
// by digits.
func plainDecimal(s string) bool {
	intPart, frac, dot := strings.Cut(s, ".")
	digits := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
		return s != ""
	}
	return digits(intPart) && (!dot || digits(frac))
}

// JSONValue renders a threshold or a value of metric as the contract
// writes it: a JSON integer for active_users, a decimal string for amount.
func JSONValue(metric string, d decimal.Decimal) json.RawMessage {
	if metric == postgres.MetricActiveUsers {
		return json.RawMessage(d.String())
	}
	b, _ := json.Marshal(d.StringFixed(max(-d.Exponent(), 0)))
	return b
}

// Value returns the figure an alert on metric compares with its threshold,
// as the month's report has it: its active_users, or its billing amount
// under its rate card. ok is false for an amount without a rate card.
func Value(metric string, f postgres.AlertFigures) (v decimal.Decimal, ok bool, err error) {
	switch metric {
	case postgres.MetricActiveUsers:
		return decimal.NewFromInt(f.ActiveUsers), true, nil
	case postgres.MetricAmount:
		if f.RateCard == nil {
			return decimal.Decimal{}, false, nil
		}
		r, err := reports.NewReport(usage.Report{Figures: usage.Figures{ActiveUsers: f.ActiveUsers}, RateCard: f.RateCard})
		if err != nil {
			return decimal.Decimal{}, false, err
		}
		return r.Billing.Amount, true, nil
	}
	return decimal.Decimal{}, false, fmt.Errorf("unknown metric %q", metric)
}

// Body is the JSON body of a webhook.
type Body struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	AlertSID   string          `json:"alert_sid"`
	AccountSID string          `json:"account_sid"`
	Month      string          `json:"month"`
	Metric     string          `json:"metric"`
	Threshold  json.RawMessage `json:"threshold"`
	Value      json.RawMessage `json:"value"`
	ReachedAt  time.Time       `json:"reached_at"`
}

// amountValue renders an amount with its currency's decimals, as the
// report writes it ("40.00").
func amountValue(v decimal.Decimal, card []byte) json.RawMessage {
	var rc pricing.RateCard
	_ = json.Unmarshal(card, &rc)
	b, _ := json.Marshal(v.StringFixed(pricing.MinorUnits(rc.Currency)))
	return b
}
