package httpapi_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/tallyhq/tally/internal/usage"
)

// TestHostileInput sends what a hostile or broken client might: each body is
// refused with a 4xx problem, never a 5xx, and nothing is stored.
func TestHostileInput(t *testing.T) {
	e := newEnv(t)
	key := e.keys[e.acme][usage.RoleIngest]
	path := "/v1/accounts/" + e.acme + "/events"
	nested := strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000)
	tests := []struct {
		name, contentType, body string
		want                    int
	}{
		{"deeply nested field", "application/json", `{"events":[{"id":"x","activity":"send","source":"sdk","service_sid":"S","identity":` + nested + `,"occurred_at":"2026-10-05T12:00:00Z"}]}`, 400},
		{"deeply nested body", "application/json", strings.Repeat("[", 100000) + strings.Repeat("]", 100000), 400},
		{"huge body", "application/json", `{"events":[` + strings.Repeat(`{"id":"x"},`, 200000) + `{}]}`, 413},
		{"invalid UTF-8", "application/json", batch(strings.Replace(eventJSON("u1", "IDENT", "2026-10-05T12:00:00Z"), "IDENT", "a\xff\xfeb", 1)), 422},
		{"escaped NUL in identity", "application/json", batch(strings.Replace(eventJSON("n1", "IDENT", "2026-10-05T12:00:00Z"), "IDENT", `a\u0000b`, 1)), 422},
		{"escaped NUL in actor", "application/json", `{"events":[{"id":"n2","activity":"send","source":"sdk","service_sid":"S","identity":"i","occurred_at":"2026-10-05T12:00:00Z","actor":"\u0000"}]}`, 422},
		{"raw NUL in JSON", "application/json", "{\"events\":[{\"id\":\"a\x00\"}]}", 400},
		{"identity of 257 bytes", "application/json", batch(eventJSON("l1", strings.Repeat("é", 128)+"a", "2026-10-05T12:00:00Z")), 422},
		{"10 000-level NDJSON line", "application/x-ndjson", strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + "\n", 422},
		{"10 000-level NDJSON object", "application/x-ndjson", nested + "\n", 422},
		{"unterminated NDJSON nesting", "application/x-ndjson", strings.Repeat("[", 10000) + "\n", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(e.srv, key, "POST", path, tt.contentType, strings.NewReader(tt.body))
			if r.status != tt.want {
				t.Fatalf("status %d, want %d: %.300s", r.status, tt.want, r.body)
			}
			if r.json(t)["status"] != float64(tt.want) {
				t.Fatalf("problem %.300s", r.body)
			}
		})
	}
	var n int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err) // else n stays 0 and the check below passes whatever was stored
	}
	if n != 0 {
		t.Fatalf("%d events stored from refused bodies", n)
	}
}

// TestSQLMetacharactersVerbatim stores SQL metacharacters in every free-text
// field and reads them back unchanged.
func TestSQLMetacharactersVerbatim(t *testing.T) {
	e := newEnv(t)
	key := e.keys[e.acme][usage.RoleAdmin]
	evil := `'; DROP TABLE events; -- "\ %_ $1 ::text /*`
	body := fmt.Sprintf(`{"events":[{"id":%q,"activity":"send","source":"sdk","service_sid":"IS_x.y-z","identity":%q,"occurred_at":"2026-10-05T12:00:00Z","actor":%q,"channel_sid":%q,"endpoint_id":%q}]}`,
		evil, evil, evil, evil, evil)
	if r := e.post(key, "/v1/accounts/"+e.acme+"/events", body); r.status != 200 {
		t.Fatalf("post: %d %s", r.status, r.body)
	}
	var id, identity, actor, channel, endpoint string
	err := e.pool.QueryRow(t.Context(), `SELECT event_id, identity, actor, channel_sid, endpoint_id FROM events`).Scan(&id, &identity, &actor, &channel, &endpoint)
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []string{id, identity, actor, channel, endpoint} {
		if got != evil {
			t.Fatalf("stored %q, want %q", got, evil)
		}
	}
	roster := e.get(key, "/v1/accounts/"+e.acme+"/reports/2026-10/users").json(t)["users"].([]any)
	u := roster[0].(map[string]any)
	if u["identity"] != evil || u["first_event_id"] != evil {
		t.Fatalf("roster %v", u)
	}
	h := e.get(key, "/v1/accounts/"+e.acme+"/services/IS_x.y-z/users/"+url.PathEscape(evil))
	if h.status != 200 || h.json(t)["identity"] != evil {
		t.Fatalf("history %d %s", h.status, h.body)
	}
	list := e.get(key, "/v1/accounts/"+e.acme+"/identities?month=2026-10&prefix="+url.QueryEscape(evil[:5])).json(t)["identities"].([]any)
	if len(list) != 1 {
		t.Fatalf("prefix search: %v", list)
	}
}
