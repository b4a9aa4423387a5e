package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tallyhq/tally/internal/pgcluster"
	"github.com/tallyhq/tally/internal/postgres"
)

// TestFaults: clients post batches (retrying each with the same ids until it
// is acknowledged, as a real backend does) while the database is stopped
// and started again, and while tally gets SIGTERM and is restarted.
// Afterwards every acknowledged batch is stored whole, no event is stored
// twice and the active-user count is exactly what was sent.
func TestFaults(t *testing.T) {
	bin := buildTally(t)
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "pg")
	cluster, err := pgcluster.Start(ctx, dir, pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cluster.Stop(context.Background()) }()
	if err := createDatabase(ctx, cluster.ConnString("postgres"), "tally"); err != nil {
		t.Fatal(err)
	}
	dbURL := cluster.ConnString("tally")
	master := "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
	env := cleanEnv("DATABASE_URL="+dbURL, "TALLY_MASTER_KEY="+master)
	run := func(args ...string) string {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tally %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("migrate", "up")
	out := run("accounts", "create", "--name", "Faulty")
	fields := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			fields[f[0]] = f[1]
		}
	}
	account, keySID, secret := fields["account_sid"], fields["api_key_sid"], fields["api_key_secret"]

	// A fixed port, so clients find the restarted server where they left it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	base := "http://" + addr
	var server *exec.Cmd
	startServer := func() {
		server = exec.Command(bin, "serve")
		server.Env = append(env, "TALLY_ADDR="+addr)
		server.Stderr = io.Discard
		if err := server.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if resp, err := http.Get(base + "/healthz"); err == nil {
				resp.Body.Close()
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("tally serve did not start")
			}
		}
	}
	startServer()
	defer func() { server.Process.Kill() }()

	client := &http.Client{Timeout: 15 * time.Second}
	post := func(body string) (int, http.Header, error) {
		req, _ := http.NewRequest("POST", base+"/v1/accounts/"+account+"/events", strings.NewReader(body))
		req.SetBasicAuth(keySID, secret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header, nil
	}

	const clients, batchSize, pool = 4, 100, 700
	var stop atomic.Bool
	var sent, acked, retries, status503 atomic.Int64
	var mu sync.Mutex
	identities := map[string]bool{}
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := 0; !stop.Load(); b++ {
				var evs []string
				var ids []string
				for i := 0; i < batchSize; i++ {
					identity := fmt.Sprintf("user-%d", (c*7919+b*31+i*13)%pool)
					ids = append(ids, identity)
					evs = append(evs, fmt.Sprintf(`{"id":"c%d-b%d-%d","activity":"send","source":"sdk","service_sid":"IS1","identity":%q,"occurred_at":"2026-10-%02dT12:00:00Z"}`,
						c, b, i, identity, 1+(b+i)%28))
				}
				body := `{"events":[` + strings.Join(evs, ",") + `]}`
				sent.Add(1)
				for attempt := 0; ; attempt++ {
					if attempt > 0 {
						retries.Add(1)
						time.Sleep(200 * time.Millisecond)
					}
					st, h, err := post(body)
					if err == nil && st == 503 {
						status503.Add(1)
						if h.Get("Retry-After") == "" {
							t.Error("503 without Retry-After")
						}
					}
					if err == nil && st == 200 {
						break
					}
					if err == nil && st != 503 && st != 429 {
						t.Errorf("unexpected status %d", st)
						return
					}
					if attempt > 300 {
						t.Error("a batch was never acknowledged")
						return
					}
				}
				acked.Add(1)
				mu.Lock()
				for _, id := range ids {
					identities[id] = true
				}
				mu.Unlock()
			}
		}()
	}

	time.Sleep(3 * time.Second)
	// Fault (a): the database goes away for a few seconds.
	if err := cluster.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	downAt := time.Now()
	time.Sleep(500 * time.Millisecond)
	for _, path := range []string{"/readyz", "/v1/accounts/" + account + "/keys"} {
		start := time.Now()
		req, _ := http.NewRequest("GET", base+path, nil)
		req.SetBasicAuth(keySID, secret)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s while the database is down: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s while the database is down: %d, Retry-After %q", path, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s took %v while the database was down", path, d)
		}
	}
	time.Sleep(time.Until(downAt.Add(3 * time.Second)))
	cluster, err = pgcluster.Start(ctx, dir, pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("tally did not recover when the database came back")
		}
	}
	time.Sleep(3 * time.Second)

	// Fault (b): SIGTERM mid-load, then a restart on the same address.
	server.Process.Signal(syscall.SIGTERM)
	if err := server.Wait(); err != nil {
		t.Fatalf("tally serve exit after SIGTERM: %v", err)
	}
	time.Sleep(time.Second)
	startServer()
	time.Sleep(3 * time.Second)
	stop.Store(true)
	wg.Wait()

	// The server's reads fold the rollup first; this test reads the tables.
	db, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := postgres.New(db, nil).FoldRollup(ctx, ""); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var events, distinctIDs, active int64
	conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT event_id) FROM events`).Scan(&events, &distinctIDs)
	conn.QueryRow(ctx, `SELECT count(*) FROM month_users WHERE month = '2026-10-01'`).Scan(&active)
	want := acked.Load() * batchSize
	summary, _ := json.Marshal(map[string]int64{"batches_sent": sent.Load(), "batches_acknowledged": acked.Load(),
		"retries": retries.Load(), "answers_503": status503.Load(), "events_stored": events,
		"events_expected": want, "active_users": active, "active_users_expected": int64(len(identities))})
	t.Logf("fault test: %s", summary)
	if events != want || distinctIDs != events {
		t.Fatalf("events %d (distinct ids %d), want %d acknowledged", events, distinctIDs, want)
	}
	if active != int64(len(identities)) {
		t.Fatalf("active users %d, want %d", active, len(identities))
	}
	if retries.Load() == 0 {
		t.Fatal("no request was retried: the faults did not bite")
	}
	server.Process.Signal(syscall.SIGTERM)
	server.Wait()
}
