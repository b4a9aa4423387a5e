package usage

import (
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func validEvent() Event {
	return Event{ID: "evt-1", Activity: Send, Source: SDK, ServiceSID: "IS0123456789abcdef0123456789abcdef",
		Identity: "alice@example.com", OccurredAt: time.Date(2026, 10, 5, 12, 0, 0, 0, time.UTC),
		Actor: "bob", ChannelSID: "CH01", EndpointID: "alice-iphone"}
}

func TestEventValidate(t *testing.T) {
	tests := []struct {
		name      string
		mutate    func(*Event)
		wantField string // "" = valid
	}{
		{"valid", func(e *Event) {}, ""},
		{"no optional fields", func(e *Event) { e.Actor, e.ChannelSID, e.EndpointID = "", "", "" }, ""},
		{"id missing", func(e *Event) { e.ID = "" }, "id"},
		{"id 128 bytes", func(e *Event) { e.ID = strings.Repeat("a", 128) }, ""},
		{"id 129 bytes", func(e *Event) { e.ID = strings.Repeat("a", 129) }, "id"},
		{"id NUL", func(e *Event) { e.ID = "a\x00b" }, "id"},
		{"id invalid utf8", func(e *Event) { e.ID = "a\xffb" }, "id"},
		{"activity missing", func(e *Event) { e.Activity = "" }, "activity"},
		{"activity unknown", func(e *Event) { e.Activity = "login" }, "activity"},
		{"activity wrong case", func(e *Event) { e.Activity = "Send" }, "activity"},
		{"source missing", func(e *Event) { e.Source = "" }, "source"},
		{"source unknown", func(e *Event) { e.Source = "web" }, "source"},
		{"service missing", func(e *Event) { e.ServiceSID = "" }, "service_sid"},
		{"service 64", func(e *Event) { e.ServiceSID = strings.Repeat("S", 64) }, ""},
		{"service 65", func(e *Event) { e.ServiceSID = strings.Repeat("S", 65) }, "service_sid"},
		{"service punctuation", func(e *Event) { e.ServiceSID = "IS_a.b-c" }, ""},
		{"service slash", func(e *Event) { e.ServiceSID = "IS/1" }, "service_sid"},
		{"service space", func(e *Event) { e.ServiceSID = "IS 1" }, "service_sid"},
		{"identity missing", func(e *Event) { e.Identity = "" }, "identity"},
		{"identity 256 bytes", func(e *Event) { e.Identity = strings.Repeat("é", 128) }, ""},
		{"identity 257 bytes", func(e *Event) { e.Identity = strings.Repeat("a", 257) }, "identity"},
		{"identity reserved characters", func(e *Event) { e.Identity = "a!*'();:@&=+$,/?%#[]" }, ""},
		{"identity multibyte", func(e *Event) { e.Identity = "用户😀" }, ""},
		{"identity tab", func(e *Event) { e.Identity = "a\tb" }, "identity"},
		{"identity NUL", func(e *Event) { e.Identity = "a\x00" }, "identity"},
		{"identity DEL", func(e *Event) { e.Identity = "a\x7f" }, "identity"},
		{"identity C1 control", func(e *Event) { e.Identity = "a\u0085" }, "identity"},
		{"identity U+00A0 allowed", func(e *Event) { e.Identity = "a\u00a0b" }, ""},
		{"identity invalid utf8", func(e *Event) { e.Identity = "a\xc3" }, "identity"},
		{"occurred_at missing", func(e *Event) { e.OccurredAt = time.Time{} }, "occurred_at"},
		{"occurred_at 1999", func(e *Event) { e.OccurredAt = Epoch.Add(-time.Nanosecond) }, "occurred_at"},
		{"occurred_at epoch", func(e *Event) { e.OccurredAt = Epoch }, ""},
		{"occurred_at +5m", func(e *Event) { e.OccurredAt = now.Add(5 * time.Minute) }, ""},
		{"occurred_at +5m1s", func(e *Event) { e.OccurredAt = now.Add(5*time.Minute + time.Second) }, "occurred_at"},
		{"actor 256", func(e *Event) { e.Actor = strings.Repeat("a", 256) }, ""},
		{"actor 257", func(e *Event) { e.Actor = strings.Repeat("a", 257) }, "actor"},
		{"channel 257", func(e *Event) { e.ChannelSID = strings.Repeat("a", 257) }, "channel_sid"},
		{"endpoint 257", func(e *Event) { e.EndpointID = strings.Repeat("a", 257) }, "endpoint_id"},
		{"endpoint NUL", func(e *Event) { e.EndpointID = "\x00" }, "endpoint_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validEvent()
			tt.mutate(&e)
			errs := e.Validate(7, now, nil)
			if tt.wantField == "" {
				if len(errs) != 0 {
					t.Fatalf("Validate = %v, want no error", errs)
				}
				return
			}
			if len(errs) != 1 || errs[0].Field != tt.wantField || errs[0].Index != 7 || errs[0].Message == "" {
				t.Fatalf("Validate = %+v, want one error on %q at index 7", errs, tt.wantField)
			}
		})
	}
}

func TestEventValidateReportsEveryField(t *testing.T) {
	e := Event{Activity: "nope", Source: "web", ServiceSID: "a b", Identity: "x\n"}
	errs := e.Validate(0, now, nil)
	got := map[string]bool{}
	for _, fe := range errs {
		got[fe.Field] = true
	}
	for _, f := range []string{"id", "activity", "source", "service_sid", "identity", "occurred_at"} {
		if !got[f] {
			t.Errorf("no error for %s in %+v", f, errs)
		}
	}
}

// TestActivitySourceMatrix checks all 16 pairs against §3.
func TestActivitySourceMatrix(t *testing.T) {
	want := map[Activity]map[Source]bool{
		Create:       {REST: true, SDK: false},
		Update:       {REST: true, SDK: false},
		Authenticate: {REST: false, SDK: true},
		Send:         {REST: true, SDK: true},
		Join:         {REST: false, SDK: true},
		Add:          {REST: true, SDK: true},
		Invite:       {REST: true, SDK: true},
		Remove:       {REST: true, SDK: true},
	}
	n := 0
	for _, a := range Activities {
		for _, s := range Sources {
			n++
			t.Run(string(a)+"/"+string(s), func(t *testing.T) {
				e := validEvent()
				e.Activity, e.Source = a, s
				errs := e.Validate(0, now, nil)
				accepted := len(errs) == 0
				if accepted != want[a][s] {
					t.Fatalf("pair %s/%s accepted=%v, want %v (%v)", a, s, accepted, want[a][s], errs)
				}
				if !accepted && errs[0].Field != "source" {
					t.Fatalf("rejected pair names field %q, want source", errs[0].Field)
				}
			})
		}
	}
	if n != 16 {
		t.Fatalf("checked %d pairs, want 16", n)
	}
}

func TestBitsRoundTrip(t *testing.T) {
	var all int16
	for _, a := range Activities {
		all |= a.Bit()
	}
	if got := ActivitiesOf(all); len(got) != 8 {
		t.Fatalf("ActivitiesOf(all) = %v", got)
	}
	if got := ActivitiesOf(RESTOnlyActivities); len(got) != 2 || got[0] != Create || got[1] != Update {
		t.Fatalf("ActivitiesOf(REST only) = %v", got)
	}
	if got := SourcesOf(REST.Bit() | SDK.Bit()); len(got) != 2 {
		t.Fatalf("SourcesOf = %v", got)
	}
}

func TestMonth(t *testing.T) {
	tests := []struct {
		at   string
		want string
	}{
		{"2026-10-31T23:59:59.999999Z", "2026-10"},
		{"2026-11-01T00:00:00Z", "2026-11"},
		{"2026-11-01T04:59:59+05:00", "2026-10"},
		{"2026-11-01T05:00:00+05:00", "2026-11"},
		{"2026-12-31T20:00:00-05:00", "2027-01"},
	}
	for _, tt := range tests {
		at, err := time.Parse(time.RFC3339Nano, tt.at)
		if err != nil {
			t.Fatal(err)
		}
		m := MonthOf(at)
		if m.String() != tt.want {
			t.Errorf("MonthOf(%s) = %s, want %s", tt.at, m, tt.want)
		}
		if at.Before(m.Start()) || !at.Before(m.End()) {
			t.Errorf("%s not in [%s, %s)", tt.at, m.Start(), m.End())
		}
	}
	m, err := ParseMonth("2026-12")
	if err != nil || m.Next().String() != "2027-01" || m.Prev().String() != "2026-11" {
		t.Fatalf("ParseMonth/Next/Prev: %v %v", m, err)
	}
	for _, bad := range []string{"2026-13", "2026-1", "26-01", "2026/01", ""} {
		if _, err := ParseMonth(bad); err == nil {
			t.Errorf("ParseMonth(%q) succeeded", bad)
		}
	}
}

func TestSIDsAndSecrets(t *testing.T) {
	a, k := NewAccountSID(), NewKeySID()
	if !IsAccountSID(a) || !IsKeySID(k) || IsAccountSID(k) || IsKeySID(a) {
		t.Fatalf("SIDs %s %s", a, k)
	}
	if IsAccountSID("AC" + strings.Repeat("A", 32)) {
		t.Error("uppercase hex accepted")
	}
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		s := NewSecret()
		if len(s) != 32 || strings.Trim(s, secretAlphabet) != "" || seen[s] {
			t.Fatalf("secret %q", s)
		}
		seen[s] = true
	}
}
