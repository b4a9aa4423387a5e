package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tallyhq/tally/internal/pgcluster"
	"github.com/tallyhq/tally/internal/pgtest"
)

// needCitus skips a test unless TALLY_TEST_ENGINES asks for Citus runs, as
// for the database tests (internal/pgtest); and when the Citus extension
// is not installed, except in CI, where the Citus runs must execute.
func needCitus(t *testing.T) {
	t.Helper()
	engines, err := pgtest.Engines()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(engines, pgtest.Citus) {
		t.Skipf("%s=%s: no Citus runs", pgtest.EnvEngines, strings.Join(engines, ","))
	}
	if err := pgcluster.FindCitus(""); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI needs Citus: %v", err)
		}
		t.Skipf("%v", err)
	}
}

// TestDevCitusEndToEnd runs `tally dev --workers 2`: the API serves on a
// coordinator and two workers, every table holding per-account data is
// distributed by account (or a reference table), SIGTERM stops every node,
// and a second start reuses the cluster and the credentials.
func TestDevCitusEndToEnd(t *testing.T) {
	needCitus(t)
	bin := buildTally(t)
	dataDir := filepath.Join(t.TempDir(), "d")
	begin := time.Now()
	dev, creds := startDev(t, bin, dataDir, "--workers", "2")
	t.Logf("tally dev --workers 2 served after %v", time.Since(begin).Round(time.Millisecond))

	month := time.Now().UTC().Format("2006-01")
	at := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	var events []string
	for i := range 20 {
		events = append(events, fmt.Sprintf(`{"id":"c-%d","activity":"send","source":"sdk","service_sid":"IS1","identity":"user-%d","occurred_at":"%s"}`, i, i%5, at))
	}
	body := `{"events":[` + strings.Join(events, ",") + `]}`
	if st, got := postBody(t, creds, body); st != 200 || got != `{"accepted":20,"duplicates":0,"late":0}` {
		t.Fatalf("post: %d %s", st, got)
	}
	if users := activeUsers(t, creds, month); users != 5 {
		t.Fatalf("provisional report of %s: %d active users, want 5", month, users)
	}

	// Through the coordinator: tables with account_sid are distributed by
	// it in one colocation group, or reference tables; both workers
	// registered.
	checkDistributed(t, creds.DatabaseURL)

	dev.stop(t, dataDir)
	if out, _ := exec.Command("ps", "-eo", "args").Output(); strings.Contains(string(out), filepath.Join(dataDir, "citus")) {
		t.Fatalf("a server of the cluster outlived tally dev:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "postgres")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("--workers made a plain cluster too: %v", err)
	}

	// A second start reuses the cluster (no initdb) and the credentials.
	version, err := os.Stat(filepath.Join(dataDir, "citus", "worker2", "PG_VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	begin = time.Now()
	dev2, creds2 := startDev(t, bin, dataDir, "--workers", "2")
	t.Logf("second start served after %v", time.Since(begin).Round(time.Millisecond))
	if again, _ := os.Stat(filepath.Join(dataDir, "citus", "worker2", "PG_VERSION")); !again.ModTime().Equal(version.ModTime()) {
		t.Fatal("the second start made the cluster again")
	}
	if creds2.Account != creds.Account || creds2.Platform != creds.Platform || creds2.DatabaseURL != creds.DatabaseURL {
		t.Fatalf("credentials changed across restarts: %+v vs %+v", creds2, creds)
	}
	if st, got := postBody(t, creds2, body); st != 200 || got != `{"accepted":0,"duplicates":20,"late":0}` {
		t.Fatalf("repost after restart: %d %s", st, got)
	}
	if users := activeUsers(t, creds2, month); users != 5 {
		t.Fatalf("after restart, %s: %d active users, want 5", month, users)
	}
	checkDistributed(t, creds2.DatabaseURL)
	dev2.stop(t, dataDir)
}

func postBody(t *testing.T, c credentials, body string) (int, string) {
	t.Helper()
	st, b := callAPI(t, c.BaseURL, c.Account, "POST", "/v1/accounts/"+c.Account.AccountSID+"/events", body)
	return st, strings.TrimSpace(string(b))
}

func activeUsers(t *testing.T, c credentials, month string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", c.BaseURL+"/v1/accounts/"+c.Account.AccountSID+"/reports/"+month, nil)
	req.SetBasicAuth(c.Account.APIKeySID, c.Account.APIKeySecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r struct {
		Status      string `json:"status"`
		ActiveUsers int    `json:"active_users"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &r) != nil || r.Status != "provisional" {
		t.Fatalf("report %s: %d %s", month, resp.StatusCode, b)
	}
	return r.ActiveUsers
}

// checkDistributed asserts, on the coordinator, that every table of the
// public schema with an account_sid column is hash-distributed by it (all
// in one colocation group) or is a reference table, and that both workers
// are registered.
func checkDistributed(t *testing.T, dbURL string) {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var workers int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_dist_node WHERE groupid > 0 AND isactive AND noderole = 'primary'`).Scan(&workers); err != nil || workers != 2 {
		t.Fatalf("%d workers registered (%v), want 2", workers, err)
	}
	rows, err := conn.Query(ctx, `SELECT logicalrelid::text FROM pg_dist_partition`)
	if err != nil {
		t.Fatal(err)
	}
	dist, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(dist) == 0 {
		t.Fatalf("no distributed tables (%v): does the migration distribute them when citus is installed?", err)
	}
	rows, err = conn.Query(ctx, `
		SELECT c.relname, coalesce(p.partmethod::text, ''), coalesce(column_to_column_name(p.logicalrelid, p.partkey), ''), coalesce(p.colocationid, 0)
		FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'account_sid' AND NOT a.attisdropped
		LEFT JOIN pg_dist_partition p ON p.logicalrelid = c.oid
		WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	type table struct {
		name, method, column string
		colocation           int
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) {
		var x table
		return x, r.Scan(&x.name, &x.method, &x.column, &x.colocation)
	})
	if err != nil {
		t.Fatal(err)
	}
	groups := map[int][]string{}
	for _, x := range tables {
		switch {
		case x.method == "h" && x.column == "account_sid":
			groups[x.colocation] = append(groups[x.colocation], x.name)
		case x.method == "n": // a reference table
		default:
			t.Errorf("table %s is neither distributed by account_sid nor a reference table (method %q, column %q)", x.name, x.method, x.column)
		}
	}
	if len(groups) != 1 {
		t.Errorf("per-account tables in %d colocation groups, want 1: %v", len(groups), groups)
	}
}

// TestDevWorkersWithoutCitus: without the citus extension, `tally dev
// --workers 2` exits 1 and says how to get it. Fake server binaries first
// on PATH stand for a PostgreSQL without Citus.
func TestDevWorkersWithoutCitus(t *testing.T) {
	bin := buildTally(t)
	fake := t.TempDir()
	for _, name := range []string{"postgres", "initdb"} {
		if err := os.WriteFile(filepath.Join(fake, name), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "dev", "--workers", "2", "--addr", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "d"))
	cmd.Env = cleanEnv("PATH=" + fake + string(os.PathListSeparator) + os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("tally dev --workers 2 without Citus: %v, want exit status 1\n%s", err, out)
	}
	for _, want := range []string{"Citus", "https://docs.citusdata.com", "citusdata/citus Docker image"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("output does not say %q:\n%s", want, out)
		}
	}
}
