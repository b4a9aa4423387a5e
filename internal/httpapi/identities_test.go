package httpapi_test

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/tallyhq/tally/internal/usage"
)

// evJSON builds one event with every field that matters to §7.
func evJSON(id, svc, identity, activity, source, at, endpoint string) string {
	ep := ""
	if endpoint != "" {
		ep = fmt.Sprintf(`,"endpoint_id":%q`, endpoint)
	}
	return fmt.Sprintf(`{"id":%q,"activity":%q,"source":%q,"service_sid":%q,"identity":%q,"occurred_at":%q%s}`,
		id, activity, source, svc, identity, at, ep)
}

// TestIdentityStatsFixture has a known answer for every figure.
func TestIdentityStatsFixture(t *testing.T) {
	e := newEnv(t)
	admin := e.keys[e.acme][usage.RoleAdmin]
	post := func(events ...string) {
		t.Helper()
		if r := e.post(admin, "/v1/accounts/"+e.acme+"/events", batch(events...)); r.status != 200 {
			t.Fatalf("post: %d %s", r.status, r.body)
		}
	}
	const uuid = "550e8400-e29b-41d4-a716-446655440000"
	post(
		// September: alice, bob, carol (carol churns in October).
		evJSON("s1", "ISa", "alice@example.com", "send", "sdk", "2026-09-10T00:00:00Z", ""),
		evJSON("s2", "ISa", "bob", "send", "sdk", "2026-09-11T00:00:00Z", ""),
		evJSON("s3", "ISa", "carol", "send", "sdk", "2026-09-12T00:00:00Z", ""),
		// October, ISa: alice returning with 3 endpoints (4 events), bob
		// returning with 4 events, dave new and REST-only (1 event), the
		// UUID identity new (1 event).
		evJSON("o1", "ISa", "alice@example.com", "join", "sdk", "2026-10-01T00:00:00Z", "e1"),
		evJSON("o2", "ISa", "alice@example.com", "send", "sdk", "2026-10-02T00:00:00Z", "e2"),
		evJSON("o3", "ISa", "alice@example.com", "send", "sdk", "2026-10-03T00:00:00Z", "e3"),
		evJSON("o4", "ISa", "alice@example.com", "send", "sdk", "2026-10-04T00:00:00Z", "e1"),
		evJSON("o5", "ISa", "bob", "send", "sdk", "2026-10-05T00:00:00Z", "b"),
		evJSON("o6", "ISa", "bob", "send", "sdk", "2026-10-06T00:00:00Z", "b"),
		evJSON("o7", "ISa", "bob", "send", "sdk", "2026-10-07T00:00:00Z", ""),
		evJSON("o8", "ISa", "bob", "send", "sdk", "2026-10-08T00:00:00Z", ""),
		evJSON("o9", "ISa", "dave", "create", "rest", "2026-10-09T00:00:00Z", ""),
		evJSON("o10", "ISa", uuid, "authenticate", "sdk", "2026-10-10T00:00:00Z", ""),
		// October, ISb: alice is new there, REST-only with 2 events.
		evJSON("o11", "ISb", "alice@example.com", "create", "rest", "2026-10-11T00:00:00Z", ""),
		evJSON("o12", "ISb", "alice@example.com", "update", "rest", "2026-10-12T00:00:00Z", ""),
	)
	get := func(query string) map[string]any {
		t.Helper()
		r := e.get(admin, "/v1/accounts/"+e.acme+"/identities/stats?"+query)
		if r.status != 200 {
			t.Fatalf("stats %s: %d %s", query, r.status, r.body)
		}
		return r.json(t)
	}
	tests := []struct {
		query string
		want  map[string]float64
		top   string
	}{
		{"month=2026-10", map[string]float64{
			"active_identities": 5, "new_identities": 3, "returning_identities": 2, "churned_identities": 1,
			"one_time_identities": 2, "rest_only_identities": 2, "multi_endpoint_identities": 1,
			"reserved_character_identities": 2, "random_like_identities": 1, "events": 12, "events_per_identity": 2.4,
		}, "ISa/alice@example.com=4 ISa/bob=4 ISb/alice@example.com=2 ISa/" + uuid + "=1 ISa/dave=1"},
		{"month=2026-10&service_sid=ISb", map[string]float64{
			"active_identities": 1, "new_identities": 1, "returning_identities": 0, "churned_identities": 0,
			"one_time_identities": 0, "rest_only_identities": 1, "multi_endpoint_identities": 0,
			"reserved_character_identities": 1, "random_like_identities": 0, "events": 2, "events_per_identity": 2,
		}, "ISb/alice@example.com=2"},
		{"month=2026-11", map[string]float64{ // a month with no events: October's 5 users churned
			"active_identities": 0, "new_identities": 0, "returning_identities": 0, "churned_identities": 5,
			"one_time_identities": 0, "events": 0, "events_per_identity": 0,
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			got := get(tt.query)
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
			var top []string
			for _, x := range got["top_identities"].([]any) {
				m := x.(map[string]any)
				top = append(top, fmt.Sprintf("%s/%s=%v", m["service_sid"], m["identity"], m["events"]))
			}
			if strings.Join(top, " ") != tt.top {
				t.Errorf("top_identities %v, want %s", top, tt.top)
			}
		})
	}
	for _, role := range []usage.Role{usage.RoleFinance, usage.RoleIngest} {
		if r := e.get(e.keys[e.acme][role], "/v1/accounts/"+e.acme+"/identities/stats?month=2026-10"); r.status != 403 {
			t.Errorf("%s key: %d, want 403", role, r.status)
		}
	}
	if r := e.get(e.keys[e.other][usage.RoleAdmin], "/v1/accounts/"+e.acme+"/identities/stats?month=2026-10"); r.status != 404 {
		t.Errorf("other account: %d, want 404", r.status)
	}
	if r := e.get(admin, "/v1/accounts/"+e.acme+"/identities/stats?month=october"); r.status != 422 {
		t.Errorf("bad month: %d, want 422", r.status)
	}
}

// TestIdentityPagination walks 2 500 identities in pages of 1000 while
// events keep arriving, and sees each exactly once.
func TestIdentityPagination(t *testing.T) {
	e := newEnv(t)
	admin := e.keys[e.acme][usage.RoleAdmin]
	var want []string
	for b := 0; b < 3; b++ {
		var evs []string
		for i := b * 1000; i < min((b+1)*1000, 2500); i++ {
			id := fmt.Sprintf("user-%04d", i)
			want = append(want, id)
			evs = append(evs, evJSON("p"+id, "ISa", id, "join", "sdk", "2026-10-05T00:00:00Z", ""))
		}
		if r := e.post(admin, "/v1/accounts/"+e.acme+"/events", batch(evs...)); r.status != 200 {
			t.Fatal(r.status)
		}
	}
	seen := map[string]int{}
	tok := ""
	for page := 0; ; page++ {
		path := "/v1/accounts/" + e.acme + "/identities?month=2026-10&page_size=1000"
		if tok != "" {
			path += "&page_token=" + url.QueryEscape(tok)
		}
		r := e.get(admin, path)
		if r.status != 200 {
			t.Fatalf("page %d: %d %s", page, r.status, r.body)
		}
		body := r.json(t)
		for _, x := range body["identities"].([]any) {
			seen[x.(map[string]any)["identity"].(string)]++
		}
		// Between pages: new events for known users (and one new user that
		// sorts before the cursor) do not disturb the walk.
		evs := []string{evJSON(fmt.Sprint("x", page), "ISa", "user-0000", "send", "sdk", "2026-10-06T00:00:00Z", ""),
			evJSON(fmt.Sprint("y", page), "ISa", fmt.Sprint("a-late-", page), "send", "sdk", "2026-10-06T00:00:00Z", "")}
		e.post(admin, "/v1/accounts/"+e.acme+"/events", batch(evs...))
		next, _ := body["next_page_token"].(string)
		if next == "" {
			break
		}
		tok = next
		if page > 3 {
			t.Fatal("too many pages")
		}
	}
	for _, id := range want {
		if seen[id] != 1 {
			t.Fatalf("%s seen %d times", id, seen[id])
		}
	}
	if r := e.get(admin, "/v1/accounts/"+e.acme+"/identities?month=2026-10&page_size=1001"); r.status != 422 {
		t.Fatalf("page_size 1001: %d", r.status)
	}
	prefixed := e.get(admin, "/v1/accounts/"+e.acme+"/identities?month=2026-10&prefix=user-24").json(t)["identities"].([]any)
	if len(prefixed) != 100 {
		t.Fatalf("prefix user-24: %d identities, want 100", len(prefixed))
	}
	if r := e.get(admin, "/v1/accounts/"+e.acme+"/identities?month=2026-10&prefix=user_%25"); len(r.json(t)["identities"].([]any)) != 0 {
		t.Fatalf("LIKE metacharacters in a prefix matched: %s", r.body)
	}
}

// TestUserHistoryRoundTrip sends identities with reserved characters,
// spaces and multi-byte UTF-8 through the per-user endpoint.
func TestUserHistoryRoundTrip(t *testing.T) {
	e := newEnv(t)
	admin := e.keys[e.acme][usage.RoleAdmin]
	identities := []string{"a/b", "100%", "50%2F", "#tag", "with space", "用户/名", "emoji 😀?x=1&y", "plain", "a+b", "..", "%"}
	var evs []string
	for i, id := range identities {
		evs = append(evs,
			evJSON(fmt.Sprint("h", i), "ISa", id, "send", "sdk", "2026-09-05T00:00:00Z", "ep1"),
			evJSON(fmt.Sprint("k", i), "ISa", id, "create", "rest", "2026-10-06T00:00:00Z", ""))
	}
	if r := e.post(admin, "/v1/accounts/"+e.acme+"/events", batch(evs...)); r.status != 200 {
		t.Fatalf("post: %d %s", r.status, r.body)
	}
	for _, id := range identities {
		t.Run(id, func(t *testing.T) {
			r := e.get(admin, "/v1/accounts/"+e.acme+"/services/ISa/users/"+url.PathEscape(id))
			if id == ".." { // a client cannot send .. as a path segment; %2E%2E it is
				r = e.get(admin, "/v1/accounts/"+e.acme+"/services/ISa/users/%2E%2E")
			}
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			h := r.json(t)
			months := h["months"].([]any)
			if h["identity"] != id || len(months) != 2 || h["first_active_at"] != "2026-09-05T00:00:00Z" || h["last_active_at"] != "2026-10-06T00:00:00Z" {
				t.Fatalf("history %s", r.body)
			}
			sep := months[0].(map[string]any)
			if sep["month"] != "2026-09" || fmt.Sprint(sep["activities"]) != "[send]" || fmt.Sprint(sep["sources"]) != "[sdk]" || fmt.Sprint(sep["endpoints"]) != "[ep1]" {
				t.Fatalf("September %v", sep)
			}
		})
	}
	if r := e.get(admin, "/v1/accounts/"+e.acme+"/services/ISa/users/nobody"); r.status != 404 {
		t.Fatalf("unknown user: %d", r.status)
	}
}

// TestIdentityInsight: the §7 additions from outside. Rate card: 2 free
// users, users 3–4 at 1.00, 5–6 at 0.50, 7 on at 0.25.
func TestIdentityInsight(t *testing.T) {
	e := newEnv(t)
	admin := e.keys[e.acme][usage.RoleAdmin]
	card := `{"currency":"USD","free_users":2,"tiers":[{"up_to":4,"unit_price":"1.00"},{"up_to":6,"unit_price":"0.50"},{"up_to":null,"unit_price":"0.25"}]}`
	if r := e.do(e.srv, e.keys[e.platform][usage.RoleAdmin], "PUT", "/v1/accounts/"+e.acme+"/rate-card", "application/json", strings.NewReader(card)); r.status != 200 {
		t.Fatalf("rate card: %d %s", r.status, r.body)
	}
	post := func(account string, events ...string) {
		t.Helper()
		if r := e.post(e.keys[account][usage.RoleAdmin], "/v1/accounts/"+account+"/events", batch(events...)); r.status != 200 {
			t.Fatalf("post: %d %s", r.status, r.body)
		}
	}
	const oct = "2026-10-05T00:00:00Z"
	post(e.acme,
		// October, ISa: 9 users; u3 and u7 authenticate only, u4 update only,
		// u5 both (neither kind); Bob and bob look alike.
		evJSON("a1", "ISa", "u1", "send", "sdk", oct, ""),
		evJSON("a2", "ISa", "u2", "send", "sdk", oct, ""),
		evJSON("a3", "ISa", "u3", "authenticate", "sdk", oct, ""),
		evJSON("a3b", "ISa", "u3", "authenticate", "sdk", "2026-10-06T00:00:00Z", ""),
		evJSON("a4", "ISa", "u4", "update", "rest", oct, ""),
		evJSON("a5", "ISa", "u5", "authenticate", "sdk", oct, ""),
		evJSON("a5b", "ISa", "u5", "update", "rest", oct, ""),
		evJSON("a6", "ISa", "x/y@z", "send", "sdk", oct, ""),
		evJSON("a7", "ISa", "u7", "authenticate", "sdk", oct, ""),
		evJSON("a8", "ISa", "Bob", "send", "sdk", oct, ""),
		evJSON("a9", "ISa", "bob", "send", "sdk", oct, ""),
		// ISb: three spellings of alice, and an update-only user.
		evJSON("b1", "ISb", "Alice", "send", "sdk", oct, ""),
		evJSON("b2", "ISb", "alice ", "send", "sdk", oct, ""),
		evJSON("b3", "ISb", "ａｌｉｃｅ", "join", "sdk", oct, ""),
		evJSON("b3b", "ISb", "ａｌｉｃｅ", "send", "sdk", oct, ""),
		evJSON("b4", "ISb", "bob@x.com", "update", "rest", oct, ""),
		// September: 3 users, two authenticate only; only the third is billed.
		evJSON("s1", "ISa", "s1", "send", "sdk", "2026-09-05T00:00:00Z", ""),
		evJSON("s2", "ISa", "s2", "authenticate", "sdk", "2026-09-05T00:00:00Z", ""),
		evJSON("s3", "ISa", "s3", "authenticate", "sdk", "2026-09-05T00:00:00Z", ""),
	)
	post(e.other, evJSON("o1", "ISa", "u1", "authenticate", "sdk", oct, ""))
	stats := func(key cred, account, query string) map[string]any {
		t.Helper()
		r := e.get(key, "/v1/accounts/"+account+"/identities/stats?"+query)
		if r.status != 200 {
			t.Fatalf("stats %s: %d %s", query, r.status, r.body)
		}
		return r.json(t)
	}
	// October: 13 billed users, 4.75 (2 free, 2.00 + 1.00 + 7 × 0.25).
	// Without the 4 avoidable ones, 9 users: 3.75. Without ISa's 3, 10
	// users: 4.00; without ISb's one, 12: 4.50. September: 3 users, 1.00;
	// without its 2 avoidable ones, 1 user, free.
	tests := []struct {
		query     string
		want      map[string]any
		reserved  string
		avoidable any
	}{
		{"month=2026-10", map[string]any{"authenticate_only_identities": 2.0, "update_only_identities": 2.0,
			"lookalike_identities": 5.0, "active_identities": 13.0}, "/=1 @=2", "1.00"},
		{"month=2026-10&service_sid=ISa", map[string]any{"authenticate_only_identities": 2.0, "update_only_identities": 1.0,
			"lookalike_identities": 2.0}, "/=1 @=1", "0.75"},
		{"month=2026-10&service_sid=ISb", map[string]any{"authenticate_only_identities": 0.0, "update_only_identities": 1.0,
			"lookalike_identities": 3.0}, "@=1", "0.25"},
		{"month=2026-09", map[string]any{"authenticate_only_identities": 2.0, "update_only_identities": 0.0,
			"lookalike_identities": 0.0}, "", "1.00"},
		{"month=2026-11", map[string]any{"authenticate_only_identities": 0.0, "lookalike_identities": 0.0}, "", "0.00"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			got := stats(admin, e.acme, tt.query)
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
			if got["avoidable_amount"] != tt.avoidable {
				t.Errorf("avoidable_amount = %#v, want %#v", got["avoidable_amount"], tt.avoidable)
			}
			var reserved []string
			for k, v := range got["reserved_characters"].(map[string]any) {
				reserved = append(reserved, fmt.Sprintf("%s=%v", k, v))
			}
			slices.Sort(reserved)
			if strings.Join(reserved, " ") != tt.reserved {
				t.Errorf("reserved_characters %v, want %s", reserved, tt.reserved)
			}
		})
	}
	// October's bill, as the report gives it, is what the amount starts from.
	if b := e.get(admin, "/v1/accounts/"+e.acme+"/reports/2026-10").json(t)["billing"].(map[string]any); b["amount"] != "4.75" {
		t.Errorf("October billed %v, want 4.75", b["amount"])
	}
	// Without a rate card: null, present.
	if got := stats(e.keys[e.other][usage.RoleAdmin], e.other, "month=2026-10"); got["avoidable_amount"] != nil || !strings.Contains(fmt.Sprint(got), "avoidable_amount:<nil>") {
		t.Errorf("without a rate card: avoidable_amount %#v", got["avoidable_amount"])
	}

	list := func(query string) []string {
		t.Helper()
		r := e.get(admin, "/v1/accounts/"+e.acme+"/identities?"+query)
		if r.status != 200 {
			t.Fatalf("identities %s: %d %s", query, r.status, r.body)
		}
		var out []string
		for _, x := range r.json(t)["identities"].([]any) {
			m := x.(map[string]any)
			out = append(out, fmt.Sprintf("%s/%s", m["service_sid"], m["identity"]))
		}
		return out
	}
	for query, want := range map[string]string{
		"month=2026-10&flag=authenticate_only":               "ISa/u3 ISa/u7",
		"month=2026-10&flag=update_only":                     "ISa/u4 ISb/bob@x.com",
		"month=2026-10&flag=lookalike":                       "ISa/Bob ISa/bob ISb/Alice ISb/alice  ISb/ａｌｉｃｅ",
		"month=2026-10&flag=lookalike&service_sid=ISa":       "ISa/Bob ISa/bob",
		"month=2026-10&flag=reserved_character":              "ISa/x/y@z ISb/bob@x.com",
		"month=2026-10&flag=one_time&service_sid=ISb":        "ISb/Alice ISb/alice  ISb/bob@x.com",
		"month=2026-10&flag=rest_only":                       "ISa/u4 ISb/bob@x.com",
		"month=2026-10&flag=authenticate_only&page_size=1":   "ISa/u3",
		"month=2026-10&flag=lookalike&prefix=a&page_size=10": "ISb/alice ",
	} {
		if got := strings.Join(list(query), " "); got != want {
			t.Errorf("%s: %q, want %q", query, got, want)
		}
	}

	// Lookalike groups: largest first, paged.
	r := e.get(admin, "/v1/accounts/"+e.acme+"/identities/lookalikes?month=2026-10")
	if r.status != 200 {
		t.Fatalf("lookalikes: %d %s", r.status, r.body)
	}
	want := `{"groups":[{"service_sid":"ISb","key":"alice","identities":["Alice","alice ","ａｌｉｃｅ"],"events":4},` +
		`{"service_sid":"ISa","key":"bob","identities":["Bob","bob"],"events":2}],"next_page_token":null}`
	if strings.TrimSpace(string(r.body)) != want {
		t.Errorf("lookalikes\n%s\nwant\n%s", r.body, want)
	}
	var pages []string
	tok := ""
	for range 5 {
		path := "/v1/accounts/" + e.acme + "/identities/lookalikes?month=2026-10&page_size=1"
		if tok != "" {
			path += "&page_token=" + url.QueryEscape(tok)
		}
		body := e.get(admin, path).json(t)
		for _, g := range body["groups"].([]any) {
			pages = append(pages, g.(map[string]any)["key"].(string))
		}
		next, _ := body["next_page_token"].(string)
		if next == "" {
			break
		}
		tok = next
	}
	if strings.Join(pages, ",") != "alice,bob" {
		t.Errorf("lookalikes by pages of 1: %v", pages)
	}
	if g := e.get(admin, "/v1/accounts/"+e.acme+"/identities/lookalikes?month=2026-10&service_sid=ISa").json(t)["groups"].([]any); len(g) != 1 {
		t.Errorf("ISa has %d groups, want 1", len(g))
	}

	// 422: a month after the current one (November 2026), an unknown flag,
	// a forged token; 403/404 as the other identity routes.
	for _, path := range []string{
		"/identities/stats?month=2026-12", "/identities?month=2026-12", "/identities/lookalikes?month=2026-12",
		"/identities?month=2026-10&flag=famous", "/identities/lookalikes?month=2026-10&page_token=bm9wZQ",
		"/identities/lookalikes?month=2026-10&page_size=1001",
	} {
		if r := e.get(admin, "/v1/accounts/"+e.acme+path); r.status != 422 {
			t.Errorf("%s: %d, want 422", path, r.status)
		}
	}
	for _, path := range []string{"/identities?month=2026-11", "/identities/lookalikes?month=2026-11"} {
		if r := e.get(admin, "/v1/accounts/"+e.acme+path); r.status != 200 {
			t.Errorf("%s (the current month): %d, want 200", path, r.status)
		}
	}
	if r := e.get(e.keys[e.acme][usage.RoleFinance], "/v1/accounts/"+e.acme+"/identities/lookalikes?month=2026-10"); r.status != 403 {
		t.Errorf("finance key: %d, want 403", r.status)
	}
	if r := e.get(e.keys[e.other][usage.RoleAdmin], "/v1/accounts/"+e.acme+"/identities/lookalikes?month=2026-10"); r.status != 404 {
		t.Errorf("other account: %d, want 404", r.status)
	}
}
