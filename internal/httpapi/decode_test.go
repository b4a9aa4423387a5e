package httpapi

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/usage"
)

var testNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

const goodEvent = `{"id":"evt-1","activity":"send","source":"sdk","service_sid":"IS1","identity":"alice@example.com","occurred_at":"2026-10-05T12:00:00Z","actor":"bob","channel_sid":"CH01","endpoint_id":"alice-iphone"}`

func TestDecodeEvent(t *testing.T) {
	tests := []struct {
		name        string
		raw         string
		wantFields  []string // nil = valid
		wantNotJSON bool
	}{
		{"valid", goodEvent, nil, false},
		{"offset time", `{"id":"a","activity":"join","source":"sdk","service_sid":"S","identity":"i","occurred_at":"2026-11-01T04:59:59+05:00"}`, nil, false},
		{"escaped pair ok", `{"id":"a","activity":"join","source":"sdk","service_sid":"S","identity":"\ud83d\ude00","occurred_at":"2026-11-01T00:00:00Z"}`, nil, false},
		{"unknown field", `{"id":"a","activity":"join","source":"sdk","service_sid":"S","identity":"i","occurred_at":"2026-11-01T00:00:00Z","extra":1}`, []string{"extra"}, false},
		{"missing everything", `{}`, []string{"id", "activity", "source", "service_sid", "identity", "occurred_at"}, false},
		{"null id", `{"id":null,"activity":"join","source":"sdk","service_sid":"S","identity":"i","occurred_at":"2026-11-01T00:00:00Z"}`, []string{"id"}, false},
		{"number id", `{"id":5,"activity":"join","source":"sdk","service_sid":"S","identity":"i","occurred_at":"2026-11-01T00:00:00Z"}`, []string{"id"}, false},
		{"object identity", `{"id":"a","activity":"join","source":"sdk","service_sid":"S","identity":{"a":1},"occurred_at":"2026-11-01T00:00:00Z"}`, []string{"identity"}, false},
		{"bad time", `{"id":"a","activity":"join","source":"sdk","service_sid":"S","identity":"i","occurred_at":"yesterday"}`, []string{"occurred_at"}, false},
		{"time without zone", `{"id":"a","activity":"join","source":"sdk","service_sid":"S","identity":"i","occurred_at":"2026-11-01T00:00:00"}`, []string{"occurred_at"}, false},
		{"numeric time", `{"id":"a","activity":"join","source":"sdk","service_sid":"S","identity":"i","occurred_at":1700000000}`, []string{"occurred_at"}, false},
		{"invalid utf8", "{\"id\":\"a\",\"activity\":\"join\",\"source\":\"sdk\",\"service_sid\":\"S\",\"identity\":\"\xff\",\"occurred_at\":\"2026-11-01T00:00:00Z\"}", []string{"identity"}, false},
		{"lone surrogate", `{"id":"a","activity":"join","source":"sdk","service_sid":"S","identity":"\ud800x","occurred_at":"2026-11-01T00:00:00Z"}`, []string{"identity"}, false},
		{"lone low surrogate", `{"id":"\udc00","activity":"join","source":"sdk","service_sid":"S","identity":"i","occurred_at":"2026-11-01T00:00:00Z"}`, []string{"id"}, false},
		{"escaped NUL", `{"id":"a","activity":"join","source":"sdk","service_sid":"S","identity":"a\u0000","occurred_at":"2026-11-01T00:00:00Z"}`, []string{"identity"}, false},
		{"wrong pair", `{"id":"a","activity":"create","source":"sdk","service_sid":"S","identity":"i","occurred_at":"2026-11-01T00:00:00Z"}`, []string{"source"}, false},
		{"array", `[1,2]`, []string{""}, false},
		{"string", `"x"`, []string{""}, false},
		{"malformed", `{"id":`, nil, true},
		{"stray closing brace", `{"id":"a","activity":"join","source":"sdk","service_sid":"S","identity":"i","occurred_at":"2026-11-01T00:00:00Z"}}`, nil, true},
		{"two objects", `{"id":"a","activity":"join","source":"sdk","service_sid":"S","identity":"i","occurred_at":"2026-11-01T00:00:00Z"} {}`, nil, true},
		{"deep nesting", strings.Repeat("[", 10000) + strings.Repeat("]", 10000), []string{""}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, errs, err := decodeEvent([]byte(tt.raw), 3, testNow, nil)
			if tt.wantNotJSON {
				if !errors.Is(err, usage.ErrNotJSON) {
					t.Fatalf("err = %v, want errNotJSON", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tt.wantFields == nil {
				if len(errs) != 0 {
					t.Fatalf("errors %+v, want none", errs)
				}
				if e.ID == "" || e.OccurredAt.Location() != time.UTC {
					t.Fatalf("decoded %+v", e)
				}
				return
			}
			var got []string
			for _, fe := range errs {
				if fe.Index != 3 {
					t.Errorf("index %d, want 3", fe.Index)
				}
				got = append(got, fe.Field)
			}
			if strings.Join(got, ",") != strings.Join(tt.wantFields, ",") {
				t.Fatalf("fields %v, want %v (%+v)", got, tt.wantFields, errs)
			}
		})
	}
}

func batchBody(events ...string) string { return `{"events":[` + strings.Join(events, ",") + `]}` }

func TestDecodeBatch(t *testing.T) {
	bad := strings.Replace(goodEvent, `"sdk"`, `"web"`, 1)
	tests := []struct {
		name       string
		body       string
		wantStatus int // 0 = ok
		wantN      int
		wantIdx    []int
	}{
		{"one", batchBody(goodEvent), 0, 1, nil},
		{"thousand", batchBody(repeat(goodEvent, 1000)...), 0, 1000, nil},
		{"1001", batchBody(repeat(goodEvent, 1001)...), 422, 0, []int{-1}},
		{"empty", batchBody(), 422, 0, []int{-1}},
		{"no events member", `{}`, 422, 0, []int{-1}},
		{"null events", `{"events":null}`, 422, 0, []int{-1}},
		{"unknown top-level", `{"events":[` + goodEvent + `],"x":1}`, 422, 0, []int{-1}},
		{"events not array", `{"events":{}}`, 422, 0, []int{-1}},
		{"two bad of three", batchBody(bad, goodEvent, bad), 422, 0, []int{0, 2}},
		{"malformed", `{"events":[`, 400, 0, nil},
		{"malformed event", `{"events":[{"id":}]}`, 400, 0, nil},
		{"trailing garbage", batchBody(goodEvent) + `{}`, 400, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := decodeBatch(strings.NewReader(tt.body), testNow)
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if len(src.Events) != tt.wantN {
					t.Fatalf("%d events, want %d", len(src.Events), tt.wantN)
				}
				return
			}
			p := toProblem(err)
			if p.Status != tt.wantStatus {
				t.Fatalf("status %d (%v), want %d", p.Status, err, tt.wantStatus)
			}
			var idx []int
			for _, fe := range p.Errors {
				idx = append(idx, fe.Index)
			}
			if tt.wantIdx != nil && !equalInts(idx, tt.wantIdx) {
				t.Fatalf("indexes %v, want %v", idx, tt.wantIdx)
			}
		})
	}
}

func TestNDJSONSource(t *testing.T) {
	bad := strings.Replace(goodEvent, `"alice@example.com"`, `""`, 1)
	body := goodEvent + "\n\n  \r\n" + bad + "\r\n" + goodEvent // blank lines are not events
	src := newNDJSONSource(strings.NewReader(body), testNow)
	n := 0
	for {
		_, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 2 {
		t.Fatalf("%d valid events, want 2", n)
	}
	var verr *usage.ValidationError
	if !errors.As(src.Err(), &verr) || len(verr.Errors) != 1 || verr.Errors[0].Index != 1 || verr.Errors[0].Field != "identity" {
		t.Fatalf("Err = %v, want identity error at index 1", src.Err())
	}

	// A line past the limit is refused without being buffered.
	src = newNDJSONSource(strings.NewReader(strings.Repeat(" ", maxLine+10)+"\n"), testNow)
	if _, err := src.Next(); toProblem(err).Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("long line: %v", err)
	}
	// Malformed JSON on a line is 400.
	src = newNDJSONSource(strings.NewReader(goodEvent+"\n{nope\n"), testNow)
	src.Next()
	if _, err := src.Next(); toProblem(err).Status != http.StatusBadRequest {
		t.Fatalf("malformed line: %v", err)
	}
	// An empty body is a validation error.
	src = newNDJSONSource(strings.NewReader("\n\n"), testNow)
	if _, err := src.Next(); err != io.EOF || src.Err() == nil {
		t.Fatalf("empty body: %v, %v", err, src.Err())
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strings.Replace(s, `"evt-1"`, `"evt-`+itoa(i)+`"`, 1)
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FuzzDecodeEvent checks that the event decoder never panics and never
// accepts an event the contract forbids.
func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(goodEvent))
	f.Add([]byte(`{"id":"\ud800","activity":"join","source":"sdk","service_sid":"S","identity":"i","occurred_at":"2026-11-01T00:00:00Z"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		// The one-pass batch decoder never accepts what the precise one refuses.
		body := append(append([]byte(`{"events":[`), raw...), "]}"...)
		if fast, ok := decodeBatchFast(body, testNow); ok {
			slow, err := decodeBatch(bytes.NewReader(body), testNow)
			if err != nil || len(slow.Events) != len(fast.Events) {
				t.Fatalf("fast path accepted %q, slow path: %v", body, err)
			}
		}
		e, errs, err := decodeEvent(raw, 0, testNow, nil)
		if err != nil || len(errs) > 0 {
			return
		}
		if verrs := e.Validate(0, testNow, nil); len(verrs) != 0 {
			t.Fatalf("accepted an invalid event %+v: %v", e, verrs)
		}
		if !usage.ValidJSONText(raw) {
			t.Fatalf("accepted invalid UTF-8 %q", raw)
		}
	})
}

// FuzzNDJSON checks that the NDJSON decoder never panics, and that every
// event it yields is valid.
func FuzzNDJSON(f *testing.F) {
	f.Add([]byte(goodEvent + "\n" + goodEvent))
	f.Add([]byte("\n\n{\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		src := newNDJSONSource(strings.NewReader(string(body)), testNow)
		for i := 0; i < 1000; i++ {
			e, err := src.Next()
			if err != nil {
				return
			}
			if verrs := e.Validate(0, testNow, nil); len(verrs) != 0 {
				t.Fatalf("yielded an invalid event %+v: %v", e, verrs)
			}
		}
	})
}

// FuzzIdentityPath checks that every valid identity survives the round trip
// through a percent-encoded path segment, and that nothing invalid comes out.
func FuzzIdentityPath(f *testing.F) {
	for _, s := range []string{"alice@example.com", "a/b", "100%", "%2F", "#tag", "with space", "用户/名", "..", "?x=1&y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, identity string) {
		if usage.CheckIdentity(identity) != "" {
			return
		}
		r, err := http.NewRequest("GET", "http://x/v1/accounts/AC1/services/IS1/users/"+url.PathEscape(identity), nil)
		if err != nil {
			t.Fatalf("request for %q: %v", identity, err)
		}
		got, err := identityFromPath(r)
		if err != nil || got != identity {
			t.Fatalf("identity %q came back as %q (%v)", identity, got, err)
		}
	})
}
