package pricing

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/tallyhq/tally/internal/usage"
)

func upTo(n int64) *int64 { return &n }

func card(currency string, free int64, tiers ...Tier) RateCard {
	return RateCard{Currency: currency, FreeUsers: free, Tiers: tiers}
}

func tier(up *int64, price string) Tier {
	return Tier{UpTo: up, UnitPrice: decimal.RequireFromString(price)}
}

// contractCard is the rate card of the example in CONTRACT §6.
var contractCard = card("USD", 200, tier(upTo(1000), "0.05"), tier(nil, "0.03"))

// TestPrice checks the billing member exactly as clients read it: the JSON,
// which shows both the arithmetic and the rendering of every amount.
func TestPrice(t *testing.T) {
	tests := []struct {
		name  string
		users int64
		rc    RateCard
		want  string
	}{
		{
			name: "contract example", users: 1234, rc: contractCard,
			want: `{"currency":"USD","free_users":200,"billable_users":1034,"amount":"47.02","lines":[` +
				`{"from":201,"to":1000,"users":800,"unit_price":"0.05","amount":"40.00"},` +
				`{"from":1001,"to":1234,"users":234,"unit_price":"0.03","amount":"7.02"}]}`,
		},
		{
			name: "free users above the count", users: 150, rc: contractCard,
			want: `{"currency":"USD","free_users":200,"billable_users":0,"amount":"0.00","lines":[]}`,
		},
		{
			name: "free users equal to the count", users: 200, rc: contractCard,
			want: `{"currency":"USD","free_users":200,"billable_users":0,"amount":"0.00","lines":[]}`,
		},
		{
			name: "no active users", users: 0, rc: card("USD", 0, tier(nil, "1")),
			want: `{"currency":"USD","free_users":0,"billable_users":0,"amount":"0.00","lines":[]}`,
		},
		{
			name: "one user past the free ones", users: 201, rc: contractCard,
			want: `{"currency":"USD","free_users":200,"billable_users":1,"amount":"0.05","lines":[` +
				`{"from":201,"to":201,"users":1,"unit_price":"0.05","amount":"0.05"}]}`,
		},
		{
			name: "zero free users", users: 3, rc: card("USD", 0, tier(nil, "1.5")),
			want: `{"currency":"USD","free_users":0,"billable_users":3,"amount":"4.50","lines":[` +
				`{"from":1,"to":3,"users":3,"unit_price":"1.5","amount":"4.50"}]}`,
		},
		{
			name: "user number equal to up_to stays in the lower tier", users: 1000, rc: contractCard,
			want: `{"currency":"USD","free_users":200,"billable_users":800,"amount":"40.00","lines":[` +
				`{"from":201,"to":1000,"users":800,"unit_price":"0.05","amount":"40.00"}]}`,
		},
		{
			name: "user number up_to+1 goes to the next tier", users: 1001, rc: contractCard,
			want: `{"currency":"USD","free_users":200,"billable_users":801,"amount":"40.03","lines":[` +
				`{"from":201,"to":1000,"users":800,"unit_price":"0.05","amount":"40.00"},` +
				`{"from":1001,"to":1001,"users":1,"unit_price":"0.03","amount":"0.03"}]}`,
		},
		{
			name: "free users end exactly at up_to", users: 1001, rc: card("USD", 1000, tier(upTo(1000), "0.05"), tier(nil, "0.03")),
			want: `{"currency":"USD","free_users":1000,"billable_users":1,"amount":"0.03","lines":[` +
				`{"from":1001,"to":1001,"users":1,"unit_price":"0.03","amount":"0.03"}]}`,
		},
		{
			name: "free users end inside the second tier", users: 1500,
			rc: card("USD", 1200, tier(upTo(1000), "0.05"), tier(upTo(2000), "0.03"), tier(nil, "0.01")),
			want: `{"currency":"USD","free_users":1200,"billable_users":300,"amount":"9.00","lines":[` +
				`{"from":1201,"to":1500,"users":300,"unit_price":"0.03","amount":"9.00"}]}`,
		},
		{
			name: "three tiers all used", users: 25, rc: card("USD", 5, tier(upTo(10), "1"), tier(upTo(20), "0.5"), tier(nil, "0.25")),
			want: `{"currency":"USD","free_users":5,"billable_users":20,"amount":"11.25","lines":[` +
				`{"from":6,"to":10,"users":5,"unit_price":"1","amount":"5.00"},` +
				`{"from":11,"to":20,"users":10,"unit_price":"0.5","amount":"5.00"},` +
				`{"from":21,"to":25,"users":5,"unit_price":"0.25","amount":"1.25"}]}`,
		},
		{
			name: "rounding half-up", users: 3, rc: card("USD", 0, tier(nil, "0.0125")),
			want: `{"currency":"USD","free_users":0,"billable_users":3,"amount":"0.04","lines":[` +
				`{"from":1,"to":3,"users":3,"unit_price":"0.0125","amount":"0.0375"}]}`,
		},
		{
			name: "half a cent rounds up", users: 1, rc: card("USD", 0, tier(nil, "0.005")),
			want: `{"currency":"USD","free_users":0,"billable_users":1,"amount":"0.01","lines":[` +
				`{"from":1,"to":1,"users":1,"unit_price":"0.005","amount":"0.005"}]}`,
		},
		{
			name: "just under half a cent rounds down", users: 1, rc: card("USD", 0, tier(nil, "0.0049")),
			want: `{"currency":"USD","free_users":0,"billable_users":1,"amount":"0.00","lines":[` +
				`{"from":1,"to":1,"users":1,"unit_price":"0.0049","amount":"0.0049"}]}`,
		},
		{
			// Rounding each line first would give 0.00 + 0.00 + 0.00.
			name: "rounded once at the end", users: 3, rc: card("USD", 0, tier(upTo(1), "0.004"), tier(upTo(2), "0.004"), tier(nil, "0.004")),
			want: `{"currency":"USD","free_users":0,"billable_users":3,"amount":"0.01","lines":[` +
				`{"from":1,"to":1,"users":1,"unit_price":"0.004","amount":"0.004"},` +
				`{"from":2,"to":2,"users":1,"unit_price":"0.004","amount":"0.004"},` +
				`{"from":3,"to":3,"users":1,"unit_price":"0.004","amount":"0.004"}]}`,
		},
		{
			name: "unit price keeps its trailing zeros", users: 800, rc: card("USD", 0, tier(nil, "0.050")),
			want: `{"currency":"USD","free_users":0,"billable_users":800,"amount":"40.00","lines":[` +
				`{"from":1,"to":800,"users":800,"unit_price":"0.050","amount":"40.00"}]}`,
		},
		{
			name: "free tier at price zero", users: 10, rc: card("USD", 0, tier(upTo(5), "0"), tier(nil, "2")),
			want: `{"currency":"USD","free_users":0,"billable_users":10,"amount":"10.00","lines":[` +
				`{"from":1,"to":5,"users":5,"unit_price":"0","amount":"0.00"},` +
				`{"from":6,"to":10,"users":5,"unit_price":"2","amount":"10.00"}]}`,
		},
		{
			name: "USD has two decimals", users: 1234, rc: contractCard,
			want: `{"currency":"USD","free_users":200,"billable_users":1034,"amount":"47.02","lines":[` +
				`{"from":201,"to":1000,"users":800,"unit_price":"0.05","amount":"40.00"},` +
				`{"from":1001,"to":1234,"users":234,"unit_price":"0.03","amount":"7.02"}]}`,
		},
		{
			name: "EUR has two decimals", users: 10, rc: card("EUR", 0, tier(nil, "0.5")),
			want: `{"currency":"EUR","free_users":0,"billable_users":10,"amount":"5.00","lines":[` +
				`{"from":1,"to":10,"users":10,"unit_price":"0.5","amount":"5.00"}]}`,
		},
		{
			name: "JPY has no decimals", users: 1234, rc: card("JPY", 200, tier(upTo(1000), "0.05"), tier(nil, "0.03")),
			want: `{"currency":"JPY","free_users":200,"billable_users":1034,"amount":"47","lines":[` +
				`{"from":201,"to":1000,"users":800,"unit_price":"0.05","amount":"40"},` +
				`{"from":1001,"to":1234,"users":234,"unit_price":"0.03","amount":"7.02"}]}`,
		},
		{
			name: "JPY rounds half-up to the yen", users: 1, rc: card("JPY", 0, tier(nil, "0.5")),
			want: `{"currency":"JPY","free_users":0,"billable_users":1,"amount":"1","lines":[` +
				`{"from":1,"to":1,"users":1,"unit_price":"0.5","amount":"0.5"}]}`,
		},
		{
			name: "KWD has three decimals", users: 3, rc: card("KWD", 0, tier(nil, "0.0125")),
			want: `{"currency":"KWD","free_users":0,"billable_users":3,"amount":"0.038","lines":[` +
				`{"from":1,"to":3,"users":3,"unit_price":"0.0125","amount":"0.0375"}]}`,
		},
		{
			name: "KWD pads to three decimals", users: 10, rc: card("KWD", 0, tier(nil, "0.5")),
			want: `{"currency":"KWD","free_users":0,"billable_users":10,"amount":"5.000","lines":[` +
				`{"from":1,"to":10,"users":10,"unit_price":"0.5","amount":"5.000"}]}`,
		},
		{
			name: "ten million users priced exactly", users: 10_000_000,
			rc: card("USD", 1000, tier(upTo(1_000_000), "0.0123"), tier(nil, "0.0071")),
			want: `{"currency":"USD","free_users":1000,"billable_users":9999000,"amount":"76187.70","lines":[` +
				`{"from":1001,"to":1000000,"users":999000,"unit_price":"0.0123","amount":"12287.70"},` +
				`{"from":1000001,"to":10000000,"users":9000000,"unit_price":"0.0071","amount":"63900.00"}]}`,
		},
		{
			// 9,999,999 × 0.0000001 = 0.9999999: a float would print 0.9999999000000001.
			name: "ten million users at a tiny price", users: 10_000_000, rc: card("USD", 1, tier(nil, "0.0000001")),
			want: `{"currency":"USD","free_users":1,"billable_users":9999999,"amount":"1.00","lines":[` +
				`{"from":2,"to":10000000,"users":9999999,"unit_price":"0.0000001","amount":"0.9999999"}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.rc.Validate(); err != nil {
				t.Fatalf("Validate() = %v, want a valid card", err)
			}
			b := Price(tt.users, tt.rc)
			raw, err := json.Marshal(b)
			if err != nil {
				t.Fatalf("json.Marshal(Price(%d, …)) error: %v", tt.users, err)
			}
			if got := string(raw); got != tt.want {
				t.Errorf("Price(%d, …) =\n%s\nwant\n%s", tt.users, got, tt.want)
			}
			var sum int64
			for _, l := range b.Lines {
				if l.Users != l.To-l.From+1 {
					t.Errorf("line %d-%d has users %d, want %d", l.From, l.To, l.Users, l.To-l.From+1)
				}
				sum += l.Users
			}
			if sum != b.BillableUsers {
				t.Errorf("lines bill %d users, want billable_users %d", sum, b.BillableUsers)
			}
		})
	}
}

// TestPriceAmountIsExactSum checks the Go values behind the JSON: line
// amounts unrounded, the total their sum rounded once.
func TestPriceAmountIsExactSum(t *testing.T) {
	b := Price(3, card("USD", 0, tier(upTo(1), "0.004"), tier(upTo(2), "0.004"), tier(nil, "0.004")))
	sum := decimal.Zero
	for _, l := range b.Lines {
		if got, want := l.Amount, decimal.RequireFromString("0.004"); !got.Equal(want) {
			t.Errorf("line %d amount = %s, want %s", l.From, got, want)
		}
		sum = sum.Add(l.Amount)
	}
	if got, want := b.Amount, sum.Round(2); !got.Equal(want) {
		t.Errorf("Amount = %s, want %s (the sum %s rounded once)", got, want, sum)
	}
}

// TestPriceInvalidCard checks that a card Validate refuses still cannot make
// Price panic or bill a user twice.
func TestPriceInvalidCard(t *testing.T) {
	tests := []struct {
		name      string
		users     int64
		rc        RateCard
		wantLines []Line
	}{
		{"no tiers", 10, card("USD", 0), []Line{}},
		{"decreasing up_to", 10, card("USD", 0, tier(upTo(5), "1"), tier(upTo(3), "2"), tier(nil, "3")), []Line{
			{From: 1, To: 5, Users: 5, UnitPrice: decimal.RequireFromString("1"), Amount: decimal.RequireFromString("5")},
			{From: 6, To: 10, Users: 5, UnitPrice: decimal.RequireFromString("3"), Amount: decimal.RequireFromString("15")},
		}},
		{"bounded last tier", 10, card("USD", 0, tier(upTo(4), "1")), []Line{
			{From: 1, To: 4, Users: 4, UnitPrice: decimal.RequireFromString("1"), Amount: decimal.RequireFromString("4")},
		}},
		{"negative free users", 2, card("USD", -5, tier(nil, "1")), []Line{
			{From: 1, To: 2, Users: 2, UnitPrice: decimal.RequireFromString("1"), Amount: decimal.RequireFromString("2")},
		}},
		{"maximum user count", 1<<63 - 1, card("USD", 1<<63-2, tier(nil, "1")), []Line{
			{From: 1<<63 - 1, To: 1<<63 - 1, Users: 1, UnitPrice: decimal.RequireFromString("1"), Amount: decimal.RequireFromString("1")},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Price(tt.users, tt.rc).Lines
			eq := func(a, b Line) bool {
				return a.From == b.From && a.To == b.To && a.Users == b.Users && a.UnitPrice.Equal(b.UnitPrice) && a.Amount.Equal(b.Amount)
			}
			if !slices.EqualFunc(got, tt.wantLines, eq) {
				t.Errorf("Price(%d, …).Lines = %v, want %v", tt.users, got, tt.wantLines)
			}
		})
	}
}

func TestMinorUnits(t *testing.T) {
	tests := []struct {
		currency string
		want     int32
	}{
		{"USD", 2}, {"EUR", 2}, {"GBP", 2}, {"CHF", 2}, {"ZZZ", 2}, // unknown codes default to 2
		{"JPY", 0}, {"KRW", 0}, {"VND", 0}, {"CLP", 0}, {"ISK", 0}, {"UGX", 0}, {"XAF", 0}, {"XOF", 0},
		{"BHD", 3}, {"KWD", 3}, {"OMR", 3}, {"JOD", 3}, {"TND", 3}, {"IQD", 3}, {"LYD", 3},
		{"CLF", 4},
	}
	for _, tt := range tests {
		t.Run(tt.currency, func(t *testing.T) {
			if got := MinorUnits(tt.currency); got != tt.want {
				t.Errorf("MinorUnits(%q) = %d, want %d", tt.currency, got, tt.want)
			}
		})
	}
}

func TestRateCardJSONRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"contract card", `{"currency":"USD","free_users":200,"tiers":[{"up_to":1000,"unit_price":"0.05"},{"up_to":null,"unit_price":"0.03"}]}`},
		{"trailing zeros kept", `{"currency":"EUR","free_users":0,"tiers":[{"up_to":null,"unit_price":"0.0500"}]}`},
		{"whole price", `{"currency":"JPY","free_users":5,"tiers":[{"up_to":10,"unit_price":"7"},{"up_to":null,"unit_price":"0"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rc RateCard
			if err := json.Unmarshal([]byte(tt.in), &rc); err != nil {
				t.Fatalf("json.Unmarshal error: %v", err)
			}
			if err := rc.Validate(); err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			out, err := json.Marshal(rc)
			if err != nil {
				t.Fatalf("json.Marshal error: %v", err)
			}
			if got := string(out); got != tt.in {
				t.Errorf("round trip = %s, want %s", got, tt.in)
			}
		})
	}
}

func TestRateCardJSONDecodeErrors(t *testing.T) {
	tests := []struct {
		name  string
		tier  string
		field string // the field a *usage.ValidationError names; "" for the json package's own errors
	}{
		{"number price", `{"up_to":null,"unit_price":0.05}`, "unit_price"},
		{"integer price", `{"up_to":null,"unit_price":5}`, "unit_price"},
		{"null price", `{"up_to":null,"unit_price":null}`, "unit_price"},
		{"missing price", `{"up_to":null}`, "unit_price"},
		{"not a decimal", `{"up_to":null,"unit_price":"abc"}`, "unit_price"},
		{"empty string", `{"up_to":null,"unit_price":""}`, "unit_price"},
		{"exponent", `{"up_to":null,"unit_price":"1e-2"}`, "unit_price"},
		{"leading plus", `{"up_to":null,"unit_price":"+1"}`, "unit_price"},
		{"bare point", `{"up_to":null,"unit_price":"1."}`, "unit_price"},
		{"no integer part", `{"up_to":null,"unit_price":".5"}`, "unit_price"},
		{"misspelt up_to", `{"upto":1000,"unit_price":"0.05"}`, ""},
		{"up_to as string", `{"up_to":"1000","unit_price":"0.05"}`, ""},
		{"fractional up_to", `{"up_to":10.5,"unit_price":"0.05"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := `{"currency":"USD","free_users":0,"tiers":[` + tt.tier + `]}`
			var rc RateCard
			err := json.Unmarshal([]byte(in), &rc)
			if err == nil {
				t.Fatalf("json.Unmarshal(%s) = nil, want an error", in)
			}
			var verr *usage.ValidationError
			if got := errors.As(err, &verr); got != (tt.field != "") {
				t.Fatalf("json.Unmarshal error %v: is a validation error = %v, want %v", err, got, tt.field != "")
			}
			if verr != nil && verr.Errors[0].Field != tt.field {
				t.Errorf("error names field %q, want %q", verr.Errors[0].Field, tt.field)
			}
		})
	}
}

func TestRateCardValidate(t *testing.T) {
	tests := []struct {
		name string
		rc   RateCard
		want []string // every field named, in order
	}{
		{"contract card", contractCard, nil},
		{"single unbounded tier", card("USD", 0, tier(nil, "0")), nil},
		{"no tiers", card("USD", 0), []string{"tiers"}},
		{"nil tiers", RateCard{Currency: "USD"}, []string{"tiers"}},
		{"decreasing up_to", card("USD", 0, tier(upTo(10), "1"), tier(upTo(5), "1"), tier(nil, "1")), []string{"tiers[1].up_to"}},
		{"equal up_to", card("USD", 0, tier(upTo(10), "1"), tier(upTo(10), "1"), tier(nil, "1")), []string{"tiers[1].up_to"}},
		{"bounded last tier", card("USD", 0, tier(upTo(10), "1")), []string{"tiers[0].up_to"}},
		{"bounded last tier after others", card("USD", 0, tier(upTo(10), "1"), tier(upTo(20), "1")), []string{"tiers[1].up_to"}},
		{"null up_to not last", card("USD", 0, tier(nil, "1"), tier(upTo(10), "2"), tier(nil, "3")), []string{"tiers[0].up_to"}},
		{"up_to zero", card("USD", 0, tier(upTo(0), "1"), tier(nil, "1")), []string{"tiers[0].up_to"}},
		{"up_to negative", card("USD", 0, tier(upTo(-5), "1"), tier(nil, "1")), []string{"tiers[0].up_to"}},
		{"negative price", card("USD", 0, tier(upTo(10), "0.01"), tier(nil, "-0.01")), []string{"tiers[1].unit_price"}},
		{"negative free users", card("USD", -1, tier(nil, "1")), []string{"free_users"}},
		{"lower-case currency", card("usd", 0, tier(nil, "1")), []string{"currency"}},
		{"two-letter currency", card("US", 0, tier(nil, "1")), []string{"currency"}},
		{"four-letter currency", card("USDT", 0, tier(nil, "1")), []string{"currency"}},
		{"empty currency", card("", 0, tier(nil, "1")), []string{"currency"}},
		{"digits in currency", card("US1", 0, tier(nil, "1")), []string{"currency"}},
		{
			"every problem listed at once",
			card("eur", -3, tier(upTo(0), "-1"), tier(nil, "1"), tier(upTo(7), "-2")),
			[]string{"currency", "free_users", "tiers[0].unit_price", "tiers[0].up_to", "tiers[1].up_to", "tiers[2].unit_price", "tiers[2].up_to"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rc.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var verr *usage.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Validate() = %v, want a *usage.ValidationError", err)
			}
			if !errors.Is(err, usage.ErrInvalid) {
				t.Errorf("errors.Is(Validate(), usage.ErrInvalid) = false, want true")
			}
			var got []string
			for _, fe := range verr.Errors {
				if fe.Index != -1 {
					t.Errorf("field %s has index %d, want -1", fe.Field, fe.Index)
				}
				if fe.Message == "" {
					t.Errorf("field %s has an empty message", fe.Field)
				}
				got = append(got, fe.Field)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Validate() names %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzRateCardJSON checks that no input makes decoding, validating or
// pricing panic, and that a valid card survives a round trip unchanged.
func FuzzRateCardJSON(f *testing.F) {
	f.Add([]byte(`{"currency":"USD","free_users":200,"tiers":[{"up_to":1000,"unit_price":"0.05"},{"up_to":null,"unit_price":"0.03"}]}`), int64(1234))
	f.Add([]byte(`{"currency":"JPY","free_users":0,"tiers":[{"up_to":null,"unit_price":"0.5"}]}`), int64(1))
	f.Add([]byte(`{"currency":"USD","tiers":[{"up_to":null,"unit_price":0.5}]}`), int64(0))
	f.Fuzz(func(t *testing.T, in []byte, users int64) {
		var rc RateCard
		if json.Unmarshal(in, &rc) != nil || rc.Validate() != nil {
			return
		}
		b := Price(users, rc)
		if _, err := json.Marshal(b); err != nil {
			t.Fatalf("json.Marshal(Price(%d, %s)) error: %v", users, in, err)
		}
		out, err := json.Marshal(rc)
		if err != nil {
			t.Fatalf("json.Marshal(%s) error: %v", in, err)
		}
		var again RateCard
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("decoding our own %s: %v", out, err)
		}
		out2, _ := json.Marshal(again)
		if string(out2) != string(out) {
			t.Fatalf("second round trip %s, want %s", out2, out)
		}
	})
}
