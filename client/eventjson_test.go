package client_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/usage"
)

// TestDecodeEventAgreesWithServer holds usage.DecodeEvent, which tally
// import uses to drop lines before sending them, to the server's verdict on
// the same line posted as NDJSON: not JSON (400), invalid (422, the same
// fields) or accepted (200).
func TestDecodeEventAgreesWithServer(t *testing.T) {
	tl := newTally(t)
	k := tl.keys[usage.RoleIngest]
	const ok = `"activity":"send","source":"sdk","service_sid":"IS1","identity":"alice","occurred_at":"2026-10-05T12:00:00Z"`
	lines := []string{
		`{"id":"a1",` + ok + `}`,
		`{"id":"a2",` + ok + `,"actor":null,"channel_sid":"CH1","endpoint_id":"e"}`,
		`{"id":"a3",` + ok + `,"colour":"red"}`,
		`{"id":"a4",` + ok,
		`{"id":4,` + ok + `}`,
		`{"id":"a5",` + ok + `,"actor":["x"]}`,
		`{"id":"a6\ud800",` + ok + `}`,
		`{"id":"a7\ud83d\ude00",` + ok + `}`,
		"{\"id\":\"a8\xff\"," + ok + `}`,
		`{"id":"a9","activity":"send","source":"sdk","service_sid":"IS1","identity":"alice","occurred_at":"2026-10-05T12:00:00+24:00"}`,
		`{"id":"a10","activity":"send","source":"sdk","service_sid":"IS1","identity":"alice","occurred_at":"2026-10-05 12:00:00Z"}`,
		`{"id":"a11","activity":"send","source":"sdk","service_sid":"IS1","identity":"alice","occurred_at":"2026-10-05T14:00:00+02:00"}`,
		`{"id":"a12","activity":"join","source":"rest","service_sid":"IS/1","identity":"","occurred_at":"1999-10-05T12:00:00Z"}`,
		`{"id":null,` + ok + `}`,
		`["a13"]`,
		`"a14"`,
		`{"id":"a15",` + ok + `} {}`,
		`{"id":"a18",` + ok + `}}`,
		`{"id":"a16","identity":"al\u0007ice","activity":"send","source":"sdk","service_sid":"IS1","occurred_at":"2026-10-05T12:00:00Z"}`,
		`{"id":"a17","identity":"x@y","activity":"send","source":"sdk","service_sid":"IS1","occurred_at":"2026-10-05T12:00:00Z","actor":"` + strings.Repeat("b", 257) + `"}`,
	}
	for _, line := range lines {
		t.Run(line[:min(len(line), 24)], func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, tl.srv.URL+"/v1/accounts/"+tl.account+"/events", strings.NewReader(line+"\n"))
			req.SetBasicAuth(k.sid, k.secret)
			req.Header.Set("Content-Type", "application/x-ndjson")
			resp, err := tl.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()

			_, errs, derr := usage.DecodeEvent([]byte(line), 0, time.Now(), nil)
			var local int
			switch {
			case errors.Is(derr, usage.ErrNotJSON):
				local = http.StatusBadRequest
			case len(errs) > 0:
				local = http.StatusUnprocessableEntity
			default:
				local = http.StatusOK
			}
			if local != resp.StatusCode {
				t.Fatalf("DecodeEvent says %d (%v %v), the server %d %s", local, errs, derr, resp.StatusCode, body)
			}
			for _, fe := range errs {
				if !strings.Contains(string(body), `"field":"`+fe.Field+`"`) {
					t.Errorf("DecodeEvent names %s (%s); the server does not: %s", fe.Field, fe.Message, body)
				}
			}
		})
	}
}
