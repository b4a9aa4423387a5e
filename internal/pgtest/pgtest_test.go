package pgtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

// TestNewDBIsolated checks that two test databases are migrated and do not
// share rows.
func TestNewDBIsolated(t *testing.T) {
	a, urlA := NewDB(t)
	b, urlB := NewDB(t)
	if urlA == urlB {
		t.Fatal("two tests share a database")
	}
	const sid = "AC0123456789abcdef0123456789abcdef"
	if _, err := a.Exec(t.Context(), `INSERT INTO accounts (account_sid, name) VALUES ($1, 'a')`, sid); err != nil {
		t.Fatalf("insert into a migrated database: %v", err)
	}
	var n int
	if err := b.QueryRow(t.Context(), `SELECT count(*) FROM accounts`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the other database has %d accounts (%v), want 0", n, err)
	}
	if err := a.QueryRow(t.Context(), `SELECT count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&n); err != nil || n < 9 {
		t.Fatalf("%d migrations applied (%v)", n, err)
	}
}

// TestEngine checks that each run is on the engine it says: on Citus the
// test database is a Citus database with both workers, a table
// distributed in it spreads over both, and a query for one key is routed
// to one shard.
func TestEngine(t *testing.T) {
	pool, _ := NewDB(t)
	ctx := t.Context()
	var hasCitus bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')`).Scan(&hasCitus); err != nil {
		t.Fatal(err)
	}
	if hasCitus != (Engine() == Citus) {
		t.Fatalf("engine %q, citus extension in the test database: %v", Engine(), hasCitus)
	}
	if Engine() != Citus {
		// A plain private cluster keeps the default: logical WAL is only
		// for the Citus nodes, whose shards move by logical replication.
		var level string
		if err := pool.QueryRow(ctx, `SHOW wal_level`).Scan(&level); err != nil {
			t.Fatal(err)
		}
		if Cluster() != nil && level != "replica" {
			t.Errorf("wal_level = %s on the private PostgreSQL, want the default, replica", level)
		}
		return
	}
	// Shards move online only when every node decodes its WAL logically.
	var notLogical []string
	rows, err := pool.Query(ctx, `SELECT nodename FROM run_command_on_all_nodes('SHOW wal_level') r
		JOIN pg_dist_node USING (nodeid) WHERE r.result <> 'logical'`)
	if err == nil {
		notLogical, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil || len(notLogical) > 0 {
		t.Fatalf("wal_level is not logical on %v (%v): shards could not move online", notLogical, err)
	}
	var workers int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_dist_node WHERE groupid > 0 AND isactive`).Scan(&workers); err != nil || workers != 2 {
		t.Fatalf("%d workers (%v), want 2", workers, err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE t (account_sid text PRIMARY KEY, n int)`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `SELECT create_distributed_table('t', 'account_sid', colocate_with => 'none')`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO t SELECT 'AC' || i, i FROM generate_series(1, 50) i`); err != nil {
		t.Fatal(err)
	}
	var nodes int
	if err := pool.QueryRow(ctx, `SELECT count(DISTINCT nodename) FROM citus_shards WHERE table_name = 't'::regclass AND shard_size > 8192`).Scan(&nodes); err != nil || nodes != 2 {
		t.Fatalf("rows on %d nodes (%v), want 2", nodes, err)
	}
	rows, err = pool.Query(ctx, `EXPLAIN SELECT n FROM t WHERE account_sid = 'AC7'`)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(plan, "\n"), "Task Count: 1") {
		t.Fatalf("a one-key query is not routed to one shard:\n%s", strings.Join(plan, "\n"))
	}
}

// TestNewDBSpeed reports how long a clone of the template takes.
func TestNewDBSpeed(t *testing.T) {
	begin := time.Now()
	const n = 3
	for range n {
		NewDB(t)
	}
	t.Logf("%s: %v per test database", Engine(), (time.Since(begin) / n).Round(time.Millisecond))
}

func TestEngines(t *testing.T) {
	for v, want := range map[string]string{"": "postgres citus", "citus": "citus", " postgres , citus": "postgres citus", "pg": "error"} {
		t.Setenv(EnvEngines, v)
		got, err := Engines()
		if s := strings.Join(got, " "); err != nil {
			s = "error"
		} else if s != want {
			t.Errorf("%s=%q: %q, want %q", EnvEngines, v, s, want)
		}
	}
}

// TestMissingCitus runs this test binary again with TALLY_TEST_ENGINES=citus
// and server binaries without Citus first on PATH: outside CI the Citus run
// is skipped with a message naming how to install it, in CI it fails.
func TestMissingCitus(t *testing.T) {
	fake := t.TempDir()
	for _, name := range []string{"postgres", "initdb"} {
		if err := os.WriteFile(filepath.Join(fake, name), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, ci := range []string{"", "true"} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestEngines$")
		cmd.Env = append(os.Environ(), EnvEngines+"=citus", "CI="+ci, "PATH="+fake+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if !strings.Contains(string(out), "citusdata/citus Docker image") {
			t.Errorf("CI=%q: the output does not say how to get Citus:\n%s", ci, out)
		}
		if failed := err != nil; failed != (ci == "true") {
			t.Errorf("CI=%q: exit %v, want failure only in CI\n%s", ci, err, out)
		}
	}
}
