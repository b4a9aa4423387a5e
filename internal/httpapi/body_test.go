package httpapi_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/httpapi"
	"github.com/tallyhq/tally/internal/usage"
)

// rawConn dials srv and writes head (request line and headers, without the
// blank line that ends them) and then body, over a plain TCP connection, so
// a test can send what net/http's client never would.
func rawConn(t *testing.T, srv *httptest.Server, head, body string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, strings.ReplaceAll(head, "\n", "\r\n")+"\r\n\r\n"+body); err != nil {
		t.Fatal(err)
	}
	return conn
}

// readAnswer reads one response from conn within d.
func readAnswer(t *testing.T, conn net.Conn, d time.Duration) (*http.Response, []byte) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer within %v: %v", d, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func basic(c cred) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(c.sid+":"+c.secret))
}

// TestClientBrokenBodies: a body the client broke is a 400 problem, never a
// 5xx, and no ERROR is logged.
func TestClientBrokenBodies(t *testing.T) {
	e := newEnv(t)
	key := e.keys[e.acme][usage.RoleIngest]
	path := "/v1/accounts/" + e.acme + "/events"
	line := eventJSON("c1", "alice", "2026-11-05T12:00:00Z") + "\n"
	tests := []struct {
		name, contentType, headers, body string
		closeWrite                       bool
		want                             int
	}{
		{"malformed chunked NDJSON", "application/x-ndjson", "Transfer-Encoding: chunked", fmt.Sprintf("%x\r\n%s\r\nzz\r\n", len(line), line), false, 400},
		{"malformed chunked JSON", "application/json", "Transfer-Encoding: chunked", "5\r\n{\"eve\r\nnot-hex\r\n", false, 400},
		{"chunk longer than announced", "application/x-ndjson", "Transfer-Encoding: chunked", "2\r\nabcdef\r\n0\r\n\r\n", false, 400},
		{"NDJSON cut short", "application/x-ndjson", "Content-Length: 100000", line, true, 400},
		{"JSON cut short", "application/json", "Content-Length: 5000", `{"events":[` + eventJSON("c2", "bob", "2026-11-05T12:00:00Z"), true, 400},
		{"chunked cut short", "application/x-ndjson", "Transfer-Encoding: chunked", fmt.Sprintf("%x\r\n%s\r\n", len(line), line), true, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			head := fmt.Sprintf("POST %s HTTP/1.1\nHost: tally\nAuthorization: %s\nContent-Type: %s\n%s", path, basic(key), tt.contentType, tt.headers)
			conn := rawConn(t, e.srv, head, tt.body)
			if tt.closeWrite {
				conn.(*net.TCPConn).CloseWrite()
			}
			resp, body := readAnswer(t, conn, 10*time.Second)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
			var p map[string]any
			if err := json.Unmarshal(body, &p); err != nil || p["status"] != float64(tt.want) || p["detail"] == "" {
				t.Fatalf("not a problem document: %s", body)
			}
		})
	}
	if strings.Contains(e.logs.String(), `"level":"ERROR"`) {
		t.Fatalf("a client's broken body was logged as a server fault:\n%s", e.logs.String())
	}
	assertNoServerErrors(t, e, e.srv)
	var n int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d events stored from broken bodies", n)
	}
}

// assertNoServerErrors fails if srv's metrics count a 5xx answer.
func assertNoServerErrors(t *testing.T, e *env, srv *httptest.Server) {
	t.Helper()
	m := string(e.do(srv, cred{}, "GET", "/metrics", "", nil).body)
	for _, l := range strings.Split(m, "\n") {
		if strings.HasPrefix(l, "tally_http_requests_total{") && strings.Contains(l, `status="5`) {
			t.Fatalf("a 5xx was counted: %s", l)
		}
	}
}

// TestClientLeavesMidBody: a client that disconnects in the middle of an
// NDJSON body gets no answer (none can reach it); the server logs no ERROR
// and counts no 5xx.
func TestClientLeavesMidBody(t *testing.T) {
	e := newEnv(t)
	key := e.keys[e.acme][usage.RoleIngest]
	path := "/v1/accounts/" + e.acme + "/events"
	for _, ct := range []string{"application/x-ndjson", "application/json"} {
		head := fmt.Sprintf("POST %s HTTP/1.1\nHost: tally\nAuthorization: %s\nContent-Type: %s\nTransfer-Encoding: chunked", path, basic(key), ct)
		var body strings.Builder
		for i := range 3000 { // past the prefetch, so the body streams into PostgreSQL
			l := eventJSON(fmt.Sprintf("l%d", i), "alice", "2026-11-05T12:00:00Z") + "\n"
			fmt.Fprintf(&body, "%x\r\n%s\r\n", len(l), l)
		}
		conn := rawConn(t, e.srv, head, body.String())
		time.Sleep(300 * time.Millisecond)
		conn.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && strings.Count(e.logs.String(), `"msg":"request"`) < 2 {
		time.Sleep(50 * time.Millisecond)
	}
	if got := strings.Count(e.logs.String(), `"msg":"request"`); got < 2 {
		t.Fatalf("%d request lines logged, want 2:\n%s", got, e.logs.String())
	}
	if strings.Contains(e.logs.String(), `"level":"ERROR"`) {
		t.Fatalf("a client that left was logged as a server fault:\n%s", e.logs.String())
	}
	assertNoServerErrors(t, e, e.srv)
}

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	io.WriteString(zw, s)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestGzipIngest: gzip bodies are accepted, the limits apply to the decoded
// body, and a bomb is refused 413 after the limit, not inflated whole.
func TestGzipIngest(t *testing.T) {
	e := newEnv(t)
	key := e.keys[e.acme][usage.RoleIngest]
	path := "/v1/accounts/" + e.acme + "/events"
	var nd strings.Builder
	for i := range 500 {
		nd.WriteString(eventJSON(fmt.Sprintf("g%d", i), fmt.Sprintf("u%d", i), "2026-11-05T12:00:00Z") + "\n")
	}
	bombJSON := gzipped(t, `{"events":[`+strings.Repeat(" ", httpapi.MaxJSONBody+10)+`]}`)
	var bombND bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bombND, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for range 200 { // 200 MiB of NUL bytes, in about 200 KiB
		zw.Write(zeros)
	}
	zw.Close()
	tests := []struct {
		name, contentType, encoding string
		body                        []byte
		want                        int
		accepted                    float64
	}{
		{"JSON", "application/json", "gzip", gzipped(t, batch(eventJSON("j1", "alice", "2026-11-05T12:00:00Z"))), 200, 1},
		{"NDJSON", "application/x-ndjson", "gzip", gzipped(t, nd.String()), 200, 500},
		{"JSON bomb", "application/json", "gzip", bombJSON, 413, 0},
		{"NDJSON bomb", "application/x-ndjson", "gzip", bombND.Bytes(), 413, 0},
		{"corrupt gzip", "application/json", "gzip", []byte("\x1f\x8b\x08\x00not gzip at all"), 400, 0},
		{"not gzip", "application/x-ndjson", "gzip", []byte(nd.String()), 400, 0},
		{"truncated gzip", "application/x-ndjson", "gzip", gzipped(t, nd.String())[:200], 400, 0},
		{"brotli", "application/json", "br", []byte("x"), 415, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), "POST", e.srv.URL+path, bytes.NewReader(tt.body))
			req.SetBasicAuth(key.sid, key.secret)
			req.Header.Set("Content-Type", tt.contentType)
			req.Header.Set("Content-Encoding", tt.encoding)
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got map[string]any
			json.NewDecoder(resp.Body).Decode(&got)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %v", resp.StatusCode, tt.want, got)
			}
			if tt.want == 200 && got["accepted"] != tt.accepted {
				t.Fatalf("accepted %v, want %v", got["accepted"], tt.accepted)
			}
			if tt.want != 200 && got["status"] != float64(tt.want) {
				t.Fatalf("not a problem document: %v", got)
			}
		})
	}
}

// TestStalledUploadsDoNotStarveOthers: twice the pool size in NDJSON uploads
// that send their headers and some lines and then stall hold no connection
// that others need: another account's report, a JSON batch, a token mint and
// /readyz each answer within a second meanwhile.
func TestStalledUploadsDoNotStarveOthers(t *testing.T) {
	e := newEnv(t)
	srv := e.newServerWith(httpapi.Config{Ready: func(r *http.Request) error { return e.store.Ping(r.Context()) }})
	ingest := e.keys[e.acme][usage.RoleIngest]
	other := e.keys[e.other]
	check := func(t *testing.T) {
		t.Helper()
		checks := []struct {
			name, method, path, body string
			key                      cred
			want                     int
		}{
			{"report", "GET", "/v1/accounts/" + e.other + "/reports/2026-11", "", other[usage.RoleFinance], 200},
			{"JSON batch", "POST", "/v1/accounts/" + e.other + "/events", batch(eventJSON(usage.NewKeySID(), "carol", "2026-11-05T12:00:00Z")), other[usage.RoleIngest], 200},
			{"token mint", "POST", "/v1/accounts/" + e.other + "/tokens", `{"identity":"carol","grants":{"chat":{"service_sid":"IS1"}}}`, other[usage.RoleIngest], 201},
			{"readyz", "GET", "/readyz", "", cred{}, 200},
		}
		for _, c := range checks {
			req, _ := http.NewRequestWithContext(t.Context(), c.method, srv.URL+c.path, strings.NewReader(c.body))
			if c.key.sid != "" {
				req.SetBasicAuth(c.key.sid, c.key.secret)
			}
			req.Header.Set("Content-Type", "application/json")
			client := &http.Client{Timeout: time.Second}
			start := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s: no answer within 1 s: %v", c.name, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Fatalf("%s: status %d, want %d: %s", c.name, resp.StatusCode, c.want, b)
			}
			t.Logf("%s answered in %v", c.name, time.Since(start).Round(time.Millisecond))
		}
	}
	check(t) // warm: keys cached, the month folded

	n := 2 * int(e.pool.Config().MaxConns)
	var big strings.Builder // past the prefetch: these bodies reach PostgreSQL
	for i := 0; big.Len() < 300<<10; i++ {
		big.WriteString(eventJSON(fmt.Sprintf("s%d", i), "alice", "2026-11-05T12:00:00Z") + "\n")
	}
	head := fmt.Sprintf("POST /v1/accounts/%s/events HTTP/1.1\nHost: tally\nAuthorization: %s\nContent-Type: application/x-ndjson\nContent-Length: %d",
		e.acme, basic(ingest), 100<<20)
	for i := range n {
		body := eventJSON(fmt.Sprintf("one%d", i), "alice", "2026-11-05T12:00:00Z") + "\n"
		if i%2 == 1 {
			body = big.String()
		}
		rawConn(t, srv, head, body) // and then nothing
	}
	time.Sleep(500 * time.Millisecond) // let them reach the handler
	t.Logf("pool: %d of %d connections acquired", e.pool.Stat().AcquiredConns(), e.pool.Stat().MaxConns())
	check(t)
}

// TestTricklingBodyIsCutOff: a body that trickles in past the body deadline
// is answered 408, and one that stalls past the idle timeout too.
func TestTricklingBodyIsCutOff(t *testing.T) {
	e := newEnv(t)
	srv := e.newServerWith(httpapi.Config{BodyIdle: 500 * time.Millisecond, BodyTimeout: 2 * time.Second, StreamTimeout: 2 * time.Second})
	key := e.keys[e.acme][usage.RoleIngest]
	for _, ct := range []string{"application/json", "application/x-ndjson"} {
		t.Run("trickle "+ct, func(t *testing.T) {
			head := fmt.Sprintf("POST /v1/accounts/%s/events HTTP/1.1\nHost: tally\nAuthorization: %s\nContent-Type: %s\nContent-Length: 10000", e.acme, basic(key), ct)
			conn := rawConn(t, srv, head, "")
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { // 1 byte every 0.2 s
				defer wg.Done()
				for range 100 {
					if _, err := conn.Write([]byte(" ")); err != nil {
						return
					}
					time.Sleep(200 * time.Millisecond)
				}
			}()
			start := time.Now()
			resp, body := readAnswer(t, conn, 10*time.Second)
			conn.Close()
			wg.Wait()
			if resp.StatusCode != http.StatusRequestTimeout {
				t.Fatalf("status %d, want 408: %s", resp.StatusCode, body)
			}
			t.Logf("cut off after %v", time.Since(start).Round(time.Millisecond))
		})
		t.Run("stall "+ct, func(t *testing.T) {
			head := fmt.Sprintf("POST /v1/accounts/%s/events HTTP/1.1\nHost: tally\nAuthorization: %s\nContent-Type: %s\nContent-Length: 10000", e.acme, basic(key), ct)
			conn := rawConn(t, srv, head, "{")
			resp, body := readAnswer(t, conn, 5*time.Second)
			if resp.StatusCode != http.StatusRequestTimeout {
				t.Fatalf("status %d, want 408: %s", resp.StatusCode, body)
			}
		})
	}
	assertNoServerErrors(t, e, srv)
}
