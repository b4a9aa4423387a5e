package httpapi_test

import (
	"fmt"
	"net/url"
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
