package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildTally builds the binary once for the end-to-end tests.
func buildTally(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tally")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DATABASE_URL=") && !strings.HasPrefix(kv, "TALLY_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func TestServeRefusesWithoutConfig(t *testing.T) {
	bin := buildTally(t)
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"no database", nil, "DATABASE_URL is not set"},
		{"no master key", []string{"DATABASE_URL=postgres://x@127.0.0.1:1/x"}, "TALLY_MASTER_KEY is not set"},
		{"short master key", []string{"DATABASE_URL=postgres://x@127.0.0.1:1/x", "TALLY_MASTER_KEY=c2hvcnQ="}, "TALLY_MASTER_KEY is invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, "serve")
			cmd.Env = cleanEnv(tt.env...)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("serve exited with %v, want failure", err)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Fatalf("output %q does not say %q", out, tt.want)
			}
		})
	}
}

type devProcess struct {
	cmd    *exec.Cmd
	stdout *strings.Builder
	stderr *syncBuffer
	done   chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDev runs `tally dev` on a free port, with extra flags args, and
// waits until /readyz answers.
func startDev(t *testing.T, bin, dataDir string, args ...string) (*devProcess, credentials) {
	t.Helper()
	return startDevEnv(t, bin, dataDir, nil, args...)
}

// startDevEnv is startDev with settings env (NAME=value) in its environment.
func startDevEnv(t *testing.T, bin, dataDir string, env []string, args ...string) (*devProcess, credentials) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"dev", "--addr", "127.0.0.1:0", "--data-dir", dataDir}, args...)...)
	cmd.Env = cleanEnv(env...)
	out := &strings.Builder{}
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &devProcess{cmd: cmd, stdout: out, stderr: stderr, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); pw.Close() }()
	banner := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		closed := false
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if !closed && strings.Contains(sc.Text(), "Ctrl-C stops") {
				close(banner)
				closed = true
			}
		}
	}()
	t.Cleanup(func() { p.cmd.Process.Kill() })
	select {
	case <-banner:
	case err := <-p.done:
		t.Fatalf("tally dev exited early: %v\n%s", err, out)
	case <-time.After(90 * time.Second):
		t.Fatalf("tally dev did not print its banner\n%s", out)
	}
	var c credentials
	b, err := os.ReadFile(filepath.Join(dataDir, "credentials.json"))
	if err != nil || json.Unmarshal(b, &c) != nil {
		t.Fatalf("credentials.json: %v %s", err, b)
	}
	if !strings.Contains(out.String(), c.Account.APIKeySID) || !strings.Contains(out.String(), "curl -u") {
		t.Fatalf("banner lacks the demo key or the curl:\n%s", out)
	}
	resp, err := http.Get(c.BaseURL + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	resp.Body.Close()
	return p, c
}

// stop sends SIGTERM and expects a clean exit with the cluster stopped.
func (p *devProcess) stop(t *testing.T, dataDir string) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t, dataDir)
}

func (p *devProcess) wait(t *testing.T, dataDir string) {
	t.Helper()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("tally dev exited with %v after SIGTERM", err)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("tally dev did not exit within 45s of SIGTERM")
	}
	// The plain cluster, or every node of a Citus cluster.
	nodes, _ := filepath.Glob(filepath.Join(dataDir, "citus", "*", "PG_VERSION"))
	for _, dir := range append([]string{filepath.Join(dataDir, "postgres", "PG_VERSION")}, nodes...) {
		if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the cluster in %s is still running (postmaster.pid: %v)", filepath.Dir(dir), err)
		}
	}
}

func postEvent(t *testing.T, c credentials, key credentialKey, id string) (int, string) {
	t.Helper()
	body := `{"events":[{"id":"` + id + `","activity":"send","source":"sdk","service_sid":"IS1","identity":"alice@example.com","occurred_at":"2026-10-05T12:00:00Z"}]}`
	st, b := callAPI(t, c.BaseURL, key, "POST", "/v1/accounts/"+c.Account.AccountSID+"/events", body)
	return st, strings.TrimSpace(string(b))
}

// callAPI sends a JSON request with key's credentials and returns the
// status and the body.
func callAPI(t *testing.T, baseURL string, key credentialKey, method, path, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, baseURL+path, strings.NewReader(body))
	req.SetBasicAuth(key.APIKeySID, key.APIKeySecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestDevEndToEnd drives the built binary as a new user would: tally dev,
// an event with the demo key, the admin commands against its database, a
// clean stop, and a second start that reuses the cluster and credentials.
func TestDevEndToEnd(t *testing.T) {
	bin := buildTally(t)
	dataDir := filepath.Join(t.TempDir(), "d")
	dev, creds := startDev(t, bin, dataDir)

	if st, body := postEvent(t, creds, creds.Account, "evt-1"); st != 200 || body != `{"accepted":1,"duplicates":0,"late":0}` {
		t.Fatalf("post: %d %s", st, body)
	}

	// The admin commands, pointed at the dev database with the dev master key.
	master, err := os.ReadFile(filepath.Join(dataDir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = cleanEnv("DATABASE_URL="+creds.DatabaseURL, "TALLY_MASTER_KEY="+strings.TrimSpace(string(master)))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tally %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := cli("migrate", "status"); !strings.Contains(out, "applied") {
		t.Fatalf("migrate status:\n%s", out)
	}
	field := func(out, name string) string {
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == name {
				return f[1]
			}
		}
		t.Fatalf("no %s in %q", name, out)
		return ""
	}
	out := cli("keys", "create", "--account", creds.Account.AccountSID, "--role", "ingest")
	ingest := credentialKey{AccountSID: creds.Account.AccountSID, APIKeySID: field(out, "api_key_sid"), APIKeySecret: field(out, "api_key_secret")}
	if st, _ := postEvent(t, creds, ingest, "evt-2"); st != 200 {
		t.Fatalf("post with a CLI-made key: %d", st)
	}
	cli("keys", "revoke", ingest.APIKeySID)
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := postEvent(t, creds, ingest, "evt-3")
		if st == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revoked key still answered %d after 5s", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// October is past its grace period: the first run stores version 1 for
	// every account, the second finds nothing new. Not a terminal: plain
	// progress lines, then the summary table.
	out = cli("report", "run", "--month", "2026-10")
	if !strings.Contains(out, "[1/2]") || !strings.Contains(out, "ACCOUNT") || !strings.Contains(out, creds.Account.AccountSID) ||
		!strings.Contains(out, "stored") || !strings.Contains(out, "USD") {
		t.Fatalf("report run:\n%s", out)
	}
	out = cli("report", "run", "--month", "2026-10", "--account", creds.Account.AccountSID)
	if !strings.Contains(out, "unchanged") || strings.Contains(out, creds.Platform.AccountSID) {
		t.Fatalf("second report run:\n%s", out)
	}
	out = cli("accounts", "create", "--name", "Beta")
	if !strings.HasPrefix(field(out, "account_sid"), "AC") || !strings.HasPrefix(field(out, "api_key_sid"), "SK") {
		t.Fatalf("accounts create:\n%s", out)
	}

	// SIGTERM while a 1000-event batch is in flight: the batch completes,
	// then the process exits 0 and stops its cluster.
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", creds.BaseURL+"/v1/accounts/"+creds.Account.AccountSID+"/events", pr)
	req.SetBasicAuth(creds.Account.APIKeySID, creds.Account.APIKeySecret)
	req.Header.Set("Content-Type", "application/json")
	type result struct {
		status int
		body   string
		err    error
	}
	resc := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			resc <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resc <- result{status: resp.StatusCode, body: strings.TrimSpace(string(b))}
	}()
	var events []string
	for i := 0; i < 1000; i++ {
		events = append(events, `{"id":"inflight-`+strconv.Itoa(i)+`","activity":"join","source":"sdk","service_sid":"IS1","identity":"u`+strconv.Itoa(i)+`","occurred_at":"2026-10-05T12:00:00Z"}`)
	}
	body := `{"events":[` + strings.Join(events, ",") + `]}`
	pw.Write([]byte(body[:len(body)/2]))
	time.Sleep(200 * time.Millisecond) // the request is in flight
	dev.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(500 * time.Millisecond)
	pw.Write([]byte(body[len(body)/2:]))
	pw.Close()
	res := <-resc
	if res.err != nil || res.status != 200 || res.body != `{"accepted":1000,"duplicates":0,"late":1000}` {
		t.Fatalf("in-flight batch across SIGTERM: %+v", res)
	}
	dev.wait(t, dataDir)

	// A second start reuses the cluster and the credentials.
	dev2, creds2 := startDev(t, bin, dataDir)
	if creds2.Account != creds.Account || creds2.Platform != creds.Platform {
		t.Fatalf("credentials changed across restarts: %+v vs %+v", creds2, creds)
	}
	if st, body := postEvent(t, creds2, creds2.Account, "evt-1"); st != 200 || body != `{"accepted":0,"duplicates":1,"late":0}` {
		t.Fatalf("repost after restart: %d %s", st, body)
	}

	// An alert's signing secret is sealed under the master key too (tally
	// dev allows a private webhook address).
	alertReq, _ := http.NewRequest("POST", creds2.BaseURL+"/v1/accounts/"+creds2.Account.AccountSID+"/alerts",
		strings.NewReader(`{"friendly_name":"users","metric":"active_users","threshold":1000000,"webhook_url":"http://127.0.0.1:9/hook"}`))
	alertReq.SetBasicAuth(creds2.Account.APIKeySID, creds2.Account.APIKeySecret)
	alertReq.Header.Set("Content-Type", "application/json")
	alertResp, err := http.DefaultClient.Do(alertReq)
	if err != nil {
		t.Fatal(err)
	}
	alertBody, _ := io.ReadAll(alertResp.Body)
	alertResp.Body.Close()
	if alertResp.StatusCode != 201 {
		t.Fatalf("create an alert: %d %s", alertResp.StatusCode, alertBody)
	}

	// Master key rotation: rewrap under a new key, then a server holding only
	// the new key authenticates the existing keys.
	newKey := "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
	rotate := exec.Command(bin, "keys", "rewrap")
	rotate.Env = cleanEnv("DATABASE_URL="+creds2.DatabaseURL, "TALLY_MASTER_KEY="+newKey,
		"TALLY_MASTER_KEY_PREVIOUS="+strings.TrimSpace(string(master)))
	if out, err := rotate.CombinedOutput(); err != nil || !strings.Contains(string(out), "and 1 alert signing secrets") {
		t.Fatalf("keys rewrap: %v %s", err, out)
	}
	serveErr := &syncBuffer{}
	serve := exec.Command(bin, "serve")
	serve.Env = cleanEnv("DATABASE_URL="+creds2.DatabaseURL, "TALLY_MASTER_KEY="+newKey, "TALLY_ADDR=127.0.0.1:0")
	serve.Stderr = serveErr
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer serve.Process.Kill()
	addr := ""
	for deadline := time.Now().Add(20 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, line := range strings.Split(serveErr.String(), "\n") {
			var l struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "serving" {
				addr = l.Addr
			}
		}
	}
	if addr == "" {
		t.Fatalf("serve did not start: %s", serveErr)
	}
	rotated := creds2
	rotated.BaseURL = "http://" + addr
	if st, body := postEvent(t, rotated, rotated.Account, "evt-rotated"); st != 200 {
		t.Fatalf("after rotation, the demo key on a new-key-only server: %d %s", st, body)
	}
	// tally serve, unlike tally dev, refuses a private webhook address by
	// default (TALLY_WEBHOOK_ALLOW_PRIVATE).
	alertReq, _ = http.NewRequest("POST", rotated.BaseURL+"/v1/accounts/"+rotated.Account.AccountSID+"/alerts",
		strings.NewReader(`{"friendly_name":"users","metric":"active_users","threshold":1000000,"webhook_url":"http://127.0.0.1:9/hook"}`))
	alertReq.SetBasicAuth(rotated.Account.APIKeySID, rotated.Account.APIKeySecret)
	alertReq.Header.Set("Content-Type", "application/json")
	alertResp, err = http.DefaultClient.Do(alertReq)
	if err != nil {
		t.Fatal(err)
	}
	alertBody, _ = io.ReadAll(alertResp.Body)
	alertResp.Body.Close()
	if alertResp.StatusCode != 422 {
		t.Fatalf("serve: an alert to a private address: %d %s, want 422", alertResp.StatusCode, alertBody)
	}
	serve.Process.Signal(syscall.SIGTERM)
	if err := serve.Wait(); err != nil {
		t.Fatalf("serve exit after SIGTERM: %v", err)
	}
	dev2.stop(t, dataDir)

	// No secret reached a log: the banner on stdout is the one exception.
	logs := dev.stderr.String() + dev2.stderr.String() + serveErr.String()
	for _, secret := range []string{creds.Account.APIKeySecret, creds.Platform.APIKeySecret, ingest.APIKeySecret} {
		if strings.Contains(logs, secret) {
			t.Fatalf("a key secret is in the logs")
		}
	}
	if !strings.Contains(logs, `"msg":"request"`) {
		t.Fatalf("no request log lines: %.500s", logs)
	}
}
