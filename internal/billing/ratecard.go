package billing

import (
	"encoding/json"
	"fmt"

	"github.com/shopspring/decimal"

	"github.com/tallyhq/tally/internal/usage"
)

// RateCard is an account's price list (CONTRACT §6). Unit prices are exact
// decimals, written as JSON strings ("0.05"), never floats.
type RateCard struct {
	Currency  string `json:"currency"`
	FreeUsers int64  `json:"free_users"`
	Tiers     []Tier `json:"tiers"`
}

// Tier prices the users numbered up to UpTo (inclusive, absolute), from the
// previous tier's UpTo+1; a nil UpTo has no bound and must come last.
type Tier struct {
	UpTo      *int64          `json:"up_to"`
	UnitPrice decimal.Decimal `json:"unit_price"`
}

// UnmarshalJSON refuses a unit price written as a JSON number: a float on the
// way in would defeat exact prices.
func (t *Tier) UnmarshalJSON(b []byte) error {
	var raw struct {
		UpTo      *int64          `json:"up_to"`
		UnitPrice json.RawMessage `json:"unit_price"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if len(raw.UnitPrice) == 0 || raw.UnitPrice[0] != '"' {
		return usage.Invalid("unit_price", "must be a decimal string such as \"0.05\"")
	}
	var s string
	if err := json.Unmarshal(raw.UnitPrice, &s); err != nil {
		return err
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return usage.Invalid("unit_price", "%q is not a decimal", s)
	}
	t.UpTo, t.UnitPrice = raw.UpTo, d
	return nil
}

// Validate lists every problem of the card.
func (rc RateCard) Validate() error {
	var errs []usage.FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, usage.FieldError{Index: -1, Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if len(rc.Currency) != 3 || !isUpper(rc.Currency) {
		add("currency", "must be an ISO 4217 code such as USD")
	}
	if rc.FreeUsers < 0 {
		add("free_users", "must not be negative")
	}
	if len(rc.Tiers) == 0 {
		add("tiers", "must hold at least one tier")
	}
	var prev int64
	for i, t := range rc.Tiers {
		f := fmt.Sprintf("tiers[%d]", i)
		if t.UnitPrice.IsNegative() {
			add(f+".unit_price", "must not be negative")
		}
		last := i == len(rc.Tiers)-1
		switch {
		case t.UpTo == nil && !last:
			add(f+".up_to", "only the last tier may be unbounded (null)")
		case t.UpTo == nil:
		case last:
			add(f+".up_to", "the last tier must be unbounded (null) so that every user has a price")
		case *t.UpTo <= prev:
			add(f+".up_to", "must be greater than %d", prev)
		default:
			prev = *t.UpTo
		}
	}
	if len(errs) > 0 {
		return &usage.ValidationError{Errors: errs}
	}
	return nil
}

func isUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// Billing is the billing member of a report.
type Billing struct {
	Currency      string
	FreeUsers     int64
	BillableUsers int64
	Amount        decimal.Decimal // rounded half-up to the currency's minor unit
	Lines         []Line
}

// Line is what one tier bills.
type Line struct {
	From      int64 // first user number of the line
	To        int64 // last user number of the line
	Users     int64
	UnitPrice decimal.Decimal
	Amount    decimal.Decimal // exact: Users × UnitPrice, never rounded
}

// Price bills activeUsers users: they are numbered 1…activeUsers, the first
// FreeUsers are free, and each tier prices the users numbered up to its
// UpTo. Line amounts are exact; the total is rounded half-up once, at the
// end, to the currency's minor unit.
func Price(activeUsers int64, rc RateCard) Billing {
	b := Billing{Currency: rc.Currency, FreeUsers: rc.FreeUsers, Lines: []Line{}}
	b.BillableUsers = max(activeUsers-rc.FreeUsers, 0)
	total := decimal.Zero
	var lower int64 // users numbered up to lower are covered by earlier tiers
	for _, t := range rc.Tiers {
		upper := activeUsers
		if t.UpTo != nil {
			upper = min(*t.UpTo, activeUsers)
		}
		from := max(lower, rc.FreeUsers) + 1
		if upper >= from {
			users := upper - from + 1
			amt := t.UnitPrice.Mul(decimal.NewFromInt(users))
			b.Lines = append(b.Lines, Line{From: from, To: upper, Users: users, UnitPrice: t.UnitPrice, Amount: amt})
			total = total.Add(amt)
		}
		if t.UpTo == nil || *t.UpTo >= activeUsers {
			break
		}
		lower = *t.UpTo
	}
	b.Amount = roundHalfUp(total, MinorUnits(rc.Currency))
	return b
}

func decimals(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return len(s) - i - 1
		}
	}
	return 0
}

// roundHalfUp rounds away from zero at the half (amounts are never negative).
func roundHalfUp(d decimal.Decimal, places int32) decimal.Decimal {
	return d.Round(places) // shopspring rounds half away from zero
}

// MinorUnits returns the decimals of a currency's minor unit (ISO 4217): 0
// for currencies without one (JPY, KRW, …), 3 for the dinars and rials that
// have three, 2 for every other.
func MinorUnits(currency string) int32 {
	switch currency {
	case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0
	case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
		return 3
	}
	return 2
}

// MarshalJSON renders amounts with exactly the currency's decimals ("40.00")
// and unit prices as given, all as strings.
func (b Billing) MarshalJSON() ([]byte, error) {
	places := MinorUnits(b.Currency)
	type line struct {
		From      int64  `json:"from"`
		To        int64  `json:"to"`
		Users     int64  `json:"users"`
		UnitPrice string `json:"unit_price"`
		Amount    string `json:"amount"`
	}
	lines := make([]line, len(b.Lines))
	for i, l := range b.Lines {
		amt := l.Amount.String()
		if decimals(amt) < int(places) { // pad to the currency's decimals, never cut
			amt = l.Amount.StringFixed(places)
		}
		lines[i] = line{From: l.From, To: l.To, Users: l.Users, UnitPrice: l.UnitPrice.String(), Amount: amt}
	}
	return json.Marshal(struct {
		Currency      string `json:"currency"`
		FreeUsers     int64  `json:"free_users"`
		BillableUsers int64  `json:"billable_users"`
		Amount        string `json:"amount"`
		Lines         []line `json:"lines"`
	}{b.Currency, b.FreeUsers, b.BillableUsers, b.Amount.StringFixed(places), lines})
}
