package billing

import (
	"encoding/json"
	"errors"
	"strings"
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

func TestPrice(t *testing.T) {
	contract := card("USD", 200, tier(upTo(1000), "0.05"), tier(nil, "0.03"))
	tests := []struct {
		name       string
		users      int64
		rc         RateCard
		wantAmount string
		wantLines  string // from-to:users@price=amount, …
		billable   int64
	}{
		{"contract example", 1234, contract, "47.02", "201-1000:800@0.05=40.00 1001-1234:234@0.03=7.02", 1034},
		{"free users above the count", 150, contract, "0.00", "", 0},
		{"free users equal the count", 200, contract, "0.00", "", 0},
		{"one user past the free ones", 201, contract, "0.05", "201-201:1@0.05=0.05", 1},
		{"exactly at up_to", 1000, contract, "40.00", "201-1000:800@0.05=40.00", 800},
		{"one past up_to", 1001, contract, "40.03", "201-1000:800@0.05=40.00 1001-1001:1@0.03=0.03", 801},
		{"no free users", 3, card("USD", 0, tier(nil, "1.5")), "4.50", "1-3:3@1.5=4.50", 3},
		{"free users end in the second tier", 1500, card("USD", 1200, tier(upTo(1000), "0.05"), tier(nil, "0.03")), "9.00", "1201-1500:300@0.03=9.00", 300},
		{"rounding half-up", 3, card("USD", 0, tier(nil, "0.0125")), "0.04", "1-3:3@0.0125=0.0375", 3},
		{"half a cent rounds up", 1, card("USD", 0, tier(nil, "0.005")), "0.01", "1-1:1@0.005=0.005", 1},
		{"just under half a cent", 1, card("USD", 0, tier(nil, "0.0049")), "0.00", "1-1:1@0.0049=0.0049", 1},
		{"rounded once at the end", 3, card("USD", 0, tier(upTo(1), "0.004"), tier(upTo(2), "0.004"), tier(nil, "0.004")), "0.01",
			"1-1:1@0.004=0.004 2-2:1@0.004=0.004 3-3:1@0.004=0.004", 3},
		{"JPY has no minor unit", 1234, card("JPY", 200, tier(upTo(1000), "5"), tier(nil, "3.5")), "4819", "201-1000:800@5=4000 1001-1234:234@3.5=819", 1034},
		{"JPY rounds half-up", 1, card("JPY", 0, tier(nil, "0.5")), "1", "1-1:1@0.5=0.5", 1},
		{"KWD has three decimals", 3, card("KWD", 0, tier(nil, "0.0125")), "0.038", "1-3:3@0.0125=0.0375", 3},
		{"EUR", 10, card("EUR", 0, tier(nil, "0.1")), "1.00", "1-10:10@0.1=1.00", 10},
		{"ten million users, exactly", 10_000_000, card("USD", 1000, tier(upTo(1_000_000), "0.0123"), tier(nil, "0.0071")), "76187.70",
			"1001-1000000:999000@0.0123=12287.70 1000001-10000000:9000000@0.0071=63900.00", 9_999_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.rc.Validate(); err != nil {
				t.Fatalf("card invalid: %v", err)
			}
			b := Price(tt.users, tt.rc)
			raw, err := json.Marshal(b)
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Amount        string `json:"amount"`
				BillableUsers int64  `json:"billable_users"`
				Lines         []struct {
					From      int64  `json:"from"`
					To        int64  `json:"to"`
					Users     int64  `json:"users"`
					UnitPrice string `json:"unit_price"`
					Amount    string `json:"amount"`
				} `json:"lines"`
			}
			json.Unmarshal(raw, &got)
			var lines []string
			var sum int64
			for _, l := range got.Lines {
				lines = append(lines, itoa(l.From)+"-"+itoa(l.To)+":"+itoa(l.Users)+"@"+l.UnitPrice+"="+l.Amount)
				sum += l.Users
			}
			if got.Amount != tt.wantAmount || strings.Join(lines, " ") != tt.wantLines || got.BillableUsers != tt.billable {
				t.Fatalf("got %s (%s) billable %d, want %s (%s) billable %d", got.Amount, strings.Join(lines, " "), got.BillableUsers,
					tt.wantAmount, tt.wantLines, tt.billable)
			}
			if sum != tt.billable {
				t.Fatalf("lines bill %d users, billable %d", sum, tt.billable)
			}
		})
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestRateCardJSONAndValidation(t *testing.T) {
	var rc RateCard
	in := `{"currency":"USD","free_users":200,"tiers":[{"up_to":1000,"unit_price":"0.05"},{"up_to":null,"unit_price":"0.03"}]}`
	if err := json.Unmarshal([]byte(in), &rc); err != nil {
		t.Fatal(err)
	}
	if err := rc.Validate(); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(rc)
	if string(out) != in {
		t.Fatalf("round trip %s, want %s", out, in)
	}
	if err := json.Unmarshal([]byte(`{"currency":"USD","free_users":0,"tiers":[{"up_to":null,"unit_price":0.05}]}`), &rc); err == nil {
		t.Fatal("a unit price as a JSON number was accepted")
	}
	if err := json.Unmarshal([]byte(`{"currency":"USD","free_users":0,"tiers":[{"up_to":null,"unit_price":"abc"}]}`), &rc); err == nil {
		t.Fatal("a non-decimal unit price was accepted")
	}
	bad := []struct {
		name  string
		rc    RateCard
		field string
	}{
		{"no tiers", card("USD", 0), "tiers"},
		{"decreasing up_to", card("USD", 0, tier(upTo(10), "1"), tier(upTo(5), "1"), tier(nil, "1")), "tiers[1].up_to"},
		{"equal up_to", card("USD", 0, tier(upTo(10), "1"), tier(upTo(10), "1"), tier(nil, "1")), "tiers[1].up_to"},
		{"bounded last tier", card("USD", 0, tier(upTo(10), "1")), "tiers[0].up_to"},
		{"unbounded tier not last", card("USD", 0, tier(nil, "1"), tier(nil, "2")), "tiers[0].up_to"},
		{"up_to zero", card("USD", 0, tier(upTo(0), "1"), tier(nil, "1")), "tiers[0].up_to"},
		{"negative price", card("USD", 0, tier(nil, "-0.01")), "tiers[0].unit_price"},
		{"negative free users", card("USD", -1, tier(nil, "1")), "free_users"},
		{"lower-case currency", card("usd", 0, tier(nil, "1")), "currency"},
		{"two-letter currency", card("US", 0, tier(nil, "1")), "currency"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rc.Validate()
			var verr *usage.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("err = %v, want a validation error", err)
			}
			found := false
			for _, fe := range verr.Errors {
				found = found || fe.Field == tt.field
			}
			if !found {
				t.Fatalf("errors %+v do not name %s", verr.Errors, tt.field)
			}
		})
	}
}

func TestMinorUnits(t *testing.T) {
	for cur, want := range map[string]int32{"USD": 2, "EUR": 2, "JPY": 0, "KRW": 0, "KWD": 3, "BHD": 3, "GBP": 2} {
		if got := MinorUnits(cur); got != want {
			t.Errorf("MinorUnits(%s) = %d, want %d", cur, got, want)
		}
	}
}
