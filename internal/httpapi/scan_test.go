package httpapi

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/tallyhq/tally/internal/usage"
)

// benchBatch is a batch as the bench and a typical backend send it.
func benchBatch(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"events":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"bench-%016x%08x","activity":"send","source":"sdk","service_sid":"IS00000000000000000000000000000001",`+
			`"identity":"user-%07d@example.com","occurred_at":"2026-10-%02dT12:34:56.123456789Z","endpoint_id":"device-%d"}`,
			uint64(i)*0x9e3779b97f4a7c15, i, i%5000, i%28+1, i%5)
	}
	b.WriteString("]}\n")
	return []byte(b.String())
}

// TestScanner shows what the scanner takes (so that the fast path is not
// silently unused) and what it leaves to encoding/json; either way the
// decoded batch is the same.
func TestScanner(t *testing.T) {
	ev := func(members string) string { return `{"events":[` + members + `]}` }
	tests := []struct {
		name string
		body string
		scan bool // the scanner decodes it
	}{
		{"typical", string(benchBatch(3)), true},
		{"every field", ev(goodEvent), true},
		{"whitespace everywhere", " \n{ \"events\" :\t[ { \"id\" : \"a\" ,\r\n \"activity\":\"send\", \"source\":\"sdk\",\"service_sid\":\"S\",\"identity\":\"i\",\"occurred_at\":\"2026-10-05T12:00:00Z\" } ] } \n", true},
		{"null members", ev(`{"id":"a","activity":"send","source":"sdk","service_sid":"S","identity":"i","occurred_at":"2026-10-05T12:00:00Z","actor":null,"endpoint_id":null}`), true},
		{"non-ASCII", ev(`{"id":"a","activity":"send","source":"sdk","service_sid":"S","identity":"用户","occurred_at":"2026-10-05T12:00:00Z"}`), true},
		{"escape", ev(`{"id":"a\"b","activity":"send","source":"sdk","service_sid":"S","identity":"i","occurred_at":"2026-10-05T12:00:00Z"}`), false},
		{"unicode escape", ev(`{"id":"a","activity":"send","source":"sdk","service_sid":"S","identity":"\u00e9","occurred_at":"2026-10-05T12:00:00Z"}`), false},
		{"key in another case", ev(`{"ID":"a","activity":"send","source":"sdk","service_sid":"S","identity":"i","occurred_at":"2026-10-05T12:00:00Z"}`), false},
		{"duplicate member", ev(`{"id":"a","id":"b","activity":"send","source":"sdk","service_sid":"S","identity":"i","occurred_at":"2026-10-05T12:00:00Z"}`), false},
		{"number", ev(`{"id":1,"activity":"send","source":"sdk","service_sid":"S","identity":"i","occurred_at":"2026-10-05T12:00:00Z"}`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scanned, ok := scanBatch(tt.body)
			if ok != tt.scan {
				t.Fatalf("scanBatch ok = %v, want %v", ok, tt.scan)
			}
			want, wok := decodeWireBatch([]byte(tt.body))
			if ok && (!wok || !reflect.DeepEqual(scanned, want)) {
				t.Fatalf("scanned %+v, encoding/json %+v (ok %v)", scanned, want, wok)
			}
			if fast, fok := decodeBatchFast([]byte(tt.body), testNow); ok && (!fok || len(fast.Events) != len(scanned)) {
				t.Fatalf("decodeBatchFast of a scanned batch: ok %v", fok)
			}
		})
	}
	// Gives up: syntax the encoding/json path refuses too.
	for _, body := range []string{``, `{`, `{"events":[]}`, `{"events":[{}]`, `{"events":[{}]}x`, `{"events":[{"id":"a"},]}`, `{"events":[{"id":"a}]}`, `{"events":[{"id":nul}]}`, "{\"events\":[{\"id\":\"\x01\"}]}", "{\"events\":[{\"id\":\"\xff\"}]}"} {
		if _, ok := scanBatch(body); ok {
			t.Errorf("scanBatch(%q) ok", body)
		}
	}
	if _, ok := scanBatch(string(benchBatch(MaxBatch + 1))); ok {
		t.Errorf("scanBatch took %d events", MaxBatch+1)
	}
}

// FuzzScanBatch checks the scanner against encoding/json: whatever it
// decodes, encoding/json decodes to the same events.
func FuzzScanBatch(f *testing.F) {
	f.Add([]byte(`{"events":[` + goodEvent + `]}`))
	f.Add(benchBatch(2))
	f.Add([]byte(`{"events":[{"id":null,"actor":"x"} , {}]}`))
	f.Add([]byte(`{"events":[{"id":"a","id":"b"}]}`))
	f.Add([]byte(`{"events":[{"Id":"a"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if scanned, ok := scanBatch(string(body)); ok {
			want, wok := decodeWireBatch(body)
			if !wok || !reflect.DeepEqual(scanned, want) {
				t.Fatalf("scanned %q to %+v; encoding/json: %+v (ok %v)", body, scanned, want, wok)
			}
		}
		// The same for one event, as an NDJSON line.
		if i := bytes.IndexByte(body, '{'); i >= 0 {
			line := body[i:]
			if w, ok := scanEvent(string(line)); ok {
				want, wok := usage.DecodeEventJSON(line)
				if !wok || w != want {
					t.Fatalf("scanned line %q to %+v; encoding/json: %+v (ok %v)", line, w, want, wok)
				}
			}
		}
	})
}

// BenchmarkDecodeBatch compares the scanner with encoding/json on a batch
// of 1000 typical events (decoding only; validation is the same for both).
func BenchmarkDecodeBatch(b *testing.B) {
	body := benchBatch(MaxBatch)
	b.Run("scanner", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, ok := scanBatch(string(body)); !ok {
				b.Fatal("scanner gave up")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, ok := decodeWireBatch(body); !ok {
				b.Fatal("encoding/json gave up")
			}
		}
	})
	b.Run("whole-batch", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, ok := decodeBatchFast(body, testNow); !ok {
				b.Fatal("fast path gave up")
			}
		}
	})
}
