// Package pricing prices a month's active users with an account's rate card,
// in exact decimals. It is pure (no I/O, no database), so that what renders
// or checks a report (reports/, the API, alerts) can price one without
// depending on the store the monthly job runs on.
package pricing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"

	"github.com/shopspring/decimal"

	"github.com/tallyhq/tally/internal/usage"
)

// RateCard is an account's price list (CONTRACT §6). Prices are exact
// decimals, written in JSON as strings ("0.05"), because a float cannot hold
// 0.05 and an invoice must add up to the cent.
type RateCard struct {
	Currency  string `json:"currency"`   // ISO 4217 code: three upper-case letters
	FreeUsers int64  `json:"free_users"` // the users numbered 1…FreeUsers cost nothing
	Tiers     []Tier `json:"tiers"`
}

// Tier prices the users numbered from the previous tier's UpTo+1 (from 1 for
// the first tier) up to its own UpTo, inclusive. Numbers are absolute, not
// counted after the free users, so that a card reads the same whatever the
// free allowance. A nil UpTo (JSON null) has no bound; Validate requires it on
// the last tier and only there, so that every user has exactly one price.
type Tier struct {
	UpTo      *int64          `json:"up_to"`
	UnitPrice decimal.Decimal `json:"unit_price"`
}

// MarshalJSON writes the unit price as a string with the decimals it was
// given ("0.050" stays "0.050"), whatever the decimal package's global
// formatting switches say: a stored card must read back exactly as written.
func (t Tier) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		UpTo      *int64 `json:"up_to"`
		UnitPrice string `json:"unit_price"`
	}{t.UpTo, asGiven(t.UnitPrice)})
}

// UnmarshalJSON accepts a unit price only as a JSON string in plain decimal
// notation. A JSON number would have passed through a float somewhere on the
// client's side, and an exponent ("1e-999999999") would let one short string
// expand to gigabytes when rendered. Unknown fields are refused even when the
// caller's decoder allows them: a misspelt "upto" would otherwise leave the
// tier silently unbounded. The json package's own errors are returned as they
// are, so that callers can still tell them apart by type.
func (t *Tier) UnmarshalJSON(b []byte) error {
	var raw struct {
		UpTo      *int64          `json:"up_to"`
		UnitPrice json.RawMessage `json:"unit_price"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	var s string
	if len(raw.UnitPrice) == 0 || raw.UnitPrice[0] != '"' || json.Unmarshal(raw.UnitPrice, &s) != nil {
		return usage.Invalid("unit_price", `must be a decimal string such as "0.05", not %s`, describe(raw.UnitPrice))
	}
	if !plainDecimal(s) {
		return usage.Invalid("unit_price", "%q is not a plain decimal such as \"0.05\"", s)
	}
	d, err := decimal.NewFromString(s)
	if err != nil { // unreachable after plainDecimal, kept so a parser change cannot slip by
		return usage.Invalid("unit_price", "%q is not a decimal: %v", s, err)
	}
	t.UpTo, t.UnitPrice = raw.UpTo, d
	return nil
}

// describe names what stood where a unit price was expected, for the message.
func describe(raw json.RawMessage) string {
	switch {
	case len(raw) == 0:
		return "missing"
	case raw[0] == 'n':
		return "null"
	case raw[0] == '"':
		return "a malformed string"
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		return "a JSON number"
	case raw[0] == 't' || raw[0] == 'f':
		return "a JSON boolean"
	case raw[0] == '[':
		return "a JSON array"
	}
	return "a JSON object"
}

// plainDecimal reports whether s is an optional minus, digits, and an
// optional point followed by digits: the form the contract shows.
func plainDecimal(s string) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	digits := func(s string) int {
		n := 0
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		return n
	}
	n := digits(s)
	if n == 0 {
		return false
	}
	s = s[n:]
	if s == "" {
		return true
	}
	return s[0] == '.' && len(s) > 1 && digits(s[1:]) == len(s)-1
}

// Validate returns a *usage.ValidationError listing every problem of the card
// at once, so that a finance admin can fix the card in one round trip.
// Currency is checked for its shape only: an unknown but well-formed code is
// priced with two decimals (see MinorUnits).
func (rc RateCard) Validate() error {
	var errs []usage.FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, usage.FieldError{Index: -1, Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if !isCurrencyCode(rc.Currency) {
		add("currency", "must be an ISO 4217 code of three upper-case letters such as USD, not %q", rc.Currency)
	}
	if rc.FreeUsers < 0 {
		add("free_users", "must not be negative, got %d", rc.FreeUsers)
	}
	if len(rc.Tiers) == 0 {
		add("tiers", "must hold at least one tier")
	}
	var prev int64 // the previous bounded tier's up_to; 0 before the first
	for i, t := range rc.Tiers {
		f := fmt.Sprintf("tiers[%d]", i)
		if t.UnitPrice.IsNegative() {
			add(f+".unit_price", "must not be negative, got %s", asGiven(t.UnitPrice))
		}
		last := i == len(rc.Tiers)-1
		switch {
		case t.UpTo == nil && !last:
			add(f+".up_to", "only the last tier may be unbounded (null)")
		case t.UpTo == nil:
			// The unbounded last tier: what every card must end with.
		case last:
			add(f+".up_to", "the last tier must be unbounded (null) so that every user has a price")
		case *t.UpTo < 1:
			add(f+".up_to", "must be a user number of at least 1, got %d", *t.UpTo)
		case *t.UpTo <= prev:
			add(f+".up_to", "must be greater than the previous tier's up_to %d, got %d", prev, *t.UpTo)
		default:
			prev = *t.UpTo
		}
	}
	if len(errs) > 0 {
		return &usage.ValidationError{Errors: errs}
	}
	return nil
}

func isCurrencyCode(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// Billing is the "billing" member of a report (CONTRACT §6). Its MarshalJSON
// renders every amount with the currency's decimals, so Go code reads the
// exact values and clients read "40.00" rather than "40".
type Billing struct {
	Currency      string          `json:"currency"`
	FreeUsers     int64           `json:"free_users"`
	BillableUsers int64           `json:"billable_users"`
	Amount        decimal.Decimal `json:"amount"` // the exact sum of the lines, rounded half-up once to the minor unit
	Lines         []Line          `json:"lines"`
}

// Line is what one tier bills: the users it covers after the free ones.
type Line struct {
	From      int64           `json:"from"` // first user number of the line
	To        int64           `json:"to"`   // last user number of the line, inclusive
	Users     int64           `json:"users"`
	UnitPrice decimal.Decimal `json:"unit_price"` // as on the card
	Amount    decimal.Decimal `json:"amount"`     // Users × UnitPrice, exact: rounding a line would let the total drift from the lines
}

// Price bills activeUsers users under rc. Users are numbered 1…activeUsers;
// the first rc.FreeUsers are free; each tier prices the remaining users
// numbered up to its UpTo. A tier with no such user gets no line. Line
// amounts are exact and the total is rounded half-up once, at the end, to
// the currency's minor unit, because rounding each line first can move the
// total by a cent per line.
//
// Price expects a card that passed Validate. On any other card it still
// neither panics nor bills a user twice, but users past a bounded last tier
// are not billed and the lines then add up to fewer than BillableUsers.
func Price(activeUsers int64, rc RateCard) Billing {
	free := max(rc.FreeUsers, 0)
	b := Billing{Currency: rc.Currency, FreeUsers: rc.FreeUsers, Lines: []Line{}}
	total := decimal.Zero
	if activeUsers > free {
		b.BillableUsers = activeUsers - free
		next := free + 1 // the first user number not yet billed; no overflow since free < activeUsers
		for _, t := range rc.Tiers {
			upper := activeUsers
			if t.UpTo != nil && *t.UpTo < upper {
				upper = *t.UpTo
			}
			if upper < next {
				continue // the tier ends among the free users or earlier tiers
			}
			users := upper - next + 1
			amount := t.UnitPrice.Mul(decimal.NewFromInt(users))
			b.Lines = append(b.Lines, Line{From: next, To: upper, Users: users, UnitPrice: t.UnitPrice, Amount: amount})
			total = total.Add(amount)
			if upper == activeUsers {
				break // everyone is billed; upper+1 could overflow at MaxInt64
			}
			next = upper + 1
		}
	}
	b.Amount = roundHalfUp(total, MinorUnits(rc.Currency))
	return b
}

// roundHalfUp rounds d to places decimals, a half going up. The decimal
// package rounds a half away from zero, which is the same for the
// non-negative amounts that valid cards produce.
func roundHalfUp(d decimal.Decimal, places int32) decimal.Decimal {
	return d.Round(places)
}

// MinorUnits returns the number of decimals of a currency's minor unit, as
// ISO 4217 lists them:
//
//   - 0: BIF, CLP, DJF, GNF, ISK, JPY, KMF, KRW, PYG, RWF, UGX, UYI, VND, VUV,
//     XAF, XOF, XPF;
//   - 3: BHD, IQD, JOD, KWD, LYD, OMR, TND;
//   - 4: CLF, UYW (units of account, listed for completeness);
//   - 2: every other code, known or not, since most currencies have cents
//     and a card's currency is checked only for its shape.
func MinorUnits(currency string) int32 {
	switch currency {
	case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF",
		"UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0
	case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
		return 3
	case "CLF", "UYW":
		return 4
	}
	return 2
}

// MarshalJSON writes the total with exactly the currency's decimals ("47.02",
// "5.00", JPY "47"), each line's exact amount with at least that many
// ("40.00", "0.0375"), and unit prices as on the card, all as strings and
// independent of the decimal package's global formatting switches.
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
		lines[i] = line{From: l.From, To: l.To, Users: l.Users, UnitPrice: asGiven(l.UnitPrice), Amount: atLeast(l.Amount, places)}
	}
	return json.Marshal(struct {
		Currency      string `json:"currency"`
		FreeUsers     int64  `json:"free_users"`
		BillableUsers int64  `json:"billable_users"`
		Amount        string `json:"amount"`
		Lines         []line `json:"lines"`
	}{b.Currency, b.FreeUsers, b.BillableUsers, b.Amount.StringFixed(places), lines})
}

// asGiven renders d with the decimals it carries, so a price parsed from
// "0.050" is written back as "0.050".
func asGiven(d decimal.Decimal) string {
	return d.StringFixed(max(-d.Exponent(), 0))
}

// atLeast renders d exactly, without trailing zeros beyond places decimals
// and padded to places: 40 → "40.00", 0.0375 → "0.0375", 40.000 → "40.00".
func atLeast(d decimal.Decimal, places int32) string {
	coef, exp := d.Coefficient(), d.Exponent()
	ten, r := big.NewInt(10), new(big.Int)
	for exp < 0 && coef.Sign() != 0 {
		q, _ := new(big.Int).QuoRem(coef, ten, r)
		if r.Sign() != 0 {
			break
		}
		coef, exp = q, exp+1
	}
	if coef.Sign() == 0 {
		exp = 0
	}
	return d.StringFixed(max(-exp, places)) // never fewer decimals than d has, so never rounds
}
